//! The interactive shell: prompt, history, tab completion; and
//! scripts read from a standard input that is not a terminal.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

use crate::error::{EXIT_FAILED, EXIT_OK};
use crate::exec::{BUILTINS, Engine, Flow};
use crate::syntax::{self, split_assignment};
use crate::tree::{Resolved, Tree};

/// Runs commands read line by line, with no prompts. Empty lines and lines
/// starting with `#` are skipped. Exit status 1 when any line failed.
pub fn run_script(engine: &mut Engine, input: &mut dyn BufRead, out: &mut dyn Write) -> i32 {
    let mut status = EXIT_OK;
    let mut line = String::new();
    loop {
        line.clear();
        match input.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                eprintln!("Error: cannot read standard input: {e}");
                return EXIT_FAILED;
            }
        }
        let text = line.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        match engine.run_line(text, true, out) {
            Ok(Flow::Exit) => break,
            Ok(Flow::Continue) => {}
            Err(e) => {
                let _ = out.flush();
                eprintln!("{e}");
                status = EXIT_FAILED;
            }
        }
    }
    status
}

/// `tfa_history` in the user's data directory
/// (`$XDG_DATA_HOME/twofactor`, else `~/.local/share/twofactor`).
pub fn history_path() -> Option<PathBuf> {
    Some(api::host::user_data_dir()?.join("tfa_history"))
}

/// Lines that may carry a code, a password or a key are never written to
/// history: any that names a check (`verify`), a login method (`auth.login
/// root PASSWORD` carries the password as a bare word), or an argument
/// that holds a secret.
pub fn worth_remembering(line: &str) -> bool {
    let lower = line.to_ascii_lowercase();
    !line.trim().is_empty()
        && ![
            "verify", "token", "password", "secret", "otp_", "login", "api_key", "passwd",
        ]
        .iter()
        .any(|w| lower.contains(w))
}

fn ensure_private_dir(path: &std::path::Path) {
    use std::os::unix::fs::DirBuilderExt;
    if let Some(dir) = path.parent() {
        let _ = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir);
    }
}

/// The interactive loop. Returns the exit status.
pub fn interactive(engine: &mut Engine) -> i32 {
    let mut editor: Editor<ShellHelper, rustyline::history::DefaultHistory> =
        match Editor::with_config(
            rustyline::Config::builder()
                .completion_type(rustyline::CompletionType::List)
                .auto_add_history(false)
                .build(),
        ) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("Error: cannot start the shell: {e}");
                return EXIT_FAILED;
            }
        };
    let tree = match engine.tree() {
        Ok(t) => Some(t.clone()),
        Err(e) => {
            eprintln!("{e}");
            None
        }
    };
    editor.set_helper(Some(ShellHelper {
        tree,
        cwd: Vec::new(),
    }));
    let history = history_path();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    let mut stdout = std::io::stdout();
    loop {
        if let Some(h) = editor.helper_mut() {
            h.cwd.clone_from(&engine.cwd);
        }
        let line = match editor.readline(&engine.prompt()) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("Error: {e}");
                return EXIT_FAILED;
            }
        };
        if worth_remembering(&line) {
            let _ = editor.add_history_entry(line.trim());
            if let Some(path) = &history {
                ensure_private_dir(path);
                let _ = editor.append_history(path);
            }
        }
        match engine.run_line(&line, true, &mut stdout) {
            Ok(Flow::Exit) => break,
            Ok(Flow::Continue) => {}
            Err(e) => {
                let _ = stdout.flush();
                eprintln!("{e}");
            }
        }
        let _ = stdout.flush();
    }
    EXIT_OK
}

/// Tab completion from the namespace tree.
#[derive(Debug)]
pub struct ShellHelper {
    pub tree: Option<Tree>,
    pub cwd: Vec<String>,
}

fn pairs<'a>(prefix: &str, names: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<Pair> {
    let mut out: Vec<Pair> = names
        .into_iter()
        .filter(|(display, _)| display.starts_with(prefix))
        .map(|(display, suffix)| Pair {
            display: display.to_owned(),
            replacement: format!("{display}{suffix}"),
        })
        .collect();
    out.sort_by(|a, b| a.display.cmp(&b.display));
    out.dedup_by(|a, b| a.display == b.display);
    out
}

