//! Where calls go: the daemon over `ws+unix://` or `ws://`, or
//! the same API in-process on the local state (the embedded mode).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use client::wire::{self, ResponseType, RpcError};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::error::CliError;

/// Why a call returned no result.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The API answered with an error.
    #[error("{}", .0.message)]
    Rpc(Box<RpcError>),
    /// The call never got an answer (connection lost, time-out, ...).
    #[error("{0}")]
    Transport(String),
    /// Embedded mode: the local state failed (database full, damaged, ...).
    #[error("{0}")]
    State(String),
}

impl From<CallError> for CliError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Rpc(error) => CliError::Rpc {
                error,
                hints: Vec::new(),
            },
            CallError::Transport(message) | CallError::State(message) => CliError::Failed(message),
        }
    }
}

/// The `target` argument of `core.get_services`/`core.get_methods` for
/// what the CLI shows.
pub const CLI_TARGET: &str = "CLI";

/// Something that runs API methods.
pub trait Backend {
    fn call(&mut self, method: &str, params: Vec<Value>) -> Result<Value, CallError>;

    /// [`Backend::call`] for a request that carries a password: a remote
    /// backend wipes the request text once sent. In-process (the embedded
    /// mode, which never logs in) the parameters go to the API as they are.
    fn call_secret(&mut self, method: &str, params: Vec<Value>) -> Result<Value, CallError> {
        self.call(method, params)
    }
    /// The short host name of the system the calls run on (for the prompt).
    fn hostname(&self) -> String;

    /// The daemon's URL, when the calls go to one (for `status`).
    fn location(&self) -> Option<String> {
        None
    }

    /// `core.get_services("CLI")`: the services and their namespaces.
    fn cli_services(&mut self) -> Result<wire::ServiceDocs, CallError> {
        let services = self.call("core.get_services", vec![CLI_TARGET.into()])?;
        serde_json::from_value(services).map_err(|e| not_understood(&e))
    }

    /// `core.get_methods(service, "CLI")`, and whether the descriptions are
    /// complete. When describing is the cost (the API in-process) only the
    /// names may be given, each with an empty description, and
    /// [`Backend::describe_cli_method`] describes the one needed.
    fn cli_methods(&mut self, service: &str) -> Result<(wire::MethodDocs, bool), CallError> {
        let methods = self.call("core.get_methods", vec![service.into(), CLI_TARGET.into()])?;
        let methods = serde_json::from_value(methods).map_err(|e| not_understood(&e))?;
        Ok((methods, true))
    }

    /// One method's description as `core.get_methods(service, "CLI")`
    /// gives it (`None` when it does not list the method).
    fn describe_cli_method(
        &mut self,
        service: &str,
        method: &str,
    ) -> Result<Option<wire::MethodDoc>, CallError> {
        described_in_listing(self, service, method)
    }
}

/// `method`'s entry of its service's listing (null when not listed).
fn described_in_listing(
    backend: &mut (impl Backend + ?Sized),
    service: &str,
    method: &str,
) -> Result<Option<wire::MethodDoc>, CallError> {
    let (methods, _) = backend.cli_methods(service)?;
    Ok(methods
        .into_iter()
        .find(|(m, _)| m == method)
        .map(|(_, d)| d))
}

/// The reason an introspection answer could not be read as its type.
fn not_understood(e: &serde_json::Error) -> CallError {
    CallError::Transport(format!("the API's description is not understood: {e}"))
}

/// The API in-process, on the state directory of the configuration.
#[derive(Debug)]
pub struct Embedded {
    api: api::Api,
    session: api::Session,
    host: String,
}

impl Embedded {
    pub fn open(config: &api::host::Config) -> Result<Self, CliError> {
        let api = api::Api::open(
            config,
            Arc::new(api::host::NoAccounts),
            Arc::new(api::host::NoAccounts),
        )
        .map_err(|e| CliError::state_open(&config.state_dir, &e))?;
        let session = api.embedded_session(api::host::current_uid());
        Ok(Self {
            api,
            session,
            host: api::host::Labels::system_hostname(),
        })
    }
}

#[cfg(test)]
impl Embedded {
    /// An API the test built (on its own clock), as the embedded backend.
    pub(crate) fn with_api(api: api::Api) -> Self {
        let session = api.embedded_session(api::host::current_uid());
        Self {
            api,
            session,
            host: "test".to_owned(),
        }
    }
}

impl Backend for Embedded {
    fn call(&mut self, method: &str, params: Vec<Value>) -> Result<Value, CallError> {
        self.api
            .call(&self.session, method, params)
            .map_err(|e| match e {
                // Whoever runs the API in-process owns the state: say what
                // failed rather than "Internal error".
                api::ApiError::Storage(e) => CallError::State(CliError::state(&e).to_string()),
                e => CallError::Rpc(Box::new(e.to_rpc())),
            })
    }

