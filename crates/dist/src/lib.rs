//! What the Debian package ships besides the binaries that is generated
//! from the programs' own definitions, so that it never drifts from them:
//! the man pages `tfa(1)` (options from its clap definition, the command
//! tree from the API's own description), `twofactord(8)`,
//! `pam_twofactor(8)` (from the module's table of arguments) and
//! `twofactord.toml(5)` (from the commented example configuration, held to
//! the keys the parser takes), and completions for bash, zsh and fish
//! (`tfa`'s call `tfa --complete-words`, the interactive shell's own
//! completion; `twofactord`'s come from its clap definition).
//! `scripts/package` runs the `dist` binary, then cargo-deb packs the files;
//! the paths inside the package are in this crate's `[package.metadata.deb]`.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

/// The programs documented from clap, with their man section and a SEE
/// ALSO line.
const PROGRAMS: [(&str, &str, &str); 2] = [
    (
        "tfa",
        "1",
        "\\fBtwofactord\\fR(8), \\fBtwofactord.toml\\fR(5), \\fBpam_twofactor\\fR(8)",
    ),
    (
        "twofactord",
        "8",
        "\\fBtfa\\fR(1), \\fBtwofactord.toml\\fR(5), \\fBpam_twofactor\\fR(8)",
    ),
];

/// The shells completed, each with the file name its completion is
/// installed under (bash: the command's name; zsh: `_NAME`; fish:
/// `NAME.fish`).
const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

/// The commented example configuration the package installs: the source of
/// twofactord.toml(5).
const EXAMPLE_CONFIG: &str = include_str!("../../../packaging/twofactord.toml");

/// Keys the parser takes that the example configuration does not show yet,
/// documented here until it does (a test holds the page to the parser).
const KEYS_NOT_IN_THE_EXAMPLE: &[(&str, &str)] = &[(
    "require_secret = false",
    "While two-factor authentication is on, refuse API and SSH logins of accounts \
     that have no secret of their own, and do not let users unset their own secret.",
)];

/// The clap definition of a program of the package.
pub fn command(program: &str) -> Option<clap::Command> {
    match program {
        "tfa" => Some(cli::Args::command()),
        "twofactord" => Some(daemon::Args::command()),
        _ => None,
    }
}

