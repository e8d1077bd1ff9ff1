//! Running lines: built-ins, navigation, commands and raw calls. Shared by
//! one-shot runs, scripts on standard input and the interactive shell.

use std::io::Write;

use serde_json::Value;

use crate::args::{self, UnknownName};
use crate::backend::{Backend, CallError};
use crate::error::CliError;
use crate::help;
use crate::qr::{self, Palette};
use crate::render::{self, Mode};
use crate::syntax;
use crate::tree::{Command, Resolved, Tree};

/// Whether to go on reading lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Exit,
}

/// Built-in words of the shell (also offered by completion).
pub const BUILTINS: &[&str] = &[
    "..", "/", "ls", "man", "help", "?", ".mode", "call", "exit", "quit",
];

/// The state of a session of commands.
pub struct Engine {
    backend: Box<dyn Backend>,
    tree: Option<Tree>,
    pub mode: Mode,
    /// The current namespace.
    pub cwd: Vec<String>,
    /// Standard output is a terminal (draw the QR code of a URI by default).
    pub stdout_is_tty: bool,
    pub palette: Palette,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("mode", &self.mode)
            .field("cwd", &self.cwd)
            .finish_non_exhaustive()
    }
}

fn write_out(out: &mut dyn Write, text: &str) -> Result<(), CliError> {
    out.write_all(text.as_bytes())
        .map_err(|e| CliError::failed(format!("cannot write the output: {e}")))
}

impl Engine {
    pub fn new(backend: Box<dyn Backend>, mode: Mode) -> Self {
        Self {
            backend,
            tree: None,
            mode,
            cwd: Vec::new(),
            stdout_is_tty: false,
            palette: Palette::Ansi,
        }
    }

    pub fn hostname(&self) -> String {
        self.backend.hostname()
    }

    /// `[host]> ` at the root, `[host] auth two_factor> ` inside.
    pub fn prompt(&self) -> String {
        let host = self.hostname();
        if self.cwd.is_empty() {
            format!("[{host}]> ")
        } else {
            format!("[{host}] {}> ", self.cwd.join(" "))
        }
    }

    /// The namespace tree, read from the API the first time it is needed.
    pub fn tree(&mut self) -> Result<&Tree, CliError> {
        if self.tree.is_none() {
            let services = self.backend.call("core.get_services", Vec::new())?;
            let methods = self.backend.call("core.get_methods", Vec::new())?;
            self.tree = Some(Tree::from_introspection(&services, &methods));
        }
        self.tree
            .as_ref()
            .ok_or_else(|| CliError::failed("no namespace tree"))
    }

    /// Runs one line. In a `shell` (interactive or a script), naming a
    /// namespace enters it; in a one-shot run it lists it.
    pub fn run_line(
        &mut self,
        line: &str,
        shell: bool,
        out: &mut dyn Write,
    ) -> Result<Flow, CliError> {
        let words = syntax::split(line).map_err(|e| CliError::usage(e.to_string()))?;
        self.run_words(&words, shell, out)
    }