    fn hostname(&self) -> String {
        self.host.clone()
    }

    /// The API's own description, without a JSON round trip.
    fn cli_services(&mut self) -> Result<wire::ServiceDocs, CallError> {
        Ok(self.api.describe_cli_services())
    }

    /// The names only: describing every method (each a tree of JSON
    /// schemas) is most of what a one-shot command would cost.
    fn cli_methods(&mut self, service: &str) -> Result<(wire::MethodDocs, bool), CallError> {
        let names = self
            .api
            .cli_methods(&self.session, service)
            .map(|m| (m.name.to_owned(), wire::MethodDoc::default()))
            .collect();
        Ok((names, false))
    }

    fn describe_cli_method(
        &mut self,
        _service: &str,
        method: &str,
    ) -> Result<Option<wire::MethodDoc>, CallError> {
        Ok(self.api.describe_cli_method(&self.session, method))
    }
}

/// The API in-process on a throw-away state, for what needs only its
/// description (completion, the manual): never a user's state, never a
/// prompt. The directory is removed when the returned guard is dropped
/// (keep it as long as the backend).
pub fn description_only() -> Result<(Box<dyn Backend>, tempfile::TempDir), CliError> {
    let dir = tempfile::Builder::new()
        .prefix(".tfa-describe-")
        .tempdir()
        .map_err(|e| CliError::failed(format!("cannot make a temporary directory: {e}")))?;
    let mut config = api::host::Config::defaults();
    config.state_dir = dir.path().join("state");
    let backend = Embedded::open(&config)?;
    Ok((Box::new(backend), dir))
}

/// A connection to the daemon.
#[derive(Debug)]
pub struct Remote {
    client: client::Client,
    host: String,
    url: String,
}

impl Remote {
    pub fn connect(url: &str, timeout: Duration) -> Result<Self, CliError> {
        let client = client::Client::connect(url, timeout).map_err(CliError::failed)?;
        Ok(Self::with(client, url))
    }

    fn with(client: client::Client, url: &str) -> Self {
        Self {
            client,
            host: host_of(url),
            url: url.to_owned(),
        }
    }
}

impl Backend for Remote {
    fn call(&mut self, method: &str, params: Vec<Value>) -> Result<Value, CallError> {
        self.client.call(method, params).map_err(remote_error)
    }

    fn call_secret(&mut self, method: &str, params: Vec<Value>) -> Result<Value, CallError> {
        self.client
            .call_secret(method, params)
            .map_err(remote_error)
    }

    fn hostname(&self) -> String {
        self.host.clone()
    }

    fn location(&self) -> Option<String> {
        Some(self.url.clone())
    }

    /// Read from the answer's text straight into the description types
    /// (the same for the two below).
    fn cli_services(&mut self) -> Result<wire::ServiceDocs, CallError> {
        self.client
            .call_as("core.get_services", vec![CLI_TARGET.into()])
            .map_err(remote_error)
    }

    fn cli_methods(&mut self, service: &str) -> Result<(wire::MethodDocs, bool), CallError> {
        let methods = self
            .client
            .call_as("core.get_methods", vec![service.into(), CLI_TARGET.into()])
            .map_err(remote_error)?;
        Ok((methods, true))
    }

    /// `core.describe_method`: one method's description, not the whole
    /// service's (a daemon without it is asked for the listing).
    fn describe_cli_method(
        &mut self,
        service: &str,
        method: &str,
    ) -> Result<Option<wire::MethodDoc>, CallError> {
        // Null when the method is not listed for this caller.
        match self.client.call_as(
            "core.describe_method",
            vec![method.into(), CLI_TARGET.into()],
        ) {
            Err(client::ClientError::Rpc(e))
                if e.kind() == Some(wire::ErrorCode::MethodNotFound) =>
            {
                described_in_listing(self, service, method)
            }
            other => other.map_err(remote_error),
        }
    }
}

/// A client's error as a call's.
fn remote_error(e: client::ClientError) -> CallError {
    match e {
        client::ClientError::Rpc(error) => CallError::Rpc(error),
        other => CallError::Transport(other.to_string()),
    }
}

