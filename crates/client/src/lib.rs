//! A blocking JSON-RPC 2.0 client over WebSocket, for `ws+unix:///path`
//! (the daemon's Unix socket) and `ws://host:port/api/current`. No async
//! runtime and no TLS: the PAM module links it into sshd.
//!
//! ```no_run
//! # fn main() -> Result<(), client::ClientError> {
//! use std::time::Duration;
//! let mut c = client::Client::connect("ws+unix:///run/twofactor/twofactord.sock", Duration::from_secs(5))?;
//! let entry: serde_json::Value = c.call("auth.twofactor.config", vec![])?;
//! # let _ = entry; Ok(()) }
//! ```
//!
//! Errors the server sends come back as [`ClientError::Rpc`] with the whole
//! TrueNAS error object. Request ids are increasing integers; answers to
//! other requests (see [`Client::send_request`]) and server notifications
//! (`collection_update`) that arrive while waiting are queued.
//!
//! Time-outs bound whole operations, not single reads: [`Client::connect`]
//! gives connect + handshake one deadline and each call (send + wait for the
//! answer) another; [`Client::connect_until`] gives everything, up to the
//! last answer, one deadline (the PAM module's `timeout=`). A server that
//! drips bytes cannot stretch either: every read and write on the socket is
//! bounded by what is left until the deadline.
//!
//! Owns: URL parsing, connecting with a time-out, the WebSocket handshake,
//! request ids, matching answers to requests. Does not own: what any method
//! means, or the envelope rules (those are `wire`'s).

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde_json::Value;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Bytes, Message, WebSocket};

/// The protocol's types and named values, for this client's users (the
/// CLI and the PAM module reach `wire` through here: ARCHITECTURE's
/// `cli → client`, `pam → client`).
pub use wire;

/// The endpoint every URL is upgraded on.
pub const API_PATH: &str = "/api/current";

/// Why a call did not return a result.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a JSON-RPC error.
    #[error("{}", .0.data.as_ref().map_or(.0.message.as_str(), |d| d.message()))]
    Rpc(Box<wire::RpcError>),
    #[error("invalid URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("connection closed: {0}")]
    Closed(String),
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A Unix socket served by neither root nor this process's user:
    /// nothing was sent to it.
    #[error("refusing the socket {socket}: {reason}")]
    Untrusted { socket: String, reason: String },
}

impl ClientError {
    /// The server's error object, when the server answered with one.
    pub fn rpc(&self) -> Option<&wire::RpcError> {
        match self {
            Self::Rpc(e) => Some(e),
            _ => None,
        }
    }
}

/// Where a URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `ws+unix:///abs/path.sock`
    Unix(PathBuf),
    /// `ws://host:port/path`
    Tcp {
        host: String,
        port: u16,
        path: String,
    },
}

impl Target {
    /// Parses `ws+unix:///abs/path` or `ws://host[:port][/path]` (the path
    /// defaults to `/api/current`). `wss://` is refused: no TLS here.
    pub fn parse(url: &str) -> Result<Self, ClientError> {
        let bad = |reason: &str| ClientError::Url {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(path) = url.strip_prefix("ws+unix://") {
            if !path.starts_with('/') {
                return Err(bad(
                    "the socket path must be absolute (ws+unix:///path/to.sock)",
                ));
            }
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        if url.starts_with("wss://") {
            return Err(bad(
                "TLS (wss://) is not supported; use ws+unix:// locally or an SSH tunnel",
            ));
        }
        let Some(rest) = url.strip_prefix("ws://") else {
            return Err(bad(
                "expected ws+unix:///path or ws://host:port/api/current",
            ));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let path = if path.is_empty() || path == "/" {
            API_PATH.to_owned()
        } else {
            path.to_owned()
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(bad("expected host[:port] after ws://"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed [ in the host"))?;
            match after.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None if after.is_empty() => (h, None),
                None => return Err(bad("unexpected text after ]")),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| bad("the port must be a number from 0 to 65535"))?,
            None => 80,
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        Ok(Self::Tcp {
            host: host.to_owned(),
            port,
            path,
        })
    }
}

/// `now + d`, or a point far in the future when that does not fit in an
/// `Instant` (a time-out of 1e19 s means "no time-out", not a panic).
fn deadline_after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(u64::from(u32::MAX))))
        .unwrap_or(now)
}

/// The two transports behind one `Read + Write`.
#[derive(Debug)]
enum Transport {
    Unix(UnixStream),
    Tcp(TcpStream),
}

/// A transport whose every read and write gives up at `deadline`: the
/// socket time-out is set to what is left before each system call, so a
/// peer that sends (or takes) one byte at a time cannot hold an operation
/// past it.
#[derive(Debug)]
struct Stream {
    transport: Transport,
    deadline: Instant,
}

impl Stream {
    /// What is left before the deadline; `TimedOut` when nothing is.
    fn left(&self) -> io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the deadline of the exchange has passed",
            ))
        } else {
            // Zero would mean "block forever" to the socket.
            Ok(left.max(Duration::from_millis(1)))
        }
    }
}