    pub fn run_words(
        &mut self,
        words: &[String],
        shell: bool,
        out: &mut dyn Write,
    ) -> Result<Flow, CliError> {
        let Some((first, rest)) = words.split_first() else {
            return Ok(Flow::Continue);
        };
        let no_args = |name: &str| {
            if rest.is_empty() {
                Ok(())
            } else {
                Err(CliError::usage(format!("`{name}` takes no arguments")))
            }
        };
        match first.as_str() {
            "exit" | "quit" => {
                no_args(first)?;
                return Ok(Flow::Exit);
            }
            ".." => {
                no_args(first)?;
                self.cwd.pop();
            }
            "/" => {
                no_args(first)?;
                self.cwd.clear();
            }
            "help" | "?" => write_out(out, &help::general())?,
            ".mode" => match rest {
                [] => write_out(out, &format!("{}\n", self.mode))?,
                [m] => self.mode = m.parse().map_err(CliError::Usage)?,
                _ => return Err(CliError::usage("usage: .mode table|csv|json")),
            },
            "ls" => {
                let cwd = self.cwd.clone();
                let tree = self.tree()?;
                let path = match tree.resolve(&cwd, rest) {
                    Resolved::Namespace(path) => path,
                    Resolved::Command(c, _) => {
                        return Err(CliError::usage(format!("`{}` is a command", c.full_name())));
                    }
                    Resolved::NotFound {
                        word, suggestion, ..
                    } => return Err(not_found(&word, suggestion)),
                };
                let text = tree.namespace(&path).map(help::listing).unwrap_or_default();
                write_out(out, &text)?;
            }
            "man" => {
                if rest.is_empty() {
                    return Err(CliError::usage("usage: man COMMAND"));
                }
                let cwd = self.cwd.clone();
                let tree = self.tree()?;
                let text = match tree.resolve(&cwd, rest) {
                    Resolved::Command(c, n) if n == rest.len() => help::manual(c),
                    Resolved::Command(c, _) => {
                        return Err(CliError::usage(format!("usage: man {}", c.full_name())));
                    }
                    Resolved::Namespace(path) => tree
                        .namespace(&path)
                        .map(help::namespace_manual)
                        .unwrap_or_default(),
                    Resolved::NotFound {
                        word, suggestion, ..
                    } => return Err(not_found(&word, suggestion)),
                };
                write_out(out, &text)?;
            }
            "call" => {
                let Some((method, params)) = rest.split_first() else {
                    return Err(CliError::usage("usage: call METHOD [JSON params...]"));
                };
                self.call_raw(method, params, out)?;
            }
            _ => {
                let cwd = self.cwd.clone();
                let resolved = match self.tree()?.resolve(&cwd, words) {
                    Resolved::Command(c, n) => Ok((c.clone(), n)),
                    Resolved::Namespace(path) => Err(Ok(path)),
                    Resolved::NotFound {
                        word, suggestion, ..
                    } => Err(Err(not_found(&word, suggestion))),
                };
                match resolved {
                    Ok((command, n)) => self.run_command(&command, &words[n..], out)?,
                    Err(Ok(path)) if shell => self.cwd = path,
                    Err(Ok(path)) => {
                        let text = self
                            .tree()?
                            .namespace(&path)
                            .map(help::listing)
                            .unwrap_or_default();
                        write_out(out, &text)?;
                    }
                    Err(Err(e)) => return Err(e),
                }
            }
        }
        Ok(Flow::Continue)
    }

    /// `call METHOD [JSON params...]`: each param is JSON (else a string);
    /// the result is printed as JSON.
    pub fn call_raw(
        &mut self,
        method: &str,
        params: &[String],
        out: &mut dyn Write,
    ) -> Result<(), CliError> {
        let params = params
            .iter()
            .map(|p| serde_json::from_str(p).unwrap_or_else(|_| Value::String(p.clone())))
            .collect();
        let result = self.backend.call(method, params)?;
        write_out(out, &render::render(&result, Mode::Json))
    }

    /// Runs an API command with its argument words.
    pub fn run_command(
        &mut self,
        command: &Command,
        words: &[String],
        out: &mut dyn Write,
    ) -> Result<(), CliError> {
        let invocation = args::invocation(command, words)?;
        let is_update = command.config_service && command.name == "update";
        let before = if is_update {
            self.before_update(command, &invocation.params)
        } else {
            None
        };
        let result = match self.backend.call(&command.method, invocation.params) {
            Ok(v) => v,
            Err(CallError::Rpc(error)) => {
                return Err(with_hints(error, &invocation.unknown, command));
            }
            Err(e) => return Err(e.into()),
        };
        if is_update {
            // midcli prints nothing after an update; json mode is for scripts.
            if self.mode == Mode::Json {
                write_out(out, &render::render(&result, Mode::Json))?;
            }
            if let Some(note) = before.and_then(|b| reprovision_note(command, &b, &result)) {
                write_out(out, &note)?;
            }
            return Ok(());
        }
        write_out(out, &render::render(&result, self.mode))?;
        if let Value::String(text) = &result {
            self.present(text, &invocation.presentation, out)?;
        }
        Ok(())
    }

    /// QR code in the terminal and image files of a text result.
    fn present(
        &self,
        text: &str,
        p: &args::Presentation,
        out: &mut dyn Write,
    ) -> Result<(), CliError> {
        let by_default =
            self.stdout_is_tty && self.mode == Mode::Table && text.starts_with("otpauth://");
        let draw = p.qr.unwrap_or(by_default);
        if !(draw || p.png.is_some() || p.svg.is_some()) {
            return Ok(());
        }
        // Refuse a path that is not a regular file before anything is drawn
        // or written.
        for path in p.png.iter().chain(&p.svg) {
            qr::check_target(path).map_err(CliError::failed)?;
        }
        let matrix = qr::Matrix::encode(text).map_err(CliError::failed)?;
        if draw {
            write_out(out, &qr::terminal(&matrix, self.palette))?;
        }
        if let Some(path) = &p.png {
            let bytes = qr::png_bytes(&matrix).map_err(CliError::failed)?;
            qr::write_atomic(path, &bytes).map_err(CliError::failed)?;
        }
        if let Some(path) = &p.svg {
            let svg = qr::svg_text(text).map_err(CliError::failed)?;
            qr::write_atomic(path, svg.as_bytes()).map_err(CliError::failed)?;
        }
        Ok(())
    }