/// The host a URL points at, for the prompt: the local host name for the
/// Unix socket and loopback addresses, else the URL's host (a DNS name cut
/// to its first label). The URL is read by the client's parser.
pub fn host_of(url: &str) -> String {
    let local = api::host::Labels::system_hostname;
    let Ok(client::Target::Tcp { host, .. }) = client::Target::parse(url) else {
        return local();
    };
    let host = host.as_str();
    let is_ip = host.parse::<std::net::IpAddr>().ok();
    match is_ip {
        Some(ip) if ip.is_loopback() => local(),
        Some(_) => host.to_owned(),
        None if host.is_empty() || host.eq_ignore_ascii_case("localhost") => local(),
        None => host.split('.').next().unwrap_or(host).to_owned(),
    }
}

/// Where to connect, from the global options.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub url: Option<String>,
    pub state_dir: Option<PathBuf>,
    /// `--config`: then the file must exist.
    pub config: Option<PathBuf>,
    pub user: Option<String>,
    pub timeout: Duration,
    /// `--init`: embedded mode may start a fresh state after a lost database.
    pub init: bool,
}

/// How to ask for secrets when logging in. The password is a
/// [`SecretString`] from here to the request text (wiped on drop, redacted
/// in `Debug`).
pub trait Prompter {
    fn password(&mut self, user: &str) -> Result<SecretString, CliError>;
    fn otp(&mut self) -> Result<String, CliError>;
}

/// Reads `TFA_PASSWORD`/`TFA_OTP`, else asks on the terminal without echo.
#[derive(Debug, Default)]
pub struct TerminalPrompter;

fn from_env_or_tty(var: &str, prompt: &str) -> Result<String, CliError> {
    if let Ok(v) = std::env::var(var) {
        return Ok(v);
    }
    rpassword::prompt_password(prompt)
        .map_err(|e| CliError::failed(format!("cannot read from the terminal: {e}")))
}

impl Prompter for TerminalPrompter {
    fn password(&mut self, user: &str) -> Result<SecretString, CliError> {
        from_env_or_tty("TFA_PASSWORD", &format!("Password for {user}: ")).map(SecretString::from)
    }

    fn otp(&mut self) -> Result<String, CliError> {
        from_env_or_tty("TFA_OTP", "Verification code: ")
    }
}

/// Logs in with `auth.login_ex` (PASSWORD_PLAIN, then OTP_TOKEN when the
/// server answers OTP_REQUIRED).
pub fn login(
    backend: &mut dyn Backend,
    user: &str,
    prompter: &mut dyn Prompter,
) -> Result<(), CliError> {
    let password = prompter.password(user)?;
    // The one copy of the password outside its `SecretString`: this
    // request, which `call_secret` wipes (with its text) once sent.
    let request = json!({"mechanism": "PASSWORD_PLAIN", "username": user,
                         "password": password.expose_secret(),
                         "login_options": {"user_info": false}});
    drop(password);
    let mut answer = backend.call_secret("auth.login_ex", vec![request])?;
    // A code from the environment is tried once; typed ones as many times
    // as the server allows a login.
    let tries = if std::env::var_os("TFA_OTP").is_some() {
        1
    } else {
        wire::MAX_WRONG_CODES
    };
    // How many digits the code has, to say so when one of another shape
    // was typed (asked once the password was right; an older server
    // without the method just gets no hint).
    let mut digits: Option<Option<u8>> = None;
    for _ in 0..tries {
        match ResponseType::of(&answer) {
            Some(ResponseType::OtpRequired) => {
                let code = zeroize::Zeroizing::new(prompter.otp()?);
                let request = json!({"mechanism": "OTP_TOKEN", "otp_token": code.trim()});
                answer = backend.call("auth.login_ex_continue", vec![request])?;
                if ResponseType::of(&answer) == Some(ResponseType::OtpRequired) {
                    let d = *digits.get_or_insert_with(|| login_otp_digits(backend));
                    if let Some(d) = d
                        && api::host::is_malformed_code(&code, d)
                    {
                        eprintln!("expected {d} digits");
                    }
                }
            }
            _ => break,
        }
    }
    match ResponseType::of(&answer) {
        Some(ResponseType::Success) => Ok(()),
        Some(ResponseType::OtpRequired) => {
            Err(CliError::failed("Login failed: wrong verification code"))
        }
        Some(ResponseType::AuthErr) => Err(CliError::failed(
            "Login failed: wrong user name or password",
        )),
        _ => Err(CliError::failed(format!(
            "Login failed: unexpected answer {answer}"
        ))),
    }
}

/// The digits of the code the login in progress waits for, if the server
/// says.
fn login_otp_digits(backend: &mut dyn Backend) -> Option<u8> {
    backend
        .call("auth.login_otp_digits", Vec::new())
        .ok()?
        .as_u64()
        .and_then(|d| u8::try_from(d).ok())
}

