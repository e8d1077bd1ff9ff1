//! What the Debian package ships besides the binaries that is generated
//! from the binaries' own clap definitions, so that it never drifts from
//! them: the man pages `tfa(1)` and `twofactord(8)`, and completions for
//! bash, zsh and fish (`scripts/package` runs the `dist` binary, then
//! cargo-deb packs the files; the paths inside the package are in this
//! crate's `[package.metadata.deb]`).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

/// The programs documented, with their man section and a SEE ALSO line.
const PROGRAMS: [(&str, &str, &str); 2] = [
    ("tfa", "1", "\\fBtwofactord\\fR(8)"),
    ("twofactord", "8", "\\fBtfa\\fR(1)"),
];

/// The shells completed, each with the file name its completion is
/// installed under (bash: the command's name; zsh: `_NAME`; fish:
/// `NAME.fish`).
const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

/// The clap definition of a program of the package.
pub fn command(program: &str) -> Option<clap::Command> {
    match program {
        "tfa" => Some(cli::Args::command()),
        "twofactord" => Some(daemon::Args::command()),
        _ => None,
    }
}

/// Writes the man page of `program` in section `section`.
fn man_page(
    mut cmd: clap::Command,
    section: &str,
    see_also: &str,
    out: &mut dyn Write,
) -> io::Result<()> {
    // `tfa --version` and the page show the same version.
    cmd = cmd.version(env!("CARGO_PKG_VERSION"));
    clap_mangen::Man::new(cmd)
        .section(section)
        .source(format!("twofactor {}", env!("CARGO_PKG_VERSION")))
        .manual("twofactor")
        .render(out)?;
    writeln!(out, ".SH \"SEE ALSO\"")?;
    writeln!(out, "{see_also}")?;
    writeln!(
        out,
        "and /usr/share/doc/twofactor/README.md, /usr/share/doc/twofactor/ssh.md"
    )
}

/// The name a shell looks for `program`'s completion under.
pub fn completion_file(shell: Shell, program: &str) -> String {
    match shell {
        Shell::Zsh => format!("_{program}"),
        Shell::Fish => format!("{program}.fish"),
        _ => program.to_owned(),
    }
}

/// Writes `out/man/NAME.SECTION` and `out/completions/SHELL/FILE` for each
/// program; returns the files written.
pub fn generate(out: &Path) -> io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let man_dir = out.join("man");
    fs::create_dir_all(&man_dir)?;
    for (program, section, see_also) in PROGRAMS {
        let cmd = command(program).ok_or_else(|| io::Error::other("unknown program"))?;
        let path = man_dir.join(format!("{program}.{section}"));
        let mut text = Vec::new();
        man_page(cmd.clone(), section, see_also, &mut text)?;
        fs::write(&path, text)?;
        written.push(path);
        for shell in SHELLS {
            let dir = out.join("completions").join(shell.to_string());
            fs::create_dir_all(&dir)?;
            let path = dir.join(completion_file(shell, program));
            let mut text = Vec::new();
            clap_complete::generate(shell, &mut cmd.clone(), program, &mut text);
            fs::write(&path, text)?;
            written.push(path);
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn read(path: &Path) -> String {
        fs::read_to_string(path).unwrap()
    }

    #[test]
    fn man_pages_document_every_option_of_the_clap_definitions() {
        let dir = tempfile::tempdir().unwrap();
        let files = generate(dir.path()).unwrap();
        assert_eq!(files.len(), 8, "{files:?}");
        for (program, section, _) in PROGRAMS {
            let page = read(&dir.path().join("man").join(format!("{program}.{section}")));
            assert!(
                page.starts_with(&format!(
                    ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n.TH {program} {section} "
                )),
                "{page}"
            );
            let cmd = command(program).unwrap();
            for arg in cmd.get_arguments() {
                if let Some(long) = arg.get_long() {
                    // roff escapes the dashes: \-\-state\-dir
                    let escaped = format!("\\-\\-{}", long.replace('-', "\\-"));
                    assert!(page.contains(&escaped), "{program}: {escaped} missing");
                }
            }
            assert!(page.contains("SEE ALSO"), "{page}");
        }
        let tfa = read(&dir.path().join("man/tfa.1"));
        assert!(tfa.contains("\\fB\\-\\-url\\fR"), "{tfa}");
        let daemon = read(&dir.path().join("man/twofactord.8"));
        assert!(daemon.contains("\\-\\-socket"), "{daemon}");
        assert!(daemon.contains(&format!("twofactor {}", env!("CARGO_PKG_VERSION"))));
    }

    #[test]
    fn completions_name_the_options_for_each_shell() {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path()).unwrap();
        let c =
            |shell: &str, file: &str| read(&dir.path().join("completions").join(shell).join(file));
        let bash = c("bash", "tfa");
        assert!(bash.contains("complete -F _tfa"), "{bash}");
        assert!(bash.contains("--state-dir"), "{bash}");
        let zsh = c("zsh", "_tfa");
        assert!(zsh.starts_with("#compdef tfa"), "{zsh}");
        assert!(zsh.contains("--url"), "{zsh}");
        let fish = c("fish", "tfa.fish");
        assert!(fish.contains("complete -c tfa -s m -l mode"), "{fish}");
        let fish = c("fish", "twofactord.fish");
        // With the `migrate` subcommand, the daemon's own options are
        // offered where no subcommand is given yet.
        assert!(
            fish.lines()
                .any(|l| l.starts_with("complete -c twofactord") && l.contains("-l socket")),
            "{fish}"
        );
        assert!(fish.contains("migrate"), "{fish}");
        assert!(c("bash", "twofactord").contains("--listen"));
        assert!(c("zsh", "_twofactord").starts_with("#compdef twofactord"));
    }

    #[test]
    fn only_the_packaged_programs_are_known() {
        assert!(command("tfa").is_some());
        assert!(command("twofactord").is_some());
        assert!(command("sshd").is_none());
    }
}