    /// The entry before an update that may change how codes are made.
    fn before_update(&mut self, command: &Command, params: &[Value]) -> Option<Value> {
        let changes = params.first()?.as_object()?;
        if !reprovision_keys(command)
            .iter()
            .any(|k| changes.contains_key(*k))
        {
            return None;
        }
        self.backend
            .call(&format!("{}.config", command.service), Vec::new())
            .ok()
    }
}

/// Keys whose change makes every provisioned app produce wrong codes
/// (SPEC §3: "apps must be provisioned again; the CLI says so"): the API
/// marks them `x-reprovision` in the update's schema.
fn reprovision_keys(command: &Command) -> Vec<&str> {
    let Some(props) = command.accepts.first().and_then(crate::schema::properties) else {
        return Vec::new();
    };
    props
        .iter()
        .filter(|(_, s)| s.get("x-reprovision").and_then(Value::as_bool) == Some(true))
        .map(|(k, _)| k.as_str())
        .collect()
}

fn reprovision_note(command: &Command, before: &Value, after: &Value) -> Option<String> {
    after.get("secret").and_then(Value::as_str)?;
    let changed: Vec<String> = reprovision_keys(command)
        .iter()
        .filter(|k| before.get(**k).is_some() && before.get(**k) != after.get(**k))
        .map(|k| format!("{k} {} -> {}", before[*k], after[*k]))
        .collect();
    if changed.is_empty() {
        return None;
    }
    let mut path = command.path.clone();
    path.push("provisioning_uri".into());
    Some(format!(
        "Note: {} changed: authenticator apps must be provisioned again (`{}`).\n",
        changed.join(", "),
        path.join(" ")
    ))
}

fn not_found(word: &str, suggestion: Option<String>) -> CliError {
    let mut text = format!("Namespace {word} not found");
    if let Some(s) = suggestion {
        text.push_str(&format!("\nDid you mean `{s}`?"));
    }
    CliError::Usage(text)
}