impl ShellHelper {
    /// Candidates for the word at `pos`, and where that word starts.
    pub fn candidates(&self, line: &str, pos: usize) -> (usize, Vec<Pair>) {
        let Some(tree) = &self.tree else {
            return (pos, Vec::new());
        };
        let before = line.get(..pos).unwrap_or(line);
        let words = syntax::split_lenient(before);
        let at_word_end = !before.is_empty() && !before.ends_with(char::is_whitespace);
        let (done, start) = match words.split_last() {
            Some((last, rest)) if at_word_end => (rest, last.start),
            _ => (words.as_slice(), pos),
        };
        let current = &before[start..];
        let done: Vec<String> = done.iter().map(|w| w.text.clone()).collect();
        let entries = |path: &[String]| -> Vec<(&str, &str)> {
            tree.namespace(path)
                .map(|ns| ns.entry_names().map(|n| (n, " ")).collect())
                .unwrap_or_default()
        };
        let Some(first) = done.first() else {
            let mut names = entries(&self.cwd);
            names.extend(entries(&[]));
            names.extend(BUILTINS.iter().map(|b| (*b, " ")));
            return (start, pairs(current, names));
        };
        match first.as_str() {
            ".mode" if done.len() == 1 => (
                start,
                pairs(current, ["table", "csv", "json"].map(|m| (m, ""))),
            ),
            "ls" | "man" => match tree.resolve(&self.cwd, &done[1..]) {
                Resolved::Namespace(path) => (start, pairs(current, entries(&path))),
                _ => (start, Vec::new()),
            },
            "call" if done.len() == 1 => {
                let methods: Vec<(&str, &str)> = tree
                    .commands()
                    .into_iter()
                    .map(|c| (c.method.as_str(), " "))
                    .collect();
                (start, pairs(current, methods))
            }
            _ => match tree.resolve(&self.cwd, &done) {
                Resolved::Namespace(path) => (start, pairs(current, entries(&path))),
                Resolved::Command(cmd, n) => (start, argument_candidates(cmd, &done[n..], current)),
                Resolved::NotFound { .. } => (start, Vec::new()),
            },
        }
    }
}

/// `name=` for arguments not given yet; values after `name=`.
fn argument_candidates(cmd: &crate::tree::Command, given: &[String], current: &str) -> Vec<Pair> {
    let args = cmd.argument_names();
    if let Some((name, value)) = split_assignment(current) {
        let Some((_, s)) = args.iter().find(|(n, _)| *n == name) else {
            return Vec::new();
        };
        let types = s.types();
        let mut values: Vec<String> = Vec::new();
        if types.contains(&client::wire::JsonType::Boolean) {
            values.extend(["true".to_owned(), "false".to_owned()]);
        }
        if types.contains(&client::wire::JsonType::Null) {
            values.push("null".into());
        }
        if let Some(d) = &s.default {
            values.push(d.to_string());
        }
        if let Some(props) = &s.properties {
            // An object: a skeleton with its keys' defaults.
            let skeleton: serde_json::Map<String, serde_json::Value> = props
                .iter()
                .map(|(k, p)| {
                    (
                        k.to_owned(),
                        p.default.clone().unwrap_or(serde_json::Value::Null),
                    )
                })
                .collect();
            values.push(serde_json::Value::Object(skeleton).to_string());
        }
        values.dedup();
        let full: Vec<(String, String)> = values
            .into_iter()
            .map(|v| (format!("{name}={v}"), v))
            .collect();
        return full
            .iter()
            .filter(|(_, v)| v.starts_with(value))
            .map(|(f, v)| Pair {
                display: v.clone(),
                replacement: format!("{f} "),
            })
            .collect();
    }
    let used: Vec<&str> = given
        .iter()
        .filter_map(|w| split_assignment(w).map(|(n, _)| n))
        .collect();
    let mut names: Vec<(String, &str)> = args
        .iter()
        .filter(|(n, _)| !used.contains(n))
        .map(|(n, _)| (format!("{n}="), ""))
        .collect();
    if cmd.returns_text() && current.starts_with('-') {
        names.extend(["--qr", "--no-qr", "--png", "--svg"].map(|o| (o.to_owned(), " ")));
    }
    pairs(current, names.iter().map(|(n, s)| (n.as_str(), *s)))
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        Ok(self.candidates(line, pos))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}

