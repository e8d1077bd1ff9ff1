//! `dist OUT_DIR`: writes the man pages and shell completions of `tfa` and
//! `twofactord` under OUT_DIR (`scripts/package` uses `target/dist`).

use anyhow::Context;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        anyhow::bail!("usage: dist OUT_DIR");
    };
    let out = std::path::PathBuf::from(out);
    let files =
        dist::generate(&out).with_context(|| format!("cannot write into {}", out.display()))?;
    for f in files {
        println!("{}", f.display());
    }
    Ok(())
}