/// Whether a system call was cut short by a signal (EINTR), which the
/// standard library passes up from `read`/`write` rather than retrying.
fn interrupted(r: &io::Result<usize>) -> bool {
    matches!(r, Err(e) if e.kind() == io::ErrorKind::Interrupted)
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let left = Some(self.left()?);
            let read = match &mut self.transport {
                Transport::Unix(s) => s.set_read_timeout(left).and_then(|()| s.read(buf)),
                Transport::Tcp(s) => s.set_read_timeout(left).and_then(|()| s.read(buf)),
            };
            // A signal is not the peer's answer: try again until the deadline.
            if !interrupted(&read) {
                return read;
            }
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            let left = Some(self.left()?);
            let written = match &mut self.transport {
                Transport::Unix(s) => s.set_write_timeout(left).and_then(|()| s.write(buf)),
                Transport::Tcp(s) => s.set_write_timeout(left).and_then(|()| s.write(buf)),
            };
            if !interrupted(&written) {
                return written;
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.transport {
            Transport::Unix(s) => s.flush(),
            Transport::Tcp(s) => s.flush(),
        }
    }
}

/// One WebSocket message as the server sent it (for callers that speak the
/// protocol by hand, such as conformance tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Text(String),
    Binary(Vec<u8>),
    /// The server closed the connection (code 1005 when it gave none).
    Close {
        code: u16,
        reason: String,
    },
}

/// A connection to the daemon.
pub struct Client {
    ws: WebSocket<Stream>,
    url: String,
    host: Option<String>,
    timeout: Duration,
    /// Set by [`Client::connect_until`]: no operation goes past it.
    deadline: Option<Instant>,
    next_id: u64,
    /// Answers to our requests that arrived while waiting for another one.
    answers: HashMap<u64, wire::Response>,
    /// Answers whose id is not one of ours (e.g. `null` for a parse error).
    stray: VecDeque<wire::Response>,
    notifications: VecDeque<wire::Notification>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .field("next_id", &self.next_id)
            .finish_non_exhaustive()
    }
}

fn io_error(e: io::Error, timeout: Duration) -> ClientError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::Timeout(timeout),
        io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::UnexpectedEof => ClientError::Closed(e.to_string()),
        _ => ClientError::Protocol(e.to_string()),
    }
}

fn ws_error(e: tungstenite::Error, timeout: Duration) -> ClientError {
    match e {
        tungstenite::Error::Io(e) => io_error(e, timeout),
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            ClientError::Closed("by the server".into())
        }
        tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
        ) => ClientError::Closed("reset without a closing handshake".into()),
        other => ClientError::Protocol(other.to_string()),
    }
}

fn closed(code: u16, reason: &str) -> ClientError {
    ClientError::Closed(if reason.is_empty() {
        format!("code {code}")
    } else {
        format!("code {code}: {reason}")
    })
}