/// Adds "did you mean" hints for misspelled names to the API's answer. When
/// the misspellings were the only problems, it is a usage error (exit 2).
fn with_hints(error: Box<wire::RpcError>, unknown: &[UnknownName], command: &Command) -> CliError {
    if unknown.is_empty() {
        return CliError::Rpc {
            error,
            hints: Vec::new(),
        };
    }
    let is_unknown = |attribute: &str, message: &str| {
        message == "Field was not expected"
            && unknown
                .iter()
                .any(|u| attribute.rsplit_once('.').map_or(attribute, |(_, n)| n) == u.name)
    };
    let validation = error.kind() == Some(wire::ErrorCode::InvalidParams);
    let problems = error
        .data
        .as_ref()
        .map(wire::TruenasError::problems)
        .unwrap_or_default();
    if validation && !problems.is_empty() && problems.iter().all(|(a, m, _)| is_unknown(a, m)) {
        let valid: Vec<&str> = command
            .argument_names()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        let lines: Vec<String> = unknown
            .iter()
            .map(|u| args::unknown_name_error(u, &valid).to_string())
            .collect();
        return CliError::Usage(lines.join("\n"));
    }
    CliError::Rpc {
        error,
        hints: unknown
            .iter()
            .filter(|u| u.suggestion.is_some())
            .map(UnknownName::hint)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The real API in-process on a temporary state directory.
    fn engine() -> (Engine, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let mut config = service::Config::defaults();
        config.state_dir = dir.path().join("state");
        let backend = crate::backend::Embedded::open(&config).unwrap();
        (Engine::new(Box::new(backend), Mode::Table), dir)
    }

    fn run(e: &mut Engine, line: &str) -> Result<String, CliError> {
        let mut out = Vec::new();
        e.run_line(line, true, &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn navigation_and_prompt() {
        let (mut e, _d) = engine();
        let host = e.hostname();
        assert_eq!(e.prompt(), format!("[{host}]> "));
        run(&mut e, "auth two_factor").unwrap();
        assert_eq!(e.prompt(), format!("[{host}] auth two_factor> "));
        assert!(run(&mut e, "config").unwrap().contains("otp_digits"));
        run(&mut e, "..").unwrap();
        assert_eq!(e.cwd, ["auth"]);
        assert!(run(&mut e, "ls").unwrap().starts_with("two_factor"));
        run(&mut e, "/").unwrap();
        assert!(e.cwd.is_empty());
        let err = run(&mut e, "auth two_factor uodate enabled=true").unwrap_err();
        assert_eq!(
            (err.to_string().as_str(), err.exit_code()),
            ("Namespace uodate not found\nDid you mean `update`?", 2)
        );
        assert_eq!(
            e.run_line("exit", true, &mut Vec::new()).unwrap(),
            Flow::Exit
        );
    }

    #[test]
    fn update_is_silent_and_notes_reprovisioning() {
        let (mut e, _d) = engine();
        assert_eq!(
            run(&mut e, "auth two_factor update otp_digits=8").unwrap(),
            "",
            "no secret yet: no note"
        );
        assert_eq!(
            run(&mut e, "auth two_factor update enabled=true").unwrap(),
            ""
        );
        let note = run(&mut e, "auth two_factor update interval=60").unwrap();
        assert_eq!(
            note,
            "Note: interval 30 -> 60 changed: authenticator apps must be provisioned again (`auth two_factor provisioning_uri`).\n"
        );
        assert_eq!(
            run(&mut e, "auth two_factor update interval=60 window=1").unwrap(),
            "",
            "unchanged"
        );
        e.mode = Mode::Json;
        let v: Value =
            serde_json::from_str(&run(&mut e, "auth two_factor update window=2").unwrap()).unwrap();
        assert_eq!(v["window"], 2);
    }

    #[test]
    fn misspelled_names() {
        let (mut e, _d) = engine();
        let err = run(&mut e, "auth two_factor update enable=true").unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert_eq!(
            err.to_string(),
            "Unknown argument `enable`: did you mean `enabled`?"
        );
        let err = run(&mut e, "auth two_factor update enable=true otp_digits=5").unwrap_err();
        assert_eq!(err.exit_code(), 1);
        assert_eq!(
            err.to_string(),
            "Validation errors:\n* auth_twofactor_update.enable: Field was not expected\n\
             * auth_twofactor_update.otp_digits: Should be between 6 and 8\n\
             Unknown argument `enable`: did you mean `enabled`?"
        );
        let err = run(&mut e, "auth two_factor verify tokn=1").unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn raw_calls_and_modes() {
        let (mut e, _d) = engine();
        let out = run(&mut e, "call auth.twofactor.update {\"enabled\": false}").unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["enabled"], json!(false));
        run(&mut e, ".mode csv").unwrap();
        assert_eq!(run(&mut e, ".mode").unwrap(), "csv\n");
        assert!(
            run(&mut e, "auth two_factor config")
                .unwrap()
                .starts_with("id,1\n")
        );
        assert_eq!(run(&mut e, ".mode xml").unwrap_err().exit_code(), 2);
        assert!(
            run(&mut e, "man auth two_factor update")
                .unwrap()
                .contains("otp_digits")
        );
        assert!(run(&mut e, "help").unwrap().contains("man"));
    }

    #[test]
    fn uri_presentation() {
        let (mut e, d) = engine();
        let err = run(&mut e, "auth two_factor provisioning_uri").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("Error: Two Factor Authentication secret has not been generated."),
            "{err}"
        );
        run(&mut e, "auth two_factor update enabled=true").unwrap();
        let uri = run(&mut e, "auth two_factor provisioning_uri").unwrap();
        assert!(
            uri.starts_with("otpauth://totp/") && uri.lines().count() == 1,
            "{uri}"
        );
        e.stdout_is_tty = true;
        let with_qr = run(&mut e, "auth two_factor provisioning_uri").unwrap();
        assert!(with_qr.starts_with(&uri) && with_qr.contains('█'));
        assert_eq!(
            run(&mut e, "auth two_factor provisioning_uri --no-qr").unwrap(),
            uri
        );
        let png = d.path().join("qr.png");
        let svg = d.path().join("qr.svg");
        let line = format!(
            "auth two_factor provisioning_uri --no-qr --png {} --svg {}",
            png.display(),
            svg.display()
        );
        run(&mut e, &line).unwrap();
        assert!(std::fs::metadata(&png).unwrap().len() > 100);
        assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    }
}