impl Highlighter for ShellHelper {}

impl Validator for ShellHelper {}

impl Helper for ShellHelper {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::tests::sample;

    fn complete(cwd: &[&str], line: &str) -> Vec<String> {
        let h = ShellHelper {
            tree: Some(sample()),
            cwd: cwd.iter().map(|s| s.to_string()).collect(),
        };
        let (start, pairs) = h.candidates(line, line.len());
        pairs
            .into_iter()
            .map(|p| format!("{}{}", &line[..start], p.replacement))
            .collect()
    }

    #[test]
    fn completes_namespaces_and_commands() {
        assert_eq!(complete(&[], "au"), ["auth "]);
        assert_eq!(complete(&[], "auth tw"), ["auth two_factor "]);
        assert_eq!(
            complete(&[], "auth two_factor c"),
            ["auth two_factor config "]
        );
        assert_eq!(complete(&["auth", "two_factor"], "up"), ["update "]);
        assert_eq!(
            complete(&["auth", "two_factor"], "man ver"),
            ["man verify "]
        );
        assert_eq!(complete(&[], ".mode j"), [".mode json"]);
        assert!(complete(&[], "").contains(&"exit ".to_owned()));
    }

    #[test]
    fn completes_argument_names_and_values() {
        let cwd = ["auth", "two_factor"];
        assert_eq!(complete(&cwd, "update en"), ["update enabled="]);
        assert_eq!(
            complete(&cwd, "update enabled=true o"),
            ["update enabled=true otp_digits="]
        );
        assert_eq!(
            complete(&cwd, "update enabled="),
            ["update enabled=true ", "update enabled=false "]
        );
        assert_eq!(
            complete(&cwd, "update enabled=f"),
            ["update enabled=false "]
        );
        assert_eq!(
            complete(&cwd, "update otp_digits="),
            ["update otp_digits=6 "]
        );
        assert_eq!(
            complete(&cwd, "update services="),
            ["update services={\"ssh\":null} "]
        );
        assert_eq!(complete(&cwd, "verify "), ["verify token="]);
        assert_eq!(
            complete(&cwd, "provisioning_uri --p"),
            ["provisioning_uri --png "]
        );
        let names = complete(&cwd, "update enabled=true ");
        assert!(!names.iter().any(|n| n.ends_with("enabled=")), "{names:?}");
    }

    #[test]
    fn history_filter() {
        assert!(worth_remembering("auth two_factor config"));
        assert!(!worth_remembering("verify token=123456"));
        assert!(!worth_remembering("auth two_factor verify 123456"));
        assert!(!worth_remembering("   "));
        for login in [
            "call auth.login root PASSWORD",
            "call auth.login_ex {\"mechanism\":\"PASSWORD_PLAIN\",\"username\":\"root\",\"password\":\"x\"}",
            "call auth.login_ex_continue {\"mechanism\":\"OTP_TOKEN\",\"otp_token\":\"123456\"}",
            "call AUTH.LOGIN root hunter2",
            "call auth.login_with_api_key 1-abcdef",
            "auth login root hunter2",
        ] {
            assert!(!worth_remembering(login), "{login}");
        }
    }

    #[test]
    fn scripts_run_every_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = api::host::Config::defaults();
        config.state_dir = dir.path().join("state");
        let backend = crate::backend::Embedded::open(&config).unwrap();
        let mut engine = Engine::new(Box::new(backend), crate::render::Mode::Csv);
        let script = "auth two_factor\n# comment\n\nnope\nconfig\n";
        let mut out = Vec::new();
        let status = run_script(&mut engine, &mut script.as_bytes(), &mut out);
        assert_eq!(status, 1);
        assert!(
            String::from_utf8(out)
                .unwrap()
                .starts_with("id,otp_digits,")
        );
    }
}
