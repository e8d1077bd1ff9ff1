//! Running lines: built-ins, navigation, commands and raw calls. Shared by
//! one-shot runs, scripts on standard input and the interactive shell.

use std::io::Write;

use client::wire;
use serde_json::Value;

use crate::args::{self, UnknownName};
use crate::backend::{Backend, CLI_TARGET, CallError};
use crate::error::CliError;
use crate::help;
use crate::qr::{self, Palette};
use crate::render::{self, Mode};
use crate::syntax;
use crate::tree::{self, Command, Resolved, Tree};

/// Whether to go on reading lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Exit,
}

/// Built-in words of the shell (also offered by completion).
pub const BUILTINS: &[&str] = &[
    "..", "/", "ls", "man", "help", "?", ".mode", "call", "exit", "quit", "status",
];

/// The method behind `status` (also `system status`).
pub const STATUS_METHOD: &str = "system.twofactor_status";

/// What a list of words names (a name that is neither is an error).
#[derive(Debug)]
enum Located {
    /// A command, and how many words named it (the rest are arguments).
    Command(Box<Command>, usize),
    /// A namespace (its full path).
    Namespace(Vec<String>),
}

/// The state of a session of commands.
pub struct Engine {
    backend: Box<dyn Backend>,
    /// `core.get_services`, once asked.
    services: Option<wire::ServiceDocs>,
    tree: Option<Tree>,
    pub mode: Mode,
    /// The current namespace.
    pub cwd: Vec<String>,
    /// Standard output is a terminal (draw the QR code of a URI by default).
    pub stdout_is_tty: bool,
    pub palette: Palette,
    /// Asks for a code from an authenticator app on the terminal (set when
    /// both standard input and output are terminals). Given the URI the
    /// app was shown; returns what the user typed.
    pub code_prompt: Option<CodePrompt>,
    /// Where notes go (what to do next, warnings): standard error, so
    /// that standard output stays the command's result.
    pub notes: Box<dyn Write>,
    /// The daemon's URL when connected to one (shown by `status`).
    pub location: Option<String>,
}

/// See [`Engine::code_prompt`].
pub type CodePrompt = Box<dyn FnMut(&str) -> Result<String, CliError>>;

/// The prompt of the terminal enrolment flow.
pub const CODE_PROMPT: &str = "Code from your app: ";

/// How many codes the terminal enrolment flow takes before giving up.
const CONFIRM_TRIES: usize = 3;

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("mode", &self.mode)
            .field("cwd", &self.cwd)
            .finish_non_exhaustive()
    }
}

/// The reason an introspection answer could not be read as its type.
fn not_understood(e: &serde_json::Error) -> CliError {
    CliError::failed(format!("the API's description is not understood: {e}"))
}

fn no_services() -> CliError {
    CliError::failed("no service list")
}

fn write_out(out: &mut dyn Write, text: &str) -> Result<(), CliError> {
    out.write_all(text.as_bytes())
        .map_err(|e| CliError::failed(format!("cannot write the output: {e}")))
}

impl Engine {
    pub fn new(backend: Box<dyn Backend>, mode: Mode) -> Self {
        Self {
            backend,
            services: None,
            tree: None,
            mode,
            cwd: Vec::new(),
            stdout_is_tty: false,
            palette: Palette::Ansi,
            code_prompt: None,
            notes: Box::new(std::io::stderr()),
            location: None,
        }
    }