impl Client {
    /// Connects and upgrades `GET /api/current`; `timeout` bounds connect
    /// and handshake together, and then each call (or send, or wait for an
    /// answer) as a whole.
    pub fn connect(url: &str, timeout: Duration) -> Result<Self, ClientError> {
        Self::open(url, timeout, deadline_after(timeout), None)
    }

    /// Like [`Client::connect`], but everything from the connect to the last
    /// answer must be done by `deadline`: past it every operation fails with
    /// [`ClientError::Timeout`].
    pub fn connect_until(url: &str, deadline: Instant) -> Result<Self, ClientError> {
        let timeout = deadline.saturating_duration_since(Instant::now());
        Self::open(url, timeout, deadline, Some(deadline))
    }

    fn open(
        url: &str,
        timeout: Duration,
        connected_by: Instant,
        deadline: Option<Instant>,
    ) -> Result<Self, ClientError> {
        let target = Target::parse(url)?;
        let failed = |reason: String| ClientError::Connect {
            url: url.to_owned(),
            reason,
        };
        let (stream, request, host) = match &target {
            Target::Unix(path) => {
                let s = connect_unix(path, connected_by).map_err(|e| match e.kind() {
                    io::ErrorKind::TimedOut => ClientError::Timeout(timeout),
                    _ => failed(e.to_string()),
                })?;
                // Before a byte goes out (a password may follow): only
                // root's server, or our own user's, is believed.
                let peer =
                    nix::sys::socket::getsockopt(&s, nix::sys::socket::sockopt::PeerCredentials)
                        .ok()
                        .map(|c| c.uid());
                trusted_unix_server(path, peer, nix::unistd::geteuid().as_raw())?;
                (
                    Transport::Unix(s),
                    format!("ws://localhost{API_PATH}"),
                    None,
                )
            }
            Target::Tcp { host, port, path } => {
                let addrs = (host.as_str(), *port)
                    .to_socket_addrs()
                    .map_err(|e| failed(e.to_string()))?;
                let mut last = None;
                let mut stream = None;
                for addr in addrs {
                    let left = connected_by.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(ClientError::Timeout(timeout));
                    }
                    match TcpStream::connect_timeout(&addr, left) {
                        Ok(s) => {
                            stream = Some(s);
                            break;
                        }
                        Err(e) => last = Some(e),
                    }
                }
                let s = stream.ok_or_else(|| {
                    failed(last.map_or_else(
                        || "the host name has no address".to_owned(),
                        |e| e.to_string(),
                    ))
                })?;
                // Calls are small request/answer pairs: never wait for Nagle.
                s.set_nodelay(true).map_err(|e| failed(e.to_string()))?;
                let authority = if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                };
                (
                    Transport::Tcp(s),
                    format!("ws://{authority}{path}"),
                    Some(host.clone()),
                )
            }
        };
        let stream = Stream {
            transport: stream,
            deadline: connected_by,
        };
        // tungstenite zero-fills the free part of its read buffer (up to
        // this size) before every read: the answers here are small, and a
        // large one only takes a few more reads (4 KiB instead of 16 KiB:
        // 25,000 fewer instructions for a one-shot `tfa` command).
        let config = WebSocketConfig::default()
            .read_buffer_size(4 * 1024)
            .write_buffer_size(0)
            .max_message_size(Some(16 << 20));
        let (ws, _response) =
            tungstenite::client::client_with_config(request, stream, Some(config)).map_err(
                |e| match e {
                    tungstenite::HandshakeError::Interrupted(_) => ClientError::Timeout(timeout),
                    tungstenite::HandshakeError::Failure(tungstenite::Error::Io(e))
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        ClientError::Timeout(timeout)
                    }
                    tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp)) => {
                        failed(format!(
                            "the server answered HTTP {} instead of upgrading",
                            resp.status()
                        ))
                    }
                    tungstenite::HandshakeError::Failure(e) => failed(e.to_string()),
                },
            )?;
        Ok(Self {
            ws,
            url: url.to_owned(),
            host,
            timeout,
            deadline,
            next_id: 0,
            answers: HashMap::new(),
            stray: VecDeque::new(),
            notifications: VecDeque::new(),
        })
    }

    /// The URL this client connected to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The host named in a `ws://` URL; `None` over the Unix socket (the
    /// local system). Not part of the protocol.
    pub fn server_hostname(&self) -> Option<&str> {
        self.host.as_deref()
    }

    /// The uid of the process serving a `ws+unix://` connection (from
    /// SO_PEERCRED: who created the listening socket); `None` over TCP or
    /// when the kernel does not say. The PAM module trusts only root's (or
    /// its own user's) daemon, not whoever could bind the socket path.
    pub fn unix_peer_uid(&self) -> Option<u32> {
        match &self.ws.get_ref().transport {
            Transport::Unix(s) => {
                nix::sys::socket::getsockopt(s, nix::sys::socket::sockopt::PeerCredentials)
                    .ok()
                    .map(|c| c.uid())
            }
            Transport::Tcp(_) => None,
        }
    }

    /// The time-out of each call, send and wait.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Calls `method` and waits for its answer (notifications that arrive
    /// meanwhile are queued for [`Client::next_notification`]).
    pub fn call(&mut self, method: &str, params: Vec<Value>) -> Result<Value, ClientError> {
        self.call_as(method, params)
    }

    /// [`Client::call`] with the result read as `T`, straight from the
    /// answer's text (a result that is not a `T` is
    /// [`ClientError::Protocol`], saying what did not fit).
    pub fn call_as<T: DeserializeOwned>(
        &mut self,
        method: &str,
        params: Vec<Value>,
    ) -> Result<T, ClientError> {
        let deadline = self.deadline_in(self.timeout);
        let id = self.send_request_by(method, params, deadline)?;
        self.wait_response_by(id, deadline)
    }

    /// [`Client::call`] for a request that carries a secret (the password
    /// of `auth.login_ex`): the request text is written into a buffer that
    /// is wiped once the frame has been sent (and wherever it grew), and
    /// every string in `params` is wiped before they are dropped. What the
    /// WebSocket layer copies into its own (masked) output buffer and the
    /// kernel's socket buffer are out of reach.
    pub fn call_secret(&mut self, method: &str, params: Vec<Value>) -> Result<Value, ClientError> {
        let deadline = self.deadline_in(self.timeout);
        self.next_id += 1;
        let id = self.next_id;
        let text = secret_text(&wire::ClientRequest::call(method, id, &params));
        let mut params = Value::Array(params);
        wire::wipe_strings(&mut params);
        self.send_by(Message::Text(text?), deadline)?;
        self.wait_response_by(id, deadline)
    }

    /// Sends a request without waiting; returns its id for
    /// [`Client::wait_response`]. Several may be in flight at once.
    pub fn send_request(&mut self, method: &str, params: Vec<Value>) -> Result<u64, ClientError> {
        let deadline = self.deadline_in(self.timeout);
        self.send_request_by(method, params, deadline)
    }

    fn send_request_by(
        &mut self,
        method: &str,
        params: Vec<Value>,
        deadline: Instant,
    ) -> Result<u64, ClientError> {
        self.next_id += 1;
        let id = self.next_id;
        let text = serde_json::to_string(&wire::ClientRequest::call(method, id, &params))
            .map_err(|e| ClientError::Protocol(format!("cannot encode the request: {e}")))?;
        self.send_by(Message::text(text), deadline)?;
        Ok(id)
    }

    /// `now + d`, but never past the deadline of [`Client::connect_until`].
    fn deadline_in(&self, d: Duration) -> Instant {
        let by = deadline_after(d);
        self.deadline.map_or(by, |cap| by.min(cap))
    }

    /// Sends a notification: the server runs it and never answers.
    pub fn notify(&mut self, method: &str, params: Vec<Value>) -> Result<(), ClientError> {
        let text = serde_json::to_string(&wire::ClientRequest::notification(method, &params))
            .map_err(|e| ClientError::Protocol(format!("cannot encode the request: {e}")))?;
        self.send_raw(&text)
    }

    /// Waits for the answer to request `id`.
    pub fn wait_response(&mut self, id: u64) -> Result<Value, ClientError> {
        let deadline = self.deadline_in(self.timeout);
        self.wait_response_by(id, deadline)
    }

    fn wait_response_by<T: DeserializeOwned>(
        &mut self,
        id: u64,
        deadline: Instant,
    ) -> Result<T, ClientError> {
        loop {
            if let Some(answer) = self.answers.remove(&id) {
                return response_to_result(answer);
            }
            match self.read_frame(deadline)? {
                Some(Frame::Text(text)) => self.file(&text)?,
                Some(Frame::Binary(_)) => {
                    return Err(ClientError::Protocol("unexpected binary frame".into()));
                }
                Some(Frame::Close { code, reason }) => return Err(closed(code, &reason)),
                None => return Err(ClientError::Timeout(self.timeout)),
            }
        }
    }

    /// The next server notification (`{"jsonrpc","method","params"}`),
    /// waiting at most `wait`; `None` when none came in time.
    pub fn next_notification(&mut self, wait: Duration) -> Result<Option<Value>, ClientError> {
        let deadline = self.deadline_in(wait);
        loop {
            if let Some(n) = self.notifications.pop_front() {
                return serde_json::to_value(n)
                    .map(Some)
                    .map_err(|e| ClientError::Protocol(e.to_string()));
            }
            match self.read_frame(deadline)? {
                Some(Frame::Text(text)) => self.file(&text)?,
                Some(Frame::Binary(_)) => {
                    return Err(ClientError::Protocol("unexpected binary frame".into()));
                }
                Some(Frame::Close { code, reason }) => return Err(closed(code, &reason)),
                None => return Ok(None),
            }
        }
    }

    /// Answers that carried an id that is not one of ours (oldest first).
    pub fn take_stray_answers(&mut self) -> Vec<wire::Response> {
        self.stray.drain(..).collect()
    }

    /// Sends one text frame as it is (for speaking the protocol by hand).
    pub fn send_raw(&mut self, text: &str) -> Result<(), ClientError> {
        let deadline = self.deadline_in(self.timeout);
        self.send_by(Message::text(text), deadline)
    }

    /// Sends one binary frame (the server refuses them: close 1003).
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), ClientError> {
        let deadline = self.deadline_in(self.timeout);
        self.send_by(Message::binary(data.to_vec()), deadline)
    }

    fn send_by(&mut self, message: Message, deadline: Instant) -> Result<(), ClientError> {
        self.ws.get_mut().deadline = deadline;
        self.ws.send(message).map_err(|e| ws_error(e, self.timeout))
    }

    /// Reads the next frame as it is, bypassing the queues; `None` when
    /// nothing came within the time-out.
    pub fn read_raw(&mut self) -> Result<Option<Frame>, ClientError> {
        let deadline = self.deadline_in(self.timeout);
        self.read_frame(deadline)
    }

    /// Closes the connection politely.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if self.ws.can_write() {
            self.ws.get_mut().deadline = self.deadline_in(self.timeout);
            let _ = self.ws.close(None);
            let _ = self.ws.flush();
        }
    }

    /// Sorts one incoming text message into answers and notifications.
    fn file(&mut self, text: &str) -> Result<(), ClientError> {
        match wire::ServerMessage::parse(text).map_err(ClientError::Protocol)? {
            wire::ServerMessage::Response(r) => match r.numeric_id() {
                Some(n) if n <= self.next_id && n > 0 => {
                    self.answers.insert(n, r);
                }
                _ => self.stray.push_back(r),
            },
            wire::ServerMessage::Notification(n) => self.notifications.push_back(n),
        }
        Ok(())
    }

    /// The next data or close frame before `deadline` (`None` past it).
    fn read_frame(&mut self, deadline: Instant) -> Result<Option<Frame>, ClientError> {
        self.ws.get_mut().deadline = deadline;
        loop {
            if Instant::now() >= deadline {
                return Ok(None);
            }
            match self.ws.read() {
                Ok(Message::Text(t)) => return Ok(Some(Frame::Text(t.as_str().to_owned()))),
                Ok(Message::Binary(b)) => return Ok(Some(Frame::Binary(b.to_vec()))),
                Ok(Message::Close(frame)) => {
                    let (code, reason) = frame.as_ref().map_or((1005, String::new()), |f| {
                        (u16::from(f.code), f.reason.as_str().to_owned())
                    });
                    // tungstenite queued the close reply; send it.
                    let _ = self.ws.flush();
                    return Ok(Some(Frame::Close { code, reason }));
                }
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(ws_error(e, self.timeout)),
            }
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// `value` as JSON text in a buffer that is wiped when the frame holding it
/// is dropped.
fn secret_text(value: &wire::ClientRequest<'_>) -> Result<tungstenite::Utf8Bytes, ClientError> {
    let out = wire::to_wiping(value)
        .map_err(|e| ClientError::Protocol(format!("cannot encode the request: {e}")))?;
    tungstenite::Utf8Bytes::try_from(Bytes::from_owner(out.into_inner()))
        .map_err(|e| ClientError::Protocol(format!("cannot encode the request: {e}")))
}

/// A response object read as JSON → its result, or its error as
/// [`ClientError::Rpc`] (what [`Client::call`] does with the answer it
/// waited for; public for callers that read responses themselves, and for
/// fuzzing).
pub fn answer_to_result(answer: Value) -> Result<Value, ClientError> {
    match wire::ServerMessage::from_value(answer).map_err(ClientError::Protocol)? {
        wire::ServerMessage::Response(r) => response_to_result(r),
        wire::ServerMessage::Notification(_) => Err(ClientError::Protocol(
            "a response with neither result nor error".into(),
        )),
    }
}

/// Whether a Unix socket's server (`peer`, its uid from SO_PEERCRED: who
/// created the listening socket) may be believed by a process running as
/// `own`: only root's or `own`'s. Anyone else who could bind the path (a
/// socket in a world-writable directory, the path free while the daemon
/// restarts) would otherwise be handed passwords and codes and could
/// answer "no code needed". The refusal names the socket and the uid.
pub fn trusted_unix_server(
    socket: &std::path::Path,
    peer: Option<u32>,
    own: u32,
) -> Result<(), ClientError> {
    let reason = match peer {
        Some(uid) if uid == 0 || uid == own => return Ok(()),
        Some(uid) => {
            format!("its server runs as uid {uid}, neither root nor this user (uid {own})")
        }
        None => "its server gives no peer credentials".to_owned(),
    };
    Err(ClientError::Untrusted {
        socket: wire::shown(&socket.display().to_string()).into_owned(),
        reason,
    })
}

/// The result of an answer, or its error.
fn response_to_result<T: DeserializeOwned>(answer: wire::Response) -> Result<T, ClientError> {
    match answer.outcome_as().map_err(ClientError::Protocol)? {
        Ok(result) => Ok(result),
        Err(e) => Err(ClientError::Rpc(Box::new(e))),
    }
}

/// Connects a Unix socket by `deadline`. `UnixStream::connect` blocks
/// for as long as the listener's backlog is full (a frozen daemon), which in
/// the PAM module would hold an sshd login until its grace time; here a
/// non-blocking connect is retried until the deadline instead.
fn connect_unix(path: &std::path::Path, deadline: Instant) -> io::Result<UnixStream> {
    use socket2::{Domain, SockAddr, Socket, Type};
    let addr = SockAddr::unix(path)?;
    loop {
        let socket = Socket::new(Domain::UNIX, Type::STREAM.cloexec(), None)?;
        socket.set_nonblocking(true)?;
        match socket.connect(&addr) {
            Ok(()) => {
                socket.set_nonblocking(false)?;
                return Ok(socket.into());
            }
            // A full backlog: EAGAIN at once for AF_UNIX. Try again shortly.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let now = Instant::now();
                if now >= deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the daemon's socket accepts no connection (backlog full)",
                    ));
                }
                std::thread::sleep(Duration::from_millis(5).min(deadline - now));
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests;
