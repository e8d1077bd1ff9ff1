//! Replays the fuzz inputs kept in the repository, `fuzz/seeds/<target>/`
//! (the starting corpus) and `fuzz/regressions/<target>/` (every input a
//! fuzzing run found a fault with), through a target's check: the ordinary
//! `cargo test` keeps them fixed without cargo-fuzz.

use std::path::Path;

/// Runs `check` on every kept input of `target`; returns how many there were.
pub fn all(target: &str, check: fn(&[u8])) -> usize {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut replayed = 0;
    for kind in ["seeds", "regressions"] {
        let dir = fuzz.join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<_> = entries
            .map(|e| e.expect("a directory entry").path())
            .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != ".gitkeep"))
            .collect();
        paths.sort();
        for path in paths {
            let data = std::fs::read(&path).expect("a kept input");
            eprintln!("replaying {}", path.display());
            check(&data);
            replayed += 1;
        }
    }
    assert!(
        replayed > 0,
        "no kept inputs for {target} under {}",
        fuzz.display()
    );
    replayed
}