    /// Writes a note on the notes stream (standard error). A note that
    /// cannot be written is not worth failing the command for.
    fn note(&mut self, text: &str) {
        let _ = writeln!(self.notes, "{text}");
        let _ = self.notes.flush();
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
    /// Introspection is asked for the `CLI` target (as midcli does): only
    /// services with a CLI namespace and their CLI methods are described,
    /// which is all the tree keeps.
    pub fn tree(&mut self) -> Result<&Tree, CliError> {
        if self.tree.is_none() {
            self.services()?;
            let methods = self
                .backend
                .call("core.get_methods", vec![Value::Null, CLI_TARGET.into()])?;
            let methods: wire::MethodDocs =
                serde_json::from_value(methods).map_err(|e| not_understood(&e))?;
            let services = self.services.as_ref().ok_or_else(no_services)?;
            self.tree = Some(Tree::from_introspection(services, methods));
        }
        self.tree
            .as_ref()
            .ok_or_else(|| CliError::failed("no namespace tree"))
    }

    /// `core.get_services`, asked once.
    fn services(&mut self) -> Result<&wire::ServiceDocs, CliError> {
        if self.services.is_none() {
            self.services = Some(self.backend.cli_services()?);
        }
        self.services.as_ref().ok_or_else(no_services)
    }

    /// What `words` name from the current namespace. `command_wanted`:
    /// a command is what is looked for (then it is looked for first without
    /// reading the whole tree).
    fn locate(&mut self, words: &[String], command_wanted: bool) -> Result<Located, CliError> {
        if command_wanted && let Some(found) = self.locate_command_quickly(words)? {
            return Ok(found);
        }
        let cwd = self.cwd.clone();
        match self.tree()?.resolve(&cwd, words) {
            Resolved::Command(c, n) => Ok(Located::Command(Box::new(c.clone()), n)),
            Resolved::Namespace(path) => Ok(Located::Namespace(path)),
            Resolved::NotFound {
                word,
                suggestion,
                path,
            } => {
                let mut full = path;
                full.push(word.clone());
                let services = self.services.as_ref().ok_or_else(no_services)?;
                if tree::is_service_path(services, &full) {
                    return Err(CliError::usage(format!(
                        "Namespace {} is not available to this user: its commands are for \
                         administrators",
                        full.join(" ")
                    )));
                }
                Err(not_found(&word, suggestion))
            }
        }
    }

    /// Before the whole tree is read: the command `words` name, found by
    /// describing only the services it can belong to (a one-shot command
    /// needs one service's methods, not every schema of the API). `None`
    /// when `words` name no command that way; then the whole tree decides.
    fn locate_command_quickly(&mut self, words: &[String]) -> Result<Option<Located>, CliError> {
        if self.tree.is_some() {
            return Ok(None);
        }
        let nested = !self.cwd.is_empty();
        let mut full = self.cwd.clone();
        full.extend_from_slice(words);
        let services = self.services()?;
        let mut wanted = tree::services_for(services, &full);
        if nested {
            // A full path typed inside a namespace is tried from the root too.
            for name in tree::services_for(services, words) {
                if !wanted.contains(&name) {
                    wanted.push(name);
                }
            }
        }
        if wanted.is_empty() {
            return Ok(None);
        }
        if !nested && let Some(found) = self.locate_by_name(words)? {
            return Ok(Some(found));
        }
        let mut methods = wire::MethodDocs::default();
        let mut complete = true;
        for name in &wanted {
            let (listed, described) = self.backend.cli_methods(name)?;
            complete &= described;
            methods.extend(listed);
        }
        let services = self.services.as_ref().ok_or_else(no_services)?;
        let Some((command, n)) = Tree::partial(services, methods).into_command(&self.cwd, words)
        else {
            return Ok(None);
        };
        let command = Box::new(command);
        if complete {
            return Ok(Some(Located::Command(command, n)));
        }
        // Only names were listed: describe the one command and find it
        // again, now with its description.
        let described = self
            .backend
            .describe_cli_method(&command.service, &command.method)?;
        let one = described
            .map(|d| (command.method.clone(), d))
            .into_iter()
            .collect();
        let services = self.services.as_ref().ok_or_else(no_services)?;
        Ok(Tree::partial(services, one)
            .into_command(&self.cwd, words)
            .filter(|(_, found)| *found == n)
            .map(|(c, n)| Located::Command(Box::new(c), n)))
    }

    /// The command `words` name when the word after their service's
    /// namespace is the method's own name (as it is for every command typed
    /// in full): only that method is described, not its service's
    /// listing. `None` when no guess resolves; then the listing decides.
    fn locate_by_name(&mut self, words: &[String]) -> Result<Option<Located>, CliError> {
        let guesses = tree::method_guesses(self.services()?, words);
        let mut described = wire::MethodDocs::default();
        for (service, method) in guesses {
            if let Some(d) = self.backend.describe_cli_method(&service, &method)? {
                described.insert(method, d);
            }
        }
        if described.is_empty() {
            return Ok(None);
        }
        let services = self.services.as_ref().ok_or_else(no_services)?;
        Ok(Tree::partial(services, described)
            .into_command(&self.cwd, words)
            .map(|(c, n)| Located::Command(Box::new(c), n)))
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

    /// Runs one line split into words: a built-in, else a path to a
    /// namespace or a command.
    pub fn run_words(
        &mut self,
        words: &[String],
        shell: bool,
        out: &mut dyn Write,
    ) -> Result<Flow, CliError> {
        let Some((first, rest)) = words.split_first() else {
            return Ok(Flow::Continue);
        };
        let no_args = || {
            if rest.is_empty() {
                Ok(())
            } else {
                Err(CliError::usage(format!("`{first}` takes no arguments")))
            }
        };
        match first.as_str() {
            "exit" | "quit" => {
                no_args()?;
                return Ok(Flow::Exit);
            }
            ".." => {
                no_args()?;
                self.cwd.pop();
            }
            "/" => {
                no_args()?;
                self.cwd.clear();
            }
            "help" | "?" => write_out(out, &help::general())?,
            ".mode" => self.mode_builtin(rest, out)?,
            "ls" => self.list(rest, out)?,
            "man" => self.manual(rest, out)?,
            "status" if rest.is_empty() && (self.cwd.is_empty() || self.cwd == ["system"]) => {
                self.status(out)?;
            }
            "system" if rest == ["status"] && self.cwd.is_empty() => self.status(out)?,
            "call" => {
                let Some((method, params)) = rest.split_first() else {
                    return Err(CliError::usage("usage: call METHOD [JSON params...]"));
                };
                self.call_raw(method, params, out)?;
            }
            _ => self.run_path(words, shell, out)?,
        }
        Ok(Flow::Continue)
    }

    /// `status`: where the state is and what it says (see
    /// [`STATUS_METHOD`]); `-m json` gives the same as one object.
    fn status(&mut self, out: &mut dyn Write) -> Result<(), CliError> {
        let mut status = self.backend.call(STATUS_METHOD, Vec::new())?;
        if let (Some(map), Some(location)) = (status.as_object_mut(), &self.location) {
            map.insert("url".into(), Value::String(location.clone()));
        }
        let text = match self.mode {
            Mode::Json => render::render(&status, Mode::Json),
            _ => status_text(&status),
        };
        write_out(out, &text)
    }

    /// `.mode` shows the output format; `.mode FORMAT` sets it.
    fn mode_builtin(&mut self, rest: &[String], out: &mut dyn Write) -> Result<(), CliError> {
        match rest {
            [] => write_out(out, &format!("{}\n", self.mode)),
            [m] => {
                self.mode = m.parse().map_err(CliError::Usage)?;
                Ok(())
            }
            _ => Err(CliError::usage("usage: .mode table|csv|json")),
        }
    }

    /// `ls [NAMESPACE]`: the namespace's entries.
    fn list(&mut self, rest: &[String], out: &mut dyn Write) -> Result<(), CliError> {
        let path = match self.locate(rest, false)? {
            Located::Namespace(path) => path,
            Located::Command(c, _) => {
                return Err(CliError::usage(format!("`{}` is a command", c.full_name())));
            }
        };
        let text = self.tree()?.namespace(&path).map(help::listing);
        write_out(out, &text.unwrap_or_default())
    }

    /// `man COMMAND` or `man NAMESPACE`.
    fn manual(&mut self, rest: &[String], out: &mut dyn Write) -> Result<(), CliError> {
        if rest.is_empty() {
            return Err(CliError::usage("usage: man COMMAND"));
        }
        let text = match self.locate(rest, true)? {
            Located::Command(c, n) if n == rest.len() => help::manual(&c),
            Located::Command(c, _) => {
                return Err(CliError::usage(format!("usage: man {}", c.full_name())));
            }
            Located::Namespace(path) => self
                .tree()?
                .namespace(&path)
                .map(help::namespace_manual)
                .unwrap_or_default(),
        };
        write_out(out, &text)
    }

    /// Words that are not a built-in: a command with its arguments, or a
    /// namespace (entered in a shell, listed otherwise), or a namespace
    /// followed by `ls` or `man` (that built-in run inside it, as in midcli).
    fn run_path(
        &mut self,
        words: &[String],
        shell: bool,
        out: &mut dyn Write,
    ) -> Result<(), CliError> {
        if let Some((path, at)) = self.builtin_in_namespace(words)? {
            let cwd = std::mem::replace(&mut self.cwd, path);
            let result = self.run_words(&words[at..], false, out);
            self.cwd = cwd;
            return result.map(drop);
        }
        match self.locate(words, true)? {
            Located::Command(command, n) => self.run_command(&command, &words[n..], out),
            Located::Namespace(path) if shell => {
                self.cwd = path;
                Ok(())
            }
            Located::Namespace(path) => {
                let text = self.tree()?.namespace(&path).map(help::listing);
                write_out(out, &text.unwrap_or_default())
            }
        }
    }

    /// When `words` are a namespace path followed by `ls` or `man`, that
    /// namespace and the built-in's position.
    fn builtin_in_namespace(
        &mut self,
        words: &[String],
    ) -> Result<Option<(Vec<String>, usize)>, CliError> {
        let Some(at) = words.iter().position(|w| w == "ls" || w == "man") else {
            return Ok(None);
        };
        if at == 0 {
            return Ok(None);
        }
        let cwd = self.cwd.clone();
        Ok(match self.tree()?.resolve(&cwd, &words[..at]) {
            Resolved::Namespace(path) => Some((path, at)),
            _ => None,
        })
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
        let first_param = invocation.params.first().cloned();
        let params = invocation.params.clone();
        let named = named_params(command, &invocation.params);
        let result = match self.backend.call(&command.method, invocation.params) {
            Ok(v) => v,
            Err(CallError::Rpc(error)) if needs_step_up(&error) && self.code_prompt.is_some() => {
                self.step_up_and_retry(&command.method, params, error)?
            }
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
            if let Some(before) = before {
                if let Some(note) = reprovision_note(command, &before, &result) {
                    self.note(&note);
                }
                if let Some(note) = new_secret_note(command, &before, &result) {
                    self.note(&note);
                }
            }
            return Ok(());
        }
        // An audit record's detail is what an administrator reads it for:
        // text in a table, not `<dict>`.
        let result = if self.mode == Mode::Table && command.method == "audit.query" {
            render::audit_details_readable(result)
        } else {
            result
        };
        write_out(out, &render::render(&result, self.mode))?;
        if let Value::String(text) = &result {
            self.present(text, &invocation.presentation, out)?;
        }
        self.after_command(command, &named, &result)?;
        self.confirm(command, first_param, &invocation.presentation, &result, out)
    }

    /// A call refused until a current code of the account's secret is
    /// proved (step-up): asks `Code from your app: `, proves it with
    /// `user.verify_twofactor_token` for the account the call names (its
    /// first argument), and makes the call once more. Only on a terminal
    /// (with no prompt the refusal is printed as it is).
    fn step_up_and_retry(
        &mut self,
        method: &str,
        params: Vec<Value>,
        error: Box<wire::RpcError>,
    ) -> Result<Value, CliError> {
        let (Some(Value::String(user)), Some(prompt)) =
            (params.first().cloned(), self.code_prompt.as_mut())
        else {
            return Err(CallError::Rpc(error).into());
        };
        let code = zeroize::Zeroizing::new(prompt("")?);
        let proved = self.backend.call(
            "user.verify_twofactor_token",
            vec![Value::String(user), Value::String(code.trim().to_owned())],
        )?;
        if proved != Value::Bool(true) {
            return Err(CliError::failed(
                "that is not a current code (or unused recovery code) of this account",
            ));
        }
        Ok(self.backend.call(method, params)?)
    }

    /// What to tell after a command that changed a secret or showed
    /// something that is shown once; and, for a code refused because it
    /// is not shaped like one, what shape was expected.
    fn after_command(
        &mut self,
        command: &Command,
        named: &[(String, Value)],
        result: &Value,
    ) -> Result<(), CliError> {
        let username = named
            .iter()
            .find(|(n, _)| n == "username")
            .map(|(_, v)| v.clone());
        if command.name.starts_with("renew")
            && result != &Value::Bool(false)
            && let Some(uri_command) = self.sibling(command, "provisioning_uri")?
        {
            let mut line = format!("tfa {}", uri_command.full_name());
            if let Some(Value::String(u)) = &username {
                line.push_str(&format!(" username={}", render::escape_controls(u)));
            }
            self.note(&format!(
                "A new secret was made: every authenticator app must scan it again: `{line} --qr`"
            ));
        }
        if command.name.contains("recovery_codes") && result.is_array() {
            self.note("Recovery codes are shown once: store them now.");
        }
        if result == &Value::Bool(false)
            && let Some((_, Value::String(token))) =
                named.iter().find(|(n, _)| n == args::CODE_ARGUMENT)
        {
            let digits = self.expected_digits(command, username.as_ref());
            if let Some(d) = digits
                && api::host::is_malformed_code(token, d)
            {
                self.note(&format!("expected {d} digits"));
            }
        }
        Ok(())
    }

    /// The digits a code for `command`'s secret has: root's from the
    /// entry, an account's from its settings.
    fn expected_digits(&mut self, command: &Command, username: Option<&Value>) -> Option<u8> {
        let config = if command.config_service {
            self.backend
                .call(&format!("{}.config", command.service), Vec::new())
        } else {
            let user = username?.clone();
            self.backend.call("user.twofactor_config", vec![user])
        };
        config
            .ok()?
            .get("otp_digits")?
            .as_u64()
            .and_then(|d| u8::try_from(d).ok())
    }

    /// The command `name` in `command`'s namespace, if there is one.
    fn sibling(&mut self, command: &Command, name: &str) -> Result<Option<Command>, CliError> {
        Ok(
            match self.tree()?.resolve(&command.path, &[name.to_owned()]) {
                Resolved::Command(c, _) => Some(c.clone()),
                _ => None,
            },
        )
    }

    /// The terminal flow of a command that answers a pending
    /// `provisioning_uri` and has a sibling `NAME_confirm` taking the same
    /// first argument and a code (`account user twofactor_enroll`): draw
    /// the QR code, ask `Code from your app: `, confirm. Found
    /// from the namespace tree, not from a list of methods. Nothing
    /// happens without a terminal (scripts call the confirm command).
    fn confirm(
        &mut self,
        command: &Command,
        first: Option<Value>,
        presentation: &args::Presentation,
        result: &Value,
        out: &mut dyn Write,
    ) -> Result<(), CliError> {
        let Some(uri) = result.get("provisioning_uri").and_then(Value::as_str) else {
            return Ok(());
        };
        if self.code_prompt.is_none() || self.mode != Mode::Table {
            return Ok(());
        }
        let confirm_word = format!("{}_confirm", command.name);
        let confirm = match self.tree()?.resolve(&command.path, &[confirm_word]) {
            Resolved::Command(c, _) => c.method.clone(),
            _ => return Ok(()),
        };
        let first = first.unwrap_or(Value::Null);
        let uri = zeroize::Zeroizing::new(uri.to_owned());
        let presentation = args::Presentation {
            qr: Some(presentation.qr.unwrap_or(true)),
            ..presentation.clone()
        };
        self.present(&uri, &presentation, out)?;
        out.flush()
            .map_err(|e| CliError::failed(format!("cannot write the output: {e}")))?;
        let digits = result
            .get("otp_digits")
            .and_then(Value::as_u64)
            .and_then(|d| u8::try_from(d).ok());
        for attempt in 1..=CONFIRM_TRIES {
            let Some(prompt) = self.code_prompt.as_mut() else {
                return Ok(());
            };
            let code = zeroize::Zeroizing::new(prompt(&uri)?);
            let code = code.trim();
            match self.backend.call(
                &confirm,
                vec![first.clone(), Value::String(code.to_owned())],
            ) {
                Ok(done) => {
                    write_out(out, "Confirmed: the new secret is active.\n")?;
                    return write_out(out, &render::render(&done, self.mode));
                }
                // A wrong code (EINVAL) leaves the pending secret pending:
                // ask again. Anything else (an expired enrolment is ESTALE)
                // ends the flow with its own message. The last refusal is
                // the command's error, printed once.
                Err(CallError::Rpc(e))
                    if e.data
                        .as_ref()
                        .is_some_and(|d| d.error == wire::Errno::EINVAL) =>
                {
                    let shape = digits
                        .filter(|d| api::host::is_malformed_code(code, *d))
                        .map(|d| format!("expected {d} digits; "));
                    if attempt == CONFIRM_TRIES {
                        return Err(match shape {
                            Some(s) => {
                                CliError::failed(format!("{s}the pending secret stays pending"))
                            }
                            None => CallError::Rpc(e).into(),
                        });
                    }
                    let text = match shape {
                        Some(s) => format!("{s}the pending secret stays pending\n"),
                        None => format!("{}\n", CliError::from(CallError::Rpc(e))),
                    };
                    write_out(out, &text)?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(CliError::failed("not confirmed"))
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
            // Colour codes are for a terminal, not for a pipe or a file.
            let palette = if self.stdout_is_tty {
                self.palette
            } else {
                Palette::Inverted
            };
            write_out(out, &qr::terminal(&matrix, palette))?;
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
        if !changes.contains_key("enabled")
            && !reprovision_keys(command)
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
/// (apps must be provisioned again, and the CLI says so): the API
/// marks them `x-reprovision` in the update's schema.
fn reprovision_keys(command: &Command) -> Vec<&str> {
    let Some(props) = command.accepts.first().and_then(|s| s.properties.as_ref()) else {
        return Vec::new();
    };
    props
        .iter()
        .filter(|(_, s)| s.reprovision)
        .map(|(k, _)| k)
        .collect()
}

/// The params of a call by argument name (the properties of a single
/// object param, else each positional param under its schema's name).
fn named_params(command: &Command, params: &[Value]) -> Vec<(String, Value)> {
    if command.object_param().is_some() {
        return params
            .first()
            .and_then(Value::as_object)
            .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
    }
    command
        .accepts
        .iter()
        .zip(params)
        .filter_map(|(s, v)| Some((s.param_name()?.to_owned(), v.clone())))
        .collect()
}

/// `update enabled=true` that made root's secret: what to do next.
fn new_secret_note(command: &Command, before: &Value, after: &Value) -> Option<String> {
    let had = before.get("secret").is_some_and(|s| !s.is_null());
    let has = after.get("secret").is_some_and(|s| !s.is_null());
    if had || !has {
        return None;
    }
    let mut path = command.path.clone();
    path.push("provisioning_uri".into());
    Some(format!(
        "A new secret was made: scan it into the authenticator app with `tfa {} --qr`",
        path.join(" ")
    ))
}

/// The key/value lines of `status` in the table mode.
fn status_text(status: &Value) -> String {
    let get = |k: &str| status.get(k).cloned().unwrap_or(Value::Null);
    let on_off = |v: Value| if v == Value::Bool(true) { "on" } else { "off" };
    let words = |v: Value| match v {
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "none".to_owned(),
    };
    let text = |v: Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    let mut mode = text(get("mode"));
    if let Value::String(url) = get("url") {
        mode.push_str(&format!(" at {url}"));
    }
    if let Value::String(dir) = get("state_dir") {
        mode.push_str(&format!(", state in {dir}"));
    }
    let database = get("database");
    let shared = database.get("engine").and_then(Value::as_str) == Some("postgresql");
    let reachable = database.get("reachable") != Some(&Value::Bool(false));
    let mut lines = vec![
        format!("mode:                {mode}"),
        format!("version:             {}", text(get("version"))),
    ];
    // A state of one node (SQLite) is said by `mode`; a shared one names
    // this node and whether the database answers.
    if shared {
        let node = database
            .get("node")
            .and_then(Value::as_str)
            .map(render::escape_controls)
            .unwrap_or_default();
        lines.push(format!(
            "database:            PostgreSQL, node {node}, {}",
            if reachable {
                "reachable"
            } else {
                "NOT reachable (calls that need the state fail until it is back)"
            }
        ));
    }
    if !reachable {
        let mut out = lines.join("\n");
        out.push('\n');
        return out;
    }
    lines.extend([
        format!("two-factor:          {}", on_off(get("enabled"))),
        format!(
            "SSH enforcement:     {} (PAM services: {})",
            on_off(get("ssh")),
            words(get("ssh_pam_services"))
        ),
        format!(
            "codes:               {} digits, every {} s, window {}",
            text(get("otp_digits")),
            text(get("interval")),
            text(get("window"))
        ),
        format!(
            "with a secret:       {} account(s)",
            text(get("accounts_with_secret"))
        ),
        format!("pending enrolments:  {}", words(get("pending_enrolments"))),
    ]);
    if get("legacy_shared_code") == Value::Bool(true) {
        lines.push(
            "legacy shared code:  on (accounts without a secret of their own are asked \
             root's code; end it with `tfa call auth.twofactor.end_legacy_shared_code`)"
                .into(),
        );
    }
    match get("locked_out") {
        Value::Array(items) if !items.is_empty() => {
            lines.push("locked out:".into());
            for l in items {
                let field = |k: &str| l.get(k).map(|v| text(v.clone())).unwrap_or_default();
                let origin = field("origin");
                let origin = if origin == "*" {
                    "every origin".to_owned()
                } else {
                    origin
                };
                lines.push(format!(
                    "  {} from {} until {}",
                    render::escape_controls(&field("account")),
                    render::escape_controls(&origin),
                    field("until")
                ));
            }
        }
        _ => lines.push("locked out:          nobody".into()),
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
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
        "Note: {} changed: authenticator apps must be provisioned again (`tfa {} --qr`).",
        changed.join(", "),
        path.join(" ")
    ))
}

/// Whether the API refused a call until a current code is proved.
fn needs_step_up(error: &wire::RpcError) -> bool {
    error.data.as_ref().is_some_and(|d| {
        d.error == wire::STEP_UP_ERRNO && d.reason.contains(wire::STEP_UP_REQUIRED)
    })
}

fn not_found(word: &str, suggestion: Option<String>) -> CliError {
    let mut text = format!("Namespace {} not found", wire::shown(word));
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
        message == wire::FIELD_NOT_EXPECTED
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
        let mut config = api::host::Config::defaults();
        config.state_dir = dir.path().join("state");
        let backend = crate::backend::Embedded::open(&config).unwrap();
        (Engine::new(Box::new(backend), Mode::Table), dir)
    }

    type Calls = std::rc::Rc<std::cell::RefCell<Vec<(String, Vec<Value>)>>>;

    /// The real API in-process, recording each call's method and params.
    /// `in_process`: introspection takes the in-process way (recorded as
    /// `list SERVICE` and `describe METHOD`); else the way over the wire.
    struct Recording {
        inner: crate::backend::Embedded,
        calls: Calls,
        in_process: bool,
    }

    impl Backend for Recording {
        fn call(&mut self, method: &str, params: Vec<Value>) -> Result<Value, CallError> {
            self.calls
                .borrow_mut()
                .push((method.to_owned(), params.clone()));
            self.inner.call(method, params)
        }
        fn hostname(&self) -> String {
            self.inner.hostname()
        }
        fn cli_methods(&mut self, service: &str) -> Result<(wire::MethodDocs, bool), CallError> {
            if !self.in_process {
                let methods =
                    self.call("core.get_methods", vec![service.into(), CLI_TARGET.into()])?;
                return Ok((serde_json::from_value(methods).unwrap(), true));
            }
            self.calls
                .borrow_mut()
                .push((format!("list {service}"), Vec::new()));
            self.inner.cli_methods(service)
        }
        fn describe_cli_method(
            &mut self,
            service: &str,
            method: &str,
        ) -> Result<Option<wire::MethodDoc>, CallError> {
            if !self.in_process {
                let doc = self.call(
                    "core.describe_method",
                    vec![method.into(), CLI_TARGET.into()],
                )?;
                return Ok(serde_json::from_value(doc).unwrap());
            }
            self.calls
                .borrow_mut()
                .push((format!("describe {method}"), Vec::new()));
            self.inner.describe_cli_method(service, method)
        }
    }

    fn recording_engine(in_process: bool) -> (Engine, Calls, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let mut config = api::host::Config::defaults();
        config.state_dir = dir.path().join("state");
        let calls = Calls::default();
        let backend = Recording {
            inner: crate::backend::Embedded::open(&config).unwrap(),
            calls: calls.clone(),
            in_process,
        };
        (Engine::new(Box::new(backend), Mode::Table), calls, dir)
    }

    /// A one-shot command typed in full asks for its own method's
    /// description only, not its service's listing nor the whole API (over
    /// the wire with `core.describe_method`); a name that is no method falls
    /// back to the service's listing.
    #[test]
    fn a_command_describes_only_itself() {
        let services = ("core.get_services".to_owned(), vec![json!("CLI")]);
        let config = ("auth.twofactor.config".to_owned(), vec![]);
        let (mut e, calls, _d) = recording_engine(false);
        let out = run(&mut e, "auth two_factor config").unwrap();
        assert!(out.contains("otp_digits"), "{out}");
        assert_eq!(
            *calls.borrow(),
            [
                services.clone(),
                (
                    "core.describe_method".to_owned(),
                    vec![json!("auth.twofactor.config"), json!("CLI")]
                ),
                config.clone(),
            ]
        );
        let (mut e, calls, _d) = recording_engine(true);
        assert_eq!(run(&mut e, "auth two_factor config").unwrap(), out);
        assert_eq!(
            *calls.borrow(),
            [
                services.clone(),
                ("describe auth.twofactor.config".to_owned(), vec![]),
                config,
            ]
        );
        // A misspelt command: its guess is described as null, then the
        // service's listing decides (and suggests).
        let (mut e, calls, _d) = recording_engine(false);
        let err = run(&mut e, "auth two_factor confg").unwrap_err();
        assert!(err.to_string().contains("config"), "{err}");
        let made: Vec<String> = calls.borrow().iter().map(|(m, _)| m.clone()).collect();
        assert_eq!(
            made[..3],
            [
                "core.get_services",
                "core.describe_method",
                "core.get_methods"
            ]
        );
    }

    /// Every command of the whole tree, typed by its full path from the
    /// root or from any namespace above it, is found by the quick lookup as
    /// the same command; names that are not commands fall back to the tree.
    #[test]
    fn the_quick_lookup_agrees_with_the_whole_tree() {
        let (mut e, _d) = engine();
        let tree = e.tree().unwrap().clone();
        let commands = tree.commands();
        assert!(commands.len() >= 5, "{}", commands.len());
        for c in commands {
            let mut words = c.path.clone();
            words.push(c.name.clone());
            words.push("arg=1".into());
            for depth in 0..=c.path.len() {
                let (mut quick, _q) = engine();
                quick.cwd = c.path[..depth].to_vec();
                let found = quick.locate_command_quickly(&words[depth..]).unwrap();
                match found {
                    Some(Located::Command(q, n)) => {
                        assert_eq!((&*q, n), (c, words.len() - depth - 1));
                    }
                    other => panic!("{}: {other:?}", c.full_name()),
                }
                assert!(quick.tree.is_none(), "the whole tree was not read");
            }
        }
        for not_a_command in ["auth", "auth two_factor", "auth two_factr config", "uodate"] {
            let (mut quick, _q) = engine();
            let words: Vec<String> = not_a_command.split(' ').map(str::to_owned).collect();
            assert!(
                quick.locate_command_quickly(&words).unwrap().is_none(),
                "{not_a_command}"
            );
        }
    }

    fn run(e: &mut Engine, line: &str) -> Result<String, CliError> {
        let mut out = Vec::new();
        e.run_line(line, true, &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    /// The notes an engine writes (standard error in `tfa`).
    #[derive(Clone, Default)]
    struct Notes(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);

    impl Write for Notes {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Notes {
        fn attach(e: &mut Engine) -> Self {
            let notes = Self::default();
            e.notes = Box::new(notes.clone());
            notes
        }
        /// What was written since the last call.
        fn take(&self) -> String {
            String::from_utf8(std::mem::take(&mut *self.0.borrow_mut())).unwrap()
        }
    }

    #[test]
    fn builtins_after_a_namespace_path() {
        let (mut e, _d) = engine();
        let listed = run(&mut e, "auth two_factor ls").unwrap();
        assert_eq!(listed, run(&mut e, "ls auth two_factor").unwrap());
        assert!(listed.starts_with("config "), "{listed}");
        assert!(listed.contains("\nverify "), "{listed}");
        assert_eq!(e.prompt(), format!("[{}]> ", e.hostname()), "cwd unchanged");
        assert_eq!(
            run(&mut e, "auth two_factor man update").unwrap(),
            run(&mut e, "man auth two_factor update").unwrap()
        );
        assert_eq!(
            run(&mut e, "auth ls").unwrap(),
            run(&mut e, "ls auth").unwrap()
        );
        run(&mut e, "auth").unwrap();
        assert_eq!(
            run(&mut e, "two_factor ls").unwrap(),
            listed,
            "relative to the current namespace"
        );
        // `ls` as an argument value is still an argument.
        let err = run(&mut e, "two_factor verify ls").unwrap_err().to_string();
        assert!(err.contains("enable Two Factor"), "{err}");
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

    /// The code `oathtool` (not our code) makes now for the URI's secret.
    fn oathtool_code(uri: &str) -> Option<String> {
        let secret = uri
            .split_once('?')
            .unwrap()
            .1
            .split('&')
            .find_map(|kv| kv.strip_prefix("secret="))
            .unwrap();
        match std::process::Command::new("oathtool")
            .args(["--totp", "-b", secret])
            .output()
        {
            Ok(o) if o.status.success() => {
                Some(String::from_utf8(o.stdout).unwrap().trim().to_owned())
            }
            other => {
                assert!(
                    std::env::var("TFA_SKIP_EXTERNAL").is_ok_and(|v| v == "1"),
                    "oathtool is needed (apt-get install oathtool): {other:?}"
                );
                None
            }
        }
    }

    #[test]
    fn enroll_on_a_terminal_draws_the_qr_asks_for_a_code_and_confirms() {
        let (mut e, _d) = engine();
        run(&mut e, "auth two_factor update enabled=true").unwrap();
        let before = run(&mut e, "auth two_factor config").unwrap();
        // Without a terminal: the pending secret only.
        let plain = run(&mut e, "account user twofactor_enroll username=root").unwrap();
        assert!(
            plain.contains("otpauth://") && !plain.contains('█'),
            "{plain}"
        );
        assert_eq!(run(&mut e, "auth two_factor config").unwrap(), before);

        let typed = std::rc::Rc::new(std::cell::RefCell::new(Vec::<String>::new()));
        let log = typed.clone();
        let mut first = true;
        e.code_prompt = Some(Box::new(move |uri: &str| {
            // A mistyped code first, then the app's.
            let code = if first {
                first = false;
                "abc".to_owned()
            } else {
                oathtool_code(uri).unwrap_or_default()
            };
            log.borrow_mut().push(code.clone());
            Ok(code)
        }));
        let Ok(out) = run(&mut e, "account user twofactor_enroll username=root") else {
            // oathtool missing under TFA_SKIP_EXTERNAL=1.
            return;
        };
        assert_eq!(typed.borrow().len(), 2);
        assert!(out.contains('█'), "the QR code is drawn");
        assert!(
            out.contains("expected 6 digits; the pending secret stays pending"),
            "{out}"
        );
        assert!(
            out.contains("Confirmed: the new secret is active."),
            "{out}"
        );
        let after = run(&mut e, "auth two_factor config").unwrap();
        assert_ne!(after, before, "root's secret switched");
        let uri = out
            .split_whitespace()
            .find(|w| w.starts_with("otpauth://"))
            .unwrap();
        let secret = uri
            .split("secret=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap();
        assert!(
            after.contains(secret),
            "the confirmed secret is the one shown"
        );
    }

    /// Three wrong codes at the enrolment prompt: the first two are told
    /// and asked again, the last is the command's error, printed once.
    #[test]
    fn the_enrolments_last_wrong_code_is_the_error_printed_once() {
        let (mut e, _d) = engine();
        run(&mut e, "auth two_factor update enabled=true").unwrap();
        e.code_prompt = Some(Box::new(|_: &str| Ok("000000".to_owned())));
        let mut out = Vec::new();
        let err = e
            .run_line(
                "account user twofactor_enroll username=root",
                true,
                &mut out,
            )
            .unwrap_err()
            .to_string();
        let out = String::from_utf8(out).unwrap();
        let told = out.matches("the pending secret stays pending").count();
        assert_eq!(told, CONFIRM_TRIES - 1, "{out}");
        // The third is the error alone (before, it was also in `out`).
        assert!(err.contains("the pending secret stays pending"), "{err}");
    }

    /// The enrolment expires while the user is at the prompt: the first
    /// refusal says so and ends the flow (asking for another code could
    /// not help).
    #[test]
    fn an_expired_enrolment_ends_the_confirm_flow_at_the_first_refusal() {
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(service::ManualClock::at_secs(1_750_000_000));
        let store = service::open_store(&dir.path().join("state"), true).unwrap();
        let twofactor = service::TwoFactor::new(
            store,
            clock.clone(),
            Arc::new(service::OsRandom),
            service::Labels {
                issuer: "i".into(),
                product: "p".into(),
                hostname: "h".into(),
            },
            service::RateLimits::default(),
        );
        let api = api::Api::new(
            twofactor,
            Arc::new(api::host::NoAccounts),
            Arc::new(api::host::NoAccounts),
            api::ApiOptions::default(),
        );
        let backend = crate::backend::Embedded::with_api(api);
        let mut e = Engine::new(Box::new(backend), Mode::Table);
        run(&mut e, "auth two_factor update enabled=true").unwrap();
        let asked = std::rc::Rc::new(std::cell::Cell::new(0));
        let count = asked.clone();
        e.code_prompt = Some(Box::new(move |_: &str| {
            count.set(count.get() + 1);
            // The user comes back after 11 minutes.
            clock.advance_secs(11 * 60);
            Ok("000000".to_owned())
        }));
        let mut out = Vec::new();
        let err = e
            .run_line(
                "account user twofactor_enroll username=root",
                true,
                &mut out,
            )
            .unwrap_err();
        let out = String::from_utf8(out).unwrap();
        assert_eq!(asked.get(), 1, "asked once: {out}");
        assert!(!out.contains("stays pending"), "{out}");
        assert!(
            err.to_string().contains(
                "The pending secret expired after 10 minutes; run twofactor_enroll again"
            ),
            "{err}"
        );
    }

    #[test]
    fn update_is_silent_and_notes_reprovisioning() {
        let (mut e, _d) = engine();
        let notes = Notes::attach(&mut e);
        assert_eq!(
            run(&mut e, "auth two_factor update otp_digits=8").unwrap(),
            "",
        );
        assert_eq!(notes.take(), "", "no secret yet: no note");
        assert_eq!(
            run(&mut e, "auth two_factor update enabled=true").unwrap(),
            ""
        );
        assert_eq!(
            notes.take(),
            "A new secret was made: scan it into the authenticator app with \
             `tfa auth two_factor provisioning_uri --qr`\n"
        );
        run(&mut e, "auth two_factor update enabled=false").unwrap();
        run(&mut e, "auth two_factor update enabled=true").unwrap();
        assert_eq!(notes.take(), "", "the secret was kept: no note");
        assert_eq!(
            run(&mut e, "auth two_factor update interval=60").unwrap(),
            ""
        );
        assert_eq!(
            notes.take(),
            "Note: interval 30 -> 60 changed: authenticator apps must be provisioned again (`tfa auth two_factor provisioning_uri --qr`).\n"
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
    fn renewing_says_how_to_scan_and_recovery_codes_are_shown_once() {
        let (mut e, _d) = engine();
        let notes = Notes::attach(&mut e);
        run(&mut e, "auth two_factor update enabled=true").unwrap();
        notes.take();
        assert_eq!(
            run(&mut e, "auth two_factor renew_secret").unwrap(),
            "true\n"
        );
        assert_eq!(
            notes.take(),
            "A new secret was made: every authenticator app must scan it again: \
             `tfa auth two_factor provisioning_uri --qr`\n"
        );
        run(&mut e, "account user renew_2fa_secret username=root").unwrap();
        assert_eq!(
            notes.take(),
            "A new secret was made: every authenticator app must scan it again: \
             `tfa account user provisioning_uri username=root --qr`\n"
        );
        let codes = run(
            &mut e,
            "account user generate_2fa_recovery_codes username=root",
        )
        .unwrap();
        assert_eq!(
            codes.lines().filter(|l| l.starts_with("| ")).count(),
            10,
            "{codes}"
        );
        assert_eq!(
            notes.take(),
            "Recovery codes are shown once: store them now.\n"
        );
    }

    #[test]
    fn a_code_not_shaped_like_one_says_what_was_expected() {
        let (mut e, _d) = engine();
        let notes = Notes::attach(&mut e);
        run(&mut e, "auth two_factor update enabled=true").unwrap();
        notes.take();
        for typed in ["1234567", "12345a", "token=\"12 345\""] {
            let out = run(&mut e, &format!("auth two_factor verify {typed}")).unwrap();
            assert_eq!(out, "false\n", "{typed}");
            assert_eq!(notes.take(), "expected 6 digits\n", "{typed}");
        }
        // Six digits, even in groups: an honest wrong code, no note.
        for typed in ["000000", "000 000"] {
            run(&mut e, &format!("auth two_factor verify {typed}")).unwrap();
            assert_eq!(notes.take(), "", "{typed}");
        }
        assert!(api::host::is_malformed_code("12 34 5", 6));
        assert!(!api::host::is_malformed_code("123 456", 6));
        assert!(
            !api::host::is_malformed_code("abcde-fghij", 6),
            "a recovery code"
        );
        assert!(api::host::is_malformed_code("123456", 8));
    }

    /// A node on a shared database names itself and says whether the
    /// database answers; while it does not, nothing else is claimed.
    #[test]
    fn status_of_a_shared_state_names_the_node_and_its_database() {
        let up = json!({
            "mode": "daemon", "version": "1", "enabled": true, "ssh": false,
            "locked_out": [],
            "database": {"engine": "postgresql", "node": "nas-a", "reachable": true},
        });
        let text = status_text(&up);
        assert!(
            text.contains("database:            PostgreSQL, node nas-a, reachable\n"),
            "{text}"
        );
        assert!(text.contains("two-factor:          on\n"), "{text}");
        let down = json!({
            "mode": "daemon", "version": "1",
            "database": {"engine": "postgresql", "node": "nas-a", "reachable": false},
        });
        let text = status_text(&down);
        assert!(
            text.contains("database:            PostgreSQL, node nas-a, NOT reachable"),
            "{text}"
        );
        assert!(!text.contains("two-factor:"), "{text}");
        // One node: no database line, as before.
        let one = json!({"mode": "daemon", "version": "1",
            "database": {"engine": "sqlite", "node": null, "reachable": true}});
        assert!(!status_text(&one).contains("database:"));
    }

    #[test]
    fn status_says_which_state_and_what_it_holds() {
        let (mut e, d) = engine();
        let text = run(&mut e, "status").unwrap();
        let dir = d.path().join("state").display().to_string();
        assert!(
            text.starts_with(&format!("mode:                embedded, state in {dir}\n")),
            "{text}"
        );
        assert!(text.contains("two-factor:          off\n"), "{text}");
        assert!(
            text.contains("SSH enforcement:     off (PAM services: sshd)\n"),
            "{text}"
        );
        assert!(text.contains("locked out:          nobody"), "{text}");
        run(
            &mut e,
            "auth two_factor update enabled=true services={\"ssh\": true}",
        )
        .unwrap();
        run(&mut e, "account user twofactor_enroll username=root").unwrap();
        e.mode = Mode::Json;
        let v: Value = serde_json::from_str(&run(&mut e, "system status").unwrap()).unwrap();
        assert_eq!(v["mode"], "embedded");
        assert_eq!(v["state_dir"], dir.as_str());
        assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(v["enabled"], true);
        assert_eq!(v["ssh"], true);
        assert_eq!(v["ssh_pam_services"], json!(["sshd"]));
        assert_eq!(v["accounts_with_secret"], 1);
        assert_eq!(v["legacy_shared_code"], false);
        assert_eq!(v["pending_enrolments"], json!(["root"]));
        assert_eq!(v["locked_out"], json!([]));
        assert_eq!(
            v["database"],
            json!({"engine": "sqlite", "node": null, "reachable": true})
        );
        // Inside the system namespace, `status` is the same.
        e.mode = Mode::Table;
        run(&mut e, "system").unwrap();
        assert!(
            run(&mut e, "status")
                .unwrap()
                .contains("two-factor:          on")
        );
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
                .starts_with("id,otp_digits,secret,window,interval,services,enabled\r\n1,6,")
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

#[cfg(test)]
mod step_up_tests;