/// Text for roff: backslashes and dashes escaped, and a line that would
/// start with a control character kept as text.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    escaped
        .lines()
        .map(|l| {
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A section heading.
fn section(out: &mut String, name: &str) {
    let _ = writeln!(out, ".SH \"{name}\"");
}

/// A paragraph.
fn para(out: &mut String, text: &str) {
    let _ = writeln!(out, ".PP\n{}", roff(text));
}

/// A tagged paragraph: `tag` in bold, then `text`.
fn item(out: &mut String, tag: &str, text: &str) {
    let _ = writeln!(out, ".TP\n\\fB{}\\fR\n{}", roff(tag), roff(text));
}

/// Lines shown as they are (commands, files).
fn example(out: &mut String, lines: &str) {
    let _ = writeln!(out, ".PP\n.RS 4\n.nf\n{}\n.fi\n.RE", roff(lines));
}

/// The page clap_mangen makes of a clap definition, with `extra` sections
/// before SEE ALSO.
fn clap_page(
    mut cmd: clap::Command,
    section_number: &str,
    extra: &str,
    see_also: &str,
) -> io::Result<Vec<u8>> {
    // `tfa --version` and the page show the same version.
    cmd = cmd.version(env!("CARGO_PKG_VERSION"));
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .section(section_number)
        .source(format!("twofactor {}", env!("CARGO_PKG_VERSION")))
        .manual("twofactor")
        .render(&mut out)?;
    out.write_all(extra.as_bytes())?;
    writeln!(out, ".SH \"SEE ALSO\"")?;
    writeln!(out, "{see_also}")?;
    writeln!(
        out,
        "and in /usr/share/doc/twofactor: README.Debian, ssh.md, per-user.md, backup.md"
    )?;
    Ok(out)
}

/// A page written here entirely (no clap definition behind it).
fn page_head(name: &str, section_number: &str, summary: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        ".TH {name} {section_number} \"\" \"twofactor {}\" \"twofactor\"",
        env!("CARGO_PKG_VERSION")
    );
    section(&mut out, "NAME");
    let _ = writeln!(out, "{} \\- {}", roff(name), roff(summary));
    out
}

/// The command tree of tfa(1), from the API's own description.
fn command_tree(out: &mut String) -> io::Result<()> {
    let tree = cli::complete::described_tree().map_err(|e| io::Error::other(e.to_string()))?;
    section(out, "COMMANDS");
    para(
        out,
        "Commands are namespaces and a command, then arguments as name=value (or in order). \
         The same commands run in the interactive shell, where a namespace can be entered and \
         man COMMAND shows a command's arguments with their types and defaults.",
    );
    fn walk(out: &mut String, ns: &cli::tree::Namespace, path: &mut Vec<String>) {
        if !path.is_empty() {
            let _ = writeln!(out, ".SS \"{}\"", roff(&path.join(" ")));
            if !ns.description.is_empty() {
                para(out, &ns.description);
            }
        }
        for c in &ns.commands {
            let args: Vec<String> = c
                .argument_names()
                .into_iter()
                .map(|(n, _)| format!("[{n}=...]"))
                .collect();
            let mut tag = c.full_name();
            if !args.is_empty() {
                tag.push(' ');
                tag.push_str(&args.join(" "));
            }
            let text = if c.summary.is_empty() {
                c.method.clone()
            } else {
                format!("{} ({})", c.summary, c.method)
            };
            item(out, &tag, &text);
        }
        for child in &ns.children {
            path.push(child.name.clone());
            walk(out, child, path);
            path.pop();
        }
    }
    walk(out, &tree.root, &mut Vec::new());
    let _ = writeln!(out, ".SS \"Built-in commands\"");
    for (name, what) in [
        (
            "status",
            "Which state (daemon or embedded, and where), the version, whether 2FA is on and enforced for SSH, accounts with a secret, pending enrolments and lock-outs (also system status).",
        ),
        ("ls [NAMESPACE]", "List a namespace."),
        (
            "man COMMAND",
            "A command's description, arguments and examples.",
        ),
        ("help", "How the shell works."),
        (".mode [table|csv|json]", "Show or set the output format."),
        (
            "call METHOD [JSON ...]",
            "Call an API method with JSON parameters and print the JSON result.",
        ),
        (
            "..  /  exit",
            "Leave the namespace, go to the top, leave the shell.",
        ),
    ] {
        item(out, name, what);
    }
    Ok(())
}

/// The sections of tfa(1) after the options.
fn tfa_extra() -> io::Result<String> {
    let mut out = String::new();
    command_tree(&mut out)?;
    section(&mut out, "WHICH STATE");
    para(
        &mut out,
        "With --url, tfa talks to that daemon. With --state-dir, it runs the API in-process on \
         that directory (the embedded mode; the directory must exist unless --init is given). \
         With neither, it uses the daemon on the default socket when one answers, else the \
         embedded mode on the configured state directory, and says so on standard error: \
         \"no daemon at /run/twofactor/twofactord.sock; working on the local state in \
         /var/lib/twofactor\". Only root falls back that way; for anyone else it is refused \
         with a hint to start or reach the daemon. tfa status shows which state is in use.",
    );
    section(&mut out, "EXIT STATUS");
    for (code, what) in [
        (cli::EXIT_OK, "Success."),
        (
            cli::EXIT_FAILED,
            "A command failed (refused by the API, a connection or file error).",
        ),
        (
            cli::EXIT_USAGE,
            "A usage error: unknown command, argument or option, bad quoting.",
        ),
    ] {
        item(&mut out, &code.to_string(), what);
    }
    section(&mut out, "ENVIRONMENT");
    for (name, what) in [
        (
            "TFA_PASSWORD",
            "The password for --user (else it is asked on the terminal).",
        ),
        (
            "TFA_OTP",
            "The code for --user when the login needs one (tried once).",
        ),
        (
            "NO_COLOR",
            "When set and not empty, QR codes are drawn without colour codes.",
        ),
        (
            "XDG_DATA_HOME",
            "Where a user other than root keeps shell history (default ~/.local/share).",
        ),
        (
            "XDG_RUNTIME_DIR",
            "Where a user's own daemon socket is looked for.",
        ),
    ] {
        item(&mut out, name, what);
    }
    section(&mut out, "FILES");
    for (name, what) in [
        (
            "/etc/twofactor/twofactord.toml",
            "The configuration (state directory, socket), read when present; see twofactord.toml(5).",
        ),
        (api::host::SYSTEM_SOCKET, "The daemon's Unix socket."),
        (
            "/var/lib/twofactor/twofactor.db",
            "The state (database) of root's daemon and of the embedded mode run as root.",
        ),
        (
            "/var/lib/twofactor/secret.key",
            "The key that seals the secrets; keep it with the database, but not in the same backup.",
        ),
        (
            "$XDG_DATA_HOME/twofactor/tfa_history",
            "The interactive shell's history (lines with codes or passwords are never kept).",
        ),
    ] {
        item(&mut out, name, what);
    }
    section(&mut out, "EXAMPLES");
    example(
        &mut out,
        "tfa status\n\
         tfa auth two_factor update enabled=true\n\
         tfa auth two_factor provisioning_uri --qr\n\
         tfa auth two_factor verify 447 862\n\
         tfa auth two_factor update services='{\"ssh\": true}'\n\
         tfa account user twofactor_enroll username=alice\n\
         tfa account user generate_2fa_recovery_codes username=alice\n\
         tfa -m json audit query\n\
         tfa --url ws://nas:6000/api/current --user admin auth two_factor config",
    );
    section(&mut out, "LOCK-OUT RECOVERY");
    para(
        &mut out,
        "Root on the Unix socket (or in the embedded mode) is never locked out by wrong codes \
         and needs no code. To switch two-factor authentication off for everyone:",
    );
    example(
        &mut out,
        "tfa call auth.twofactor.update '{\"enabled\": false}'",
    );
    para(
        &mut out,
        "For one account: a recovery code works wherever a code is asked; an administrator can \
         remove the account's secret (tfa account user unset_2fa_secret username=alice) or make \
         a new one (renew_2fa_secret). A lock-out after wrong codes ends by itself; tfa status \
         shows until when. Codes may be typed with spaces (447 862); a code of the wrong length \
         is refused without counting as a guess.",
    );
    Ok(out)
}

/// The sections of twofactord(8) after the options.
fn twofactord_extra() -> String {
    let mut out = String::new();
    section(&mut out, "SOCKET");
    para(
        &mut out,
        &format!(
            "JSON-RPC 2.0 over WebSocket (TrueNAS-compatible) on the Unix socket {} (mode 0666: \
             peers are told apart by their credentials; root is an administrator, other users \
             manage their own second factor) and, unless listen = \"none\", on TCP, where \
             clients log in with auth.login_ex.",
            api::host::SYSTEM_SOCKET
        ),
    );
    section(&mut out, "SIGNALS");
    item(
        &mut out,
        "SIGTERM, SIGINT",
        "Stop accepting connections, finish the calls under way, remove the socket file and exit 0.",
    );
    section(&mut out, "STARTING AFRESH");
    para(
        &mut out,
        "A key file whose database is gone (deleted or emptied) is a lost state: the daemon \
         refuses to start rather than make a new, empty one. twofactord --init starts a fresh \
         state there; it never deletes anything, and an existing database is used as is.",
    );
    section(&mut out, "FILES");
    for (name, what) in [
        (
            "/etc/twofactor/twofactord.toml",
            "The configuration; see twofactord.toml(5).",
        ),
        ("/var/lib/twofactor/twofactor.db", "The database (SQLite)."),
        (
            "/var/lib/twofactor/secret.key",
            "The key that seals the secrets at rest (0600).",
        ),
        (api::host::SYSTEM_SOCKET, "The Unix socket."),
        (
            "/etc/pam.d/twofactord",
            "The PAM service that checks API login passwords.",
        ),
    ] {
        item(&mut out, name, what);
    }
    section(&mut out, "EXIT STATUS");
    para(
        &mut out,
        "0 after a clean stop; 1 when it cannot start (the reason is logged).",
    );
    out
}

/// pam_twofactor(8), from the module's table of arguments.
fn pam_page() -> String {
    let mut out = page_head(
        "pam_twofactor",
        "8",
        "ask for a TOTP code at login, checked by twofactord",
    );
    section(&mut out, "SYNOPSIS");
    let forms: Vec<String> = pam_twofactor::OPTION_DOCS
        .iter()
        .map(|(f, _, _)| format!("[{f}]"))
        .collect();
    let _ = writeln!(
        out,
        "\\fBauth required pam_twofactor.so\\fR {}",
        roff(&forms.join(" "))
    );
    section(&mut out, "DESCRIPTION");
    para(
        &mut out,
        "pam_twofactor.so asks twofactord whether the login needs a code (two-factor \
         authentication on, SSH enforcement on, and the PAM service counted as SSH by \
         ssh_pam_services), prompts \"Verification code: \" when it does, and has the daemon \
         check it. The daemon applies replay protection, rate limiting and audit. Spaces inside \
         a code are ignored; an answer that is not a code is refused with \"expected 6 digits\" \
         (the configured number) without counting as a guess. The code is never logged.",
    );
    section(&mut out, "OPTIONS");
    for (form, _, what) in pam_twofactor::OPTION_DOCS {
        item(&mut out, form, what);
    }
    section(&mut out, "MODULE TYPES PROVIDED");
    para(&mut out, "auth (setcred answers success).");
    section(&mut out, "RETURN VALUES");
    for (name, what) in [
        ("PAM_SUCCESS", "The right code was given."),
        (
            "PAM_AUTH_ERR",
            "A wrong, replayed or malformed code, a lock-out, or the daemon unreachable with unreachable=fail.",
        ),
        (
            "PAM_IGNORE",
            "No code is needed for this login, or the daemon is unreachable with unreachable=ignore.",
        ),
        ("PAM_CONV_ERR", "The code could not be asked for."),
    ] {
        item(&mut out, name, what);
    }
    section(&mut out, "EXAMPLES");
    para(
        &mut out,
        "Password and code (keyboard-interactive) in /etc/pam.d/sshd, after @include common-auth:",
    );
    example(&mut out, "auth required pam_twofactor.so");
    para(&mut out, "with /etc/ssh/sshd_config:");
    example(&mut out, "KbdInteractiveAuthentication yes\nUsePAM yes");
    para(
        &mut out,
        "Key and code: AuthenticationMethods publickey,keyboard-interactive in sshd_config, and in /etc/pam.d/sshd the module alone instead of common-auth:",
    );
    example(&mut out, "auth required pam_twofactor.so timeout=3");
    para(
        &mut out,
        "Let logins through on the password alone while the daemon is down (weaker):",
    );
    example(
        &mut out,
        "auth required pam_twofactor.so unreachable=ignore",
    );
    section(&mut out, "FILES");
    item(
        &mut out,
        api::host::SYSTEM_SOCKET,
        "The daemon's socket (socket= changes it).",
    );
    section(&mut out, "SEE ALSO");
    let _ = writeln!(
        out,
        "\\fBtwofactord\\fR(8), \\fBtfa\\fR(1), \\fBsshd_config\\fR(5), \\fBpam.conf\\fR(5)"
    );
    let _ = writeln!(out, "and /usr/share/doc/twofactor/ssh.md");
    out
}

/// One key of the example configuration: `[section]` (or ""), the line
/// `key = default`, and the comment above it.
#[derive(Debug)]
struct Key {
    table: String,
    line: String,
    comment: String,
}

/// The keys of the example configuration, each with the comment block
/// before it (blocks are separated by blank lines; a block documents the
/// keys that follow it).
fn example_keys() -> (String, Vec<Key>) {
    let mut preamble = String::new();
    let mut keys = Vec::new();
    let mut table = String::new();
    let mut comment = String::new();
    let mut in_preamble = true;
    for raw in EXAMPLE_CONFIG.lines() {
        let line = raw.trim_start_matches('#').trim();
        if raw.trim().is_empty() {
            if in_preamble {
                in_preamble = false;
                preamble = std::mem::take(&mut comment);
            }
            comment.clear();
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            table = line.trim_matches(|c| c == '[' || c == ']').to_owned();
            continue;
        }
        let is_key = line.split_once(" = ").is_some_and(|(k, _)| {
            !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        });
        if is_key && !in_preamble {
            keys.push(Key {
                table: table.clone(),
                line: line.to_owned(),
                comment: comment.trim().to_owned(),
            });
        } else {
            if !comment.is_empty() {
                comment.push(' ');
            }
            comment.push_str(line);
        }
    }
    for (line, what) in KEYS_NOT_IN_THE_EXAMPLE {
        keys.push(Key {
            table: String::new(),
            line: (*line).to_owned(),
            comment: (*what).to_owned(),
        });
    }
    (preamble.trim().to_owned(), keys)
}

/// twofactord.toml(5), from the example configuration.
fn config_page() -> String {
    let mut out = page_head(
        "twofactord.toml",
        "5",
        "configuration of twofactord and tfa",
    );
    section(&mut out, "SYNOPSIS");
    let _ = writeln!(out, "{}", roff(api::host::DEFAULT_CONFIG_PATH));
    section(&mut out, "DESCRIPTION");
    let (preamble, keys) = example_keys();
    para(&mut out, &preamble);
    para(
        &mut out,
        "tfa reads the same file for the state directory and the socket.",
    );
    let mut current = None;
    let mut last_comment = String::new();
    for key in &keys {
        if current.as_ref() != Some(&key.table) {
            let title = if key.table.is_empty() {
                "KEYS".to_owned()
            } else {
                format!("[{}]", key.table)
            };
            section(&mut out, &title.to_uppercase());
            current = Some(key.table.clone());
            last_comment.clear();
        }
        // A comment shared by several keys is said once, before the first.
        let what = if key.comment == last_comment {
            String::new()
        } else {
            key.comment.clone()
        };
        last_comment.clone_from(&key.comment);
        let (name, default) = key.line.split_once(" = ").unwrap_or((&key.line, ""));
        // A comment that names its own default shows an example value.
        let shown = if key.comment.contains("(default:") {
            "For example"
        } else {
            "Default"
        };
        let space = if what.is_empty() { "" } else { " " };
        item(&mut out, name, &format!("{what}{space}{shown}: {default}."));
    }
    section(&mut out, "EXAMPLE");
    example(
        &mut out,
        "listen = \"none\"\nadmin_group = \"sudo\"\n\n[rate_limit]\nmax_failures = 3",
    );
    section(&mut out, "SEE ALSO");
    let _ = writeln!(
        out,
        "\\fBtwofactord\\fR(8), \\fBtfa\\fR(1), \\fBpam_twofactor\\fR(8)"
    );
    out
}

/// The name a shell looks for `program`'s completion under.
pub fn completion_file(shell: Shell, program: &str) -> String {
    match shell {
        Shell::Zsh => format!("_{program}"),
        Shell::Fish => format!("{program}.fish"),
        _ => program.to_owned(),
    }
}

/// A completion script of `program` for `shell`: tfa's ask tfa itself
/// (the interactive shell's completion), twofactord's come from clap.
fn completion(shell: Shell, program: &str, cmd: &clap::Command) -> Vec<u8> {
    if program == "tfa" {
        let script = match shell {
            Shell::Zsh => cli::complete::ZSH,
            Shell::Fish => cli::complete::FISH,
            _ => cli::complete::BASH,
        };
        return script.as_bytes().to_vec();
    }
    let mut text = Vec::new();
    clap_complete::generate(shell, &mut cmd.clone(), program, &mut text);
    text
}

/// Writes `out/man/NAME.SECTION` for each page and
/// `out/completions/SHELL/FILE` for each program; returns the files
/// written.
pub fn generate(out: &Path) -> io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let man_dir = out.join("man");
    fs::create_dir_all(&man_dir)?;
    for (program, section_number, see_also) in PROGRAMS {
        let cmd = command(program).ok_or_else(|| io::Error::other("unknown program"))?;
        let extra = match program {
            "tfa" => tfa_extra()?,
            _ => twofactord_extra(),
        };
        let path = man_dir.join(format!("{program}.{section_number}"));
        fs::write(
            &path,
            clap_page(cmd.clone(), section_number, &extra, see_also)?,
        )?;
        written.push(path);
        for shell in SHELLS {
            let dir = out.join("completions").join(shell.to_string());
            fs::create_dir_all(&dir)?;
            let path = dir.join(completion_file(shell, program));
            fs::write(&path, completion(shell, program, &cmd))?;
            written.push(path);
        }
    }
    for (name, text) in [
        ("pam_twofactor.8", pam_page()),
        ("twofactord.toml.5", config_page()),
    ] {
        let path = man_dir.join(name);
        fs::write(&path, text)?;
        written.push(path);
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

    /// The pages and completions, generated once per test.
    fn generated() -> (tempfile::TempDir, Vec<PathBuf>) {
        let dir = tempfile::tempdir().unwrap();
        let files = generate(dir.path()).unwrap();
        (dir, files)
    }

    #[test]
    fn man_pages_document_every_option_of_the_clap_definitions() {
        let (dir, files) = generated();
        assert_eq!(files.len(), 10, "{files:?}");
        for (program, section, _) in PROGRAMS {
            let page = read(&dir.path().join("man").join(format!("{program}.{section}")));
            assert!(
                page.starts_with(&format!(
                    ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n.TH {program} {section} "
                )),
                "{page}"
            );
            let cmd = command(program).unwrap();
            for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
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
    fn tfa_1_has_the_command_tree_and_the_sections_an_administrator_looks_for() {
        let (dir, _) = generated();
        let page = read(&dir.path().join("man/tfa.1"));
        for heading in [
            "COMMANDS",
            "FILES",
            "EXIT STATUS",
            "ENVIRONMENT",
            "EXAMPLES",
            "LOCK-OUT RECOVERY",
        ] {
            assert!(
                page.contains(&format!(".SH \"{heading}\"")),
                "{heading} missing"
            );
        }
        // Every command of the tree, from the API's own description.
        let tree = cli::complete::described_tree().unwrap();
        let commands = tree.commands();
        assert!(commands.len() > 10, "{}", commands.len());
        for c in commands {
            let name = roff(&c.full_name());
            assert!(page.contains(&format!("\\fB{name}")), "{name} missing");
        }
        assert!(
            page.contains("tfa call auth.twofactor.update"),
            "lock-out recovery"
        );
    }

    #[test]
    fn twofactord_8_has_signals_files_socket_and_init() {
        let (dir, _) = generated();
        let page = read(&dir.path().join("man/twofactord.8"));
        for heading in ["SOCKET", "SIGNALS", "STARTING AFRESH", "FILES"] {
            assert!(
                page.contains(&format!(".SH \"{heading}\"")),
                "{heading} missing"
            );
        }
        assert!(page.contains("SIGTERM"));
        assert!(page.contains("\\-\\-init"));
        assert!(page.contains(&roff(api::host::SYSTEM_SOCKET)));
    }

    #[test]
    fn pam_twofactor_8_documents_every_argument() {
        let (dir, _) = generated();
        let page = read(&dir.path().join("man/pam_twofactor.8"));
        assert!(!pam_twofactor::OPTION_DOCS.is_empty());
        for (form, _, _) in pam_twofactor::OPTION_DOCS {
            assert!(
                page.contains(&format!("\\fB{}\\fR", roff(form))),
                "{form} missing"
            );
        }
        assert!(page.contains("/etc/pam.d/sshd"), "sshd examples");
    }

    /// The keys the configuration parser takes, from its own refusal of an
    /// unknown one (`expected one of ...`, `expected A or B`), for the top level and each table.
    fn parser_keys(table: &str) -> Vec<String> {
        let text = if table.is_empty() {
            "no_such_key = 1\n".to_owned()
        } else {
            format!("[{table}]\nno_such_key = 1\n")
        };
        let err = api::host::Config::parse(&text, "t.toml")
            .unwrap_err()
            .to_string();
        let list = err
            .split(", expected")
            .nth(1)
            .unwrap_or_else(|| panic!("{err}"));
        list.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn twofactord_toml_5_documents_every_key_the_parser_takes() {
        let (dir, _) = generated();
        let page = read(&dir.path().join("man/twofactord.toml.5"));
        let top = parser_keys("");
        assert!(top.contains(&"state_dir".to_owned()), "{top:?}");
        for key in &top {
            if ["rate_limit", "audit", "limits", "database"].contains(&key.as_str()) {
                assert!(
                    page.contains(&format!(".SH \"[{}]\"", key.to_uppercase())),
                    "[{key}] missing"
                );
                for sub in parser_keys(key) {
                    assert!(
                        page.contains(&format!("\\fB{}\\fR", roff(&sub))),
                        "{key}.{sub} missing"
                    );
                }
            } else {
                assert!(
                    page.contains(&format!("\\fB{}\\fR", roff(key))),
                    "{key} missing"
                );
            }
        }
    }

    /// groff through man(1) renders each page without a warning.
    #[test]
    fn man_renders_each_page_without_warnings() {
        let (dir, files) = generated();
        let _ = dir;
        for page in files
            .iter()
            .filter(|f| f.parent().is_some_and(|p| p.ends_with("man")))
        {
            let out = std::process::Command::new("man")
                .args(["--warnings", "-E", "UTF-8", "-l"])
                .arg(page)
                .env("MANPAGER", "cat")
                .env("MANWIDTH", "80")
                .output()
                .expect("man (apt-get install man-db groff-base)");
            assert!(out.status.success(), "{}: {out:?}", page.display());
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.is_empty(), "{}: {stderr}", page.display());
            assert!(out.stdout.len() > 500, "{}", page.display());
        }
    }

    #[test]
    fn completions_for_each_shell() {
        let (dir, _) = generated();
        let c =
            |shell: &str, file: &str| read(&dir.path().join("completions").join(shell).join(file));
        // tfa's ask tfa itself: the interactive shell's completion.
        assert_eq!(c("bash", "tfa"), cli::complete::BASH);
        assert!(c("bash", "tfa").contains("--complete-words"));
        assert_eq!(c("zsh", "_tfa"), cli::complete::ZSH);
        assert!(c("zsh", "_tfa").starts_with("#compdef tfa"));
        assert_eq!(c("fish", "tfa.fish"), cli::complete::FISH);
        let fish = c("fish", "twofactord.fish");
        // (With the `backup` and `migrate` subcommands, fish adds a
        // condition to each line.)
        assert!(
            fish.lines()
                .any(|l| l.starts_with("complete -c twofactord") && l.contains("-l socket")),
            "{fish}"
        );
        assert!(
            fish.lines()
                .any(|l| l.starts_with("complete -c twofactord") && l.contains("-l to")),
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