/// Time a connection attempt to the default socket may take before the
/// embedded mode is used instead.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

fn load_config(target: &Target) -> Result<api::host::Config, CliError> {
    let path = target
        .config
        .as_deref()
        .unwrap_or(Path::new(api::host::DEFAULT_CONFIG_PATH));
    api::host::Config::load(path, target.config.is_some()).map_err(CliError::failed)
}

fn is_socket(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

/// The embedded mode without `--state-dir`: root is told which state it
/// works on (once, on standard error); anyone else is refused, since a
/// private state of an ordinary user is never what they meant.
fn fallback_notice(socket: &Path, state_dir: &Path) -> Result<(), CliError> {
    // An empty directory: no default could be found (never the working
    // directory).
    let notice = if state_dir.as_os_str().is_empty() {
        format!(
            "no daemon at {}; working on a local state (there is no default one: neither \
             HOME nor XDG_DATA_HOME is set)",
            socket.display()
        )
    } else {
        format!(
            "no daemon at {}; working on the local state in {}",
            socket.display(),
            state_dir.display()
        )
    };
    if api::host::current_uid() != 0 {
        return Err(CliError::failed(format!(
            "{notice} is refused for a user other than root\n\
             Hint: start the daemon (as root: systemctl start twofactord) or reach one with \
             --url ws+unix:///PATH or --url ws://HOST:PORT/api/current; \
             --state-dir DIR works on a state of your own"
        )));
    }
    eprintln!("{notice}");
    Ok(())
}

/// Picks and opens the backend: `--url` → the daemon;
/// `--state-dir` → embedded; neither → the default socket when a daemon
/// answers there, else embedded on the configured state directory.
pub fn open(target: &Target, prompter: &mut dyn Prompter) -> Result<Box<dyn Backend>, CliError> {
    if target.url.is_some() && target.state_dir.is_some() {
        return Err(CliError::usage("--url and --state-dir exclude each other"));
    }
    if target.init && target.url.is_some() {
        return Err(CliError::usage(
            "--init applies to the embedded mode; a daemon is started with twofactord --init",
        ));
    }
    let mut backend: Box<dyn Backend> = if let Some(url) = &target.url {
        // The client's parser decides what a URL is; its reason is shown.
        if let Err(e) = client::Target::parse(url) {
            return Err(CliError::usage(format!("--url: {e}")));
        }
        Box::new(Remote::connect(url, target.timeout)?)
    } else {
        let mut config = load_config(target)?;
        // A user's own daemon first; then the system's, where a user who
        // is not root is logged in as themselves by peer credentials and
        // manages their own two-factor settings.
        let own = api::host::socket_path(&config);
        let system = Path::new(api::host::SYSTEM_SOCKET);
        let mut sockets = vec![own.clone()];
        if api::host::current_uid() != 0 && own != system {
            sockets.push(system.to_owned());
        }
        // A socket that answers but whose server is neither root nor this
        // user is refused (not passed over for the next one or the
        // embedded mode): someone else took the daemon's place.
        let mut remote = None;
        for s in sockets
            .iter()
            .filter(|s| target.state_dir.is_none() && is_socket(s))
        {
            let url = format!("ws+unix://{}", s.display());
            match client::Client::connect(&url, target.timeout.min(PROBE_TIMEOUT)) {
                Ok(client) => {
                    remote = Some(Remote::with(client, &url));
                    break;
                }
                Err(e @ client::ClientError::Untrusted { .. }) => {
                    return Err(CliError::failed(e));
                }
                Err(_) => {}
            }
        }
        match remote {
            Some(_) if target.init => {
                return Err(CliError::usage(
                    "--init applies to the embedded mode, but a daemon answers on the socket",
                ));
            }
            Some(r) => Box::new(r),
            None => {
                if target.user.is_some() {
                    return Err(CliError::usage(
                        "--user needs a connection to the daemon (--url)",
                    ));
                }
                match &target.state_dir {
                    // A typo must not show an empty, disabled state.
                    Some(dir) if !target.init && !dir.exists() => {
                        return Err(CliError::usage(format!(
                            "--state-dir {}: no such directory (give --init as well to start a new state there)",
                            dir.display()
                        )));
                    }
                    Some(dir) => config.state_dir.clone_from(dir),
                    None => {
                        let socket = sockets.last().unwrap_or(&own);
                        fallback_notice(socket, &config.state_dir)?;
                    }
                }
                config.init = target.init;
                Box::new(Embedded::open(&config)?)
            }
        }
    };
    if let Some(user) = &target.user {
        login(backend.as_mut(), user, prompter)?;
    }
    Ok(backend)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_for_the_prompt() {
        let local = api::host::Labels::system_hostname();
        assert_eq!(host_of("ws+unix:///run/twofactor/twofactord.sock"), local);
        assert_eq!(host_of("ws://127.0.0.1:6000/api/current"), local);
        assert_eq!(host_of("ws://[::1]:6000/api/current"), local);
        assert_eq!(host_of("ws://localhost:6000/api/current"), local);
        assert_eq!(host_of("ws://nas.example.com:6000/api/current"), "nas");
        assert_eq!(host_of("ws://10.1.2.3:6000/api/current"), "10.1.2.3");
        assert_eq!(host_of("ws://[2001:db8::1]:6000"), "2001:db8::1");
        assert_eq!(host_of("ws://nas:6000"), "nas");
        // Not a URL the client would connect to: nothing to name.
        assert_eq!(host_of("wss://nas.example.com:6000"), local);
    }

    #[test]
    fn a_url_the_client_cannot_use_is_a_usage_error() {
        for url in [
            "http://nas:6000",
            "wss://nas:6000/api/current",
            "ws+unix://relative.sock",
            "ws://user@nas:6000",
        ] {
            let target = Target {
                url: Some(url.into()),
                ..Target::default()
            };
            let err = open(&target, &mut Scripted(vec![])).err().expect(url);
            assert_eq!(err.exit_code(), crate::error::EXIT_USAGE, "{url}: {err}");
            assert!(err.to_string().contains(url), "{url}: {err}");
        }
    }

    /// Answers logins like the API does.
    struct FakeServer {
        calls: Vec<(String, Value)>,
        /// The methods called through `call_secret`.
        secret_calls: Vec<String>,
        otp_ok: &'static str,
        /// How often `auth.login_otp_digits` was asked.
        digits_asked: usize,
    }

    impl Backend for FakeServer {
        fn call_secret(&mut self, method: &str, params: Vec<Value>) -> Result<Value, CallError> {
            self.secret_calls.push(method.to_owned());
            self.call(method, params)
        }
        fn call(&mut self, method: &str, params: Vec<Value>) -> Result<Value, CallError> {
            let p = params.into_iter().next().unwrap_or_default();
            if method == "auth.login_otp_digits" {
                // Asked once a code was refused; not a login step.
                self.digits_asked += 1;
                return Ok(json!(6));
            }
            self.calls.push((method.to_owned(), p.clone()));
            Ok(match method {
                "auth.login_ex" if p["password"] == "pw" => {
                    json!({"response_type": "OTP_REQUIRED"})
                }
                "auth.login_ex" => json!({"response_type": "AUTH_ERR"}),
                _ if p["otp_token"] == self.otp_ok => json!({"response_type": "SUCCESS"}),
                _ => json!({"response_type": "OTP_REQUIRED"}),
            })
        }
        fn hostname(&self) -> String {
            "fake".into()
        }
    }

    struct Scripted(Vec<&'static str>);

    impl Prompter for Scripted {
        fn password(&mut self, _: &str) -> Result<SecretString, CliError> {
            Ok("pw".into())
        }
        fn otp(&mut self) -> Result<String, CliError> {
            Ok(self.0.remove(0).into())
        }
    }

    #[test]
    fn login_asks_for_the_code_until_right() {
        let mut server = FakeServer {
            calls: vec![],
            secret_calls: vec![],
            otp_ok: "123456",
            digits_asked: 0,
        };
        login(
            &mut server,
            "root",
            &mut Scripted(vec!["000000", " 123456\n"]),
        )
        .unwrap();
        assert_eq!(server.calls.len(), 3);
        assert_eq!(server.calls[0].1["mechanism"], "PASSWORD_PLAIN");
        // The password arrives unchanged, and only through the wiping call.
        assert_eq!(server.calls[0].1["password"], "pw");
        assert_eq!(server.secret_calls, ["auth.login_ex"]);
        assert_eq!(
            server.calls[2].1,
            json!({"mechanism": "OTP_TOKEN", "otp_token": "123456"})
        );
        let mut server = FakeServer {
            calls: vec![],
            secret_calls: vec![],
            otp_ok: "x",
            digits_asked: 0,
        };
        let err = login(&mut server, "root", &mut Scripted(vec!["1", "2", "3"])).unwrap_err();
        assert_eq!(err.exit_code(), 1);
        // As many codes as the server allows, and no more.
        assert_eq!(
            server.calls.len(),
            1 + usize::from(wire::MAX_WRONG_CODES),
            "{:?}",
            server.calls
        );
        // The digits are asked once (for `expected N digits`), not per code.
        assert_eq!(server.digits_asked, 1);
    }
}
