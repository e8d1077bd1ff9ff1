//! One WebSocket connection: text frames only, message size
//! limits, the envelope through `wire::parse_incoming`, at most 20 calls in
//! flight, calls running concurrently (answers may overtake each other),
//! `collection_update` events for the session's subscriptions, and a clean
//! close at shutdown once the calls in flight have answered.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use api::wire::{self, ErrorCode, Incoming, Request, RpcError};
use api::{Api, Event, Session};
use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use tokio::sync::{Semaphore, broadcast, mpsc, watch};

use crate::listen::Peer;

/// What every connection shares: built by `server::serve_until`, read
/// here. It lives with the connection so that `server` depends on
/// `connection` and not the other way round.
#[derive(Debug)]
pub struct App {
    pub api: Api,
    pub events: broadcast::Sender<Arc<Event>>,
    /// Turns `true` when the daemon stops.
    pub shutdown: watch::Receiver<bool>,
    /// Each connection holds a clone; shutdown waits until all are dropped.
    pub alive: mpsc::Sender<()>,
    pub limits: api::host::Limits,
    /// Capacity for the blocking calls of sessions nobody has logged into
    /// (password checks): separate from, and much smaller than, the pool
    /// that serves root, administrators and the PAM module.
    pub unauthenticated: Arc<Semaphore>,
    /// What each unprivileged peer may have queued and running there.
    pub peers: PeerGates,
}

/// Calls of one unprivileged peer (a uid on the Unix socket, an address on
/// TCP) waiting for, or running in, the unauthenticated capacity, over all
/// its connections; more are refused at once (-32000) instead of queued.
pub const MAX_QUEUED_PER_PEER: usize = 128;

/// Who the per-peer bound counts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum PeerKey {
    Uid(u32),
    Ip(std::net::IpAddr),
}

impl PeerKey {
    fn of(peer: Peer) -> Self {
        match peer {
            Peer::Unix { uid, .. } => Self::Uid(uid),
            Peer::Tcp(addr) => Self::Ip(addr.ip().to_canonical()),
        }
    }
}

/// One peer's share of the unauthenticated capacity: one blocking call
/// running at a time (a password check with Debian's yescrypt hashes takes
/// 16 MiB while it runs: a peer with several at once raised the daemon's
/// peak memory by that much each), at most [`MAX_QUEUED_PER_PEER`] calls
/// waiting or running.
#[derive(Debug)]
struct PeerGate {
    running: Arc<Semaphore>,
    queued: std::sync::atomic::AtomicUsize,
}

/// The gates of the peers that have calls queued.
#[derive(Debug, Default)]
pub struct PeerGates {
    gates: std::sync::Mutex<std::collections::HashMap<PeerKey, Arc<PeerGate>>>,
}

/// A place in a peer's queue, given back when the call is answered.
struct Queued {
    gate: Arc<PeerGate>,
    key: PeerKey,
    gates: Arc<App>,
}

impl Drop for Queued {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering;
        let mut gates = self
            .gates
            .peers
            .gates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.gate.queued.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last one: forget the peer (a new call makes a new gate).
            gates.remove(&self.key);
        }
    }
}

impl PeerGates {
    /// A place in `key`'s queue, or `None` when it is full.
    fn enter(app: &Arc<App>, key: PeerKey) -> Option<Queued> {
        use std::sync::atomic::Ordering;
        let mut gates = app
            .peers
            .gates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let gate = gates
            .entry(key)
            .or_insert_with(|| {
                Arc::new(PeerGate {
                    running: Arc::new(Semaphore::new(1)),
                    queued: std::sync::atomic::AtomicUsize::new(0),
                })
            })
            .clone();
        if gate.queued.load(Ordering::Acquire) >= MAX_QUEUED_PER_PEER {
            return None;
        }
        gate.queued.fetch_add(1, Ordering::AcqRel);
        drop(gates);
        Some(Queued {
            gate,
            key,
            gates: app.clone(),
        })
    }
}

/// Largest message before login: bigger closes with 1007.
pub const MAX_ANONYMOUS_MESSAGE: usize = 8 * 1024;
/// Largest message after login: bigger closes with 1009.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Calls one connection may have running at once.
pub const MAX_IN_FLIGHT: usize = 20;

/// How long a closing connection waits for the peer's close reply.
const CLOSE_REPLY_WAIT: Duration = Duration::from_secs(2);

/// Methods marked `inline` in the API's table run on the event loop;
/// everything else (password checks, and every SQLite write with its fsync)
/// runs on the blocking pool.
///
/// Measured with `scripts/daemon-bench` (16 connections, 2 cores shared
/// with the load generator): `auth.twofactor.config` inline ~65k calls/s,
/// p99 0.5 ms; through `spawn_blocking` ~39k calls/s, p99 0.9 ms.
fn runs_inline(api: &Api, method: &str) -> bool {
    // Unknown methods are inline too: they fail at once. On a shared
    // database, only while the node's cache can answer without the network.
    api.method(method).is_none_or(|m| m.inline) && api.twofactor().reads_cached()
}

/// Runs one call; the response text (or `None` for a notification) and how
/// long to wait before sending it. A result is written into a wiping
/// buffer (answers carry provisioning URIs, renewed secrets, recovery codes
/// and session tokens): the result's strings are wiped once written, and
/// the text itself when the WebSocket layer drops the frame after sending.
fn execute(api: &Api, session: &Session, request: Request) -> (Option<Utf8Bytes>, Duration) {
    let Request { id, method, params } = request;
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        api.call_outcome(session, &method, params)
    }));
    let (outcome, delay) = match outcome {
        Ok((result, delay)) => (Ok(result), delay),
        Err(panic) => (Err(panic), Duration::ZERO),
    };
    let response = match outcome {
        Ok(Ok(result)) => {
            tracing::debug!(method, "call answered");
            id.map(|id| match result.response(&id) {
                Ok(text) => wiping_text(text),
                Err(e) => wire::response_error(&id, &e.to_rpc()).into(),
            })
        }
        Ok(Err(e)) => {
            // `to_rpc` logs internal detail; params are never logged.
            let rpc = e.to_rpc();
            tracing::debug!(method, code = rpc.code, "call failed");
            id.map(|id| wire::response_error(&id, &rpc).into())
        }
        Err(_) => {
            tracing::error!(method, "a call panicked");
            id.map(|id| wire::response_error(&id, &RpcError::internal()).into())
        }
    };
    (response, delay)
}

/// A frame's text that owns the wiping buffer it was written into: the
/// buffer is wiped when the last reference to the frame is dropped.
fn wiping_text(text: wire::WipingBuffer) -> Utf8Bytes {
    // serde_json writes UTF-8 only, so the conversion cannot fail; were it
    // to, the caller gets an internal error, never a broken frame.
    Utf8Bytes::try_from(Bytes::from_owner(text.into_inner())).unwrap_or_else(|_| {
        tracing::error!("an answer was not UTF-8");
        wire::response_error(&wire::Id::null(), &RpcError::internal()).into()
    })
}

/// Where a connection is. `Anonymous` and `LoggedIn` follow the session,
/// which a call may log in or out at any time, so the phase is read again
/// before each step; `Closing` is [`Connection::closing`], entered once with
/// the reason, and a peer that is gone ends without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nobody logged in: messages up to 8 kB, the login timer runs.
    Anonymous,
    /// Messages up to 64 kB, no login timer.
    LoggedIn,
}

/// Why the daemon closes a connection. [`Close::frame`] is the one place
/// that turns a reason into its close code and text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    ShuttingDown,
    LoginTimeout,
    Binary,
    /// A message over the limit of the phase it arrived in.
    TooBig(Phase),
    /// A broken frame (unmasked, unknown opcode, oversized control frame, ...).
    ProtocolError,
    NotUtf8,
}

impl Close {
    fn frame(self) -> (u16, &'static str) {
        match self {
            Self::ShuttingDown => (1001, "Server shutting down"),
            Self::LoginTimeout => (1008, "Login timeout"),
            Self::Binary => (1003, "Binary messages are not supported"),
            Self::TooBig(Phase::Anonymous) => {
                (1007, "Anonymous connection max message length is 8 kB")
            }
            Self::TooBig(Phase::LoggedIn) => (1009, "Max message length is 64 kB"),
            Self::ProtocolError => (1002, "Protocol error"),
            Self::NotUtf8 => (1007, "Text message is not valid UTF-8"),
        }
    }
}

/// Why the serving loop ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The peer closed, vanished or does not read: nothing more to send.
    Gone,
    /// We close for this reason once the calls in flight are answered.
    Close(Close),
}

/// What woke the serving loop.
enum Input {
    /// A call run off the loop has finished (`None`: a notification).
    Answered(Option<Utf8Bytes>),
    Event(Result<Arc<Event>, broadcast::error::RecvError>),
    Stop,
    LoginTimeout,
    Message(Option<Result<Message, axum::Error>>),
}

/// One connection's state besides its phase.
struct Connection {
    app: Arc<App>,
    session: Arc<Session>,
    socket: WebSocket,
    events: broadcast::Receiver<Arc<Event>>,
    events_open: bool,
    done_tx: mpsc::UnboundedSender<Option<Utf8Bytes>>,
    done_rx: mpsc::UnboundedReceiver<Option<Utf8Bytes>>,
    in_flight: usize,
    send_within: Duration,
    peer: PeerKey,
}

/// Serves one upgraded connection until it closes or the daemon stops.
pub async fn run(app: Arc<App>, peer: Peer, socket: WebSocket) {
    // The guard is dropped when this connection is done; shutdown waits
    // for every guard.
    let _alive = app.alive.clone();
    let Some(session) = open_session(&app, peer).await else {
        return;
    };
    tracing::debug!(origin = %session.origin(), logged_in = session.user().is_some(), "connection opened");
    let mut conn = Connection::new(app, Arc::new(session), socket, PeerKey::of(peer));
    if let End::Close(why) = conn.serve().await {
        conn.closing(why).await;
    }
    tracing::debug!(origin = %conn.session.origin(), "connection closed");
}

/// The session a new connection starts with.
async fn open_session(app: &App, peer: Peer) -> Option<Session> {
    match peer {
        Peer::Unix { uid, pid } => {
            let api = app.api.clone();
            // Root's session looks its account up in NSS: keep that off the loop.
            match tokio::task::spawn_blocking(move || api.unix_session(uid, pid)).await {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::error!(error = %e, "cannot set up a session");
                    None
                }
            }
        }
        Peer::Tcp(addr) => Some(Session::anonymous(api::host::Origin::Tcp {
            addr: addr.ip().to_canonical(),
            port: addr.port(),
        })),
    }
}

impl Connection {
    fn new(app: Arc<App>, session: Arc<Session>, socket: WebSocket, peer: PeerKey) -> Self {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Self {
            events: app.events.subscribe(),
            events_open: true,
            send_within: Duration::from_secs(app.limits.send_timeout_secs.get().into()),
            app,
            session,
            socket,
            done_tx,
            done_rx,
            in_flight: 0,
            peer,
        }
    }

    fn phase(&self) -> Phase {
        if self.session.user().is_some() {
            Phase::LoggedIn
        } else {
            Phase::Anonymous
        }
    }

    /// The anonymous and logged-in phases: waits for the next input and
    /// handles it, until the peer is gone or the connection is to close.
    async fn serve(&mut self) -> End {
        let mut shutdown = self.app.shutdown.clone();
        let stopping = async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        tokio::pin!(stopping);
        // Hostile-load limit: a connection nobody logs into is closed after
        // this long (counted again from a logout).
        let login_within = Duration::from_secs(self.app.limits.login_timeout_secs.get().into());
        let login_timer = tokio::time::sleep(login_within);
        tokio::pin!(login_timer);
        let mut was = self.phase();
        loop {
            let phase = self.phase();
            if was == Phase::LoggedIn && phase == Phase::Anonymous {
                login_timer
                    .as_mut()
                    .reset(tokio::time::Instant::now() + login_within);
            }
            was = phase;
            let input = tokio::select! {
                biased;
                Some(done) = self.done_rx.recv() => Input::Answered(done),
                event = self.events.recv(), if self.events_open => Input::Event(event),
                () = &mut stopping => Input::Stop,
                () = &mut login_timer, if phase == Phase::Anonymous => Input::LoginTimeout,
                message = self.socket.recv() => Input::Message(message),
            };
            let read = matches!(input, Input::Message(_));
            if let Err(end) = self.step(phase, input).await {
                return end;
            }
            // A peer that pipelines calls has a message ready at every
            // read: without this an unprivileged one would be served many
            // messages in a row (tokio's budget) while a new root
            // connection waits its turn on the one event-loop thread.
            if read && !self.session.user().is_some_and(|u| u.admin) {
                tokio::task::yield_now().await;
            }
        }
    }

    async fn step(&mut self, phase: Phase, input: Input) -> Result<(), End> {
        match input {
            Input::Answered(done) => {
                self.in_flight -= 1;
                match done {
                    Some(text) => self.send(text).await,
                    None => Ok(()),
                }
            }
            Input::Event(Ok(event)) => {
                if !self.session.is_subscribed(event.collection) {
                    return Ok(());
                }
                let text = wire::notification("collection_update", event.to_params()).to_string();
                self.send(text.into()).await
            }
            Input::Event(Err(broadcast::error::RecvError::Lagged(n))) => {
                tracing::warn!(missed = n, "a slow connection missed events");
                Ok(())
            }
            Input::Event(Err(broadcast::error::RecvError::Closed)) => {
                self.events_open = false;
                Ok(())
            }
            Input::Stop => Err(End::Close(Close::ShuttingDown)),
            Input::LoginTimeout => {
                tracing::debug!(origin = %self.session.origin(), "closed: no login in time");
                Err(End::Close(Close::LoginTimeout))
            }
            Input::Message(message) => self.message(phase, message).await,
        }
    }

    /// One read from the peer.
    async fn message(
        &mut self,
        phase: Phase,
        message: Option<Result<Message, axum::Error>>,
    ) -> Result<(), End> {
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Binary(_))) => return Err(End::Close(Close::Binary)),
            // Pings are answered by the WebSocket layer; a close is
            // answered on the next read, which then ends.
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Close(_))) => return Ok(()),
            Some(Err(e)) => return Err(read_failed(&e, self.phase())),
            None => return Err(End::Gone),
        };
        if phase == Phase::Anonymous && text.len() > MAX_ANONYMOUS_MESSAGE {
            return Err(End::Close(Close::TooBig(Phase::Anonymous)));
        }
        if text.len() > MAX_MESSAGE {
            return Err(End::Close(Close::TooBig(Phase::LoggedIn)));
        }
        let request = match wire::parse_incoming(text.as_str()) {
            Incoming::Call(request) => request,
            Incoming::Reject { id, error } => {
                return self.send(wire::response_error(&id, &error).into()).await;
            }
            Incoming::Ignore => return Ok(()),
        };
        if self.in_flight >= MAX_IN_FLIGHT {
            let Some(id) = &request.id else {
                return Ok(());
            };
            let error = RpcError::bare(
                ErrorCode::TooManyConcurrentCalls,
                format!("Maximum number of concurrent calls ({MAX_IN_FLIGHT}) has exceeded"),
            );
            return self.send(wire::response_error(id, &error).into()).await;
        }
        if runs_inline(&self.app.api, &request.method) {
            // Inline methods never ask for an answer delay.
            return match execute(&self.app.api, &self.session, request) {
                (Some(reply), _) => self.send(reply).await,
                (None, _) => Ok(()),
            };
        }
        // Hostile-load limit: the blocking work of a session nobody has logged
        // into (password checks) waits for its own small capacity; root,
        // administrators and the PAM module never queue behind it. A session
        // logged in as a non-administrator waits there too: its password checks
        // (`auth.login_ex` again) are as hostile as an anonymous peer's. Root
        // on the Unix socket is an administrator.
        let admin = self.session.user().is_some_and(|u| u.admin);
        let queued = if admin {
            None
        } else {
            match PeerGates::enter(&self.app, self.peer) {
                Some(q) => Some(q),
                None => {
                    // The peer has its share queued over all its
                    // connections: refused rather than queued. The answer
                    // waits as long as a wrong password's and holds its
                    // place among the connection's calls in flight: an
                    // answer at once would be asked again at once, and a
                    // peer refused in a tight loop costs the one event
                    // loop more than one that waits.
                    let Some(id) = request.id else {
                        return Ok(());
                    };
                    let error = RpcError::bare(
                        ErrorCode::TooManyConcurrentCalls,
                        format!(
                            "Maximum number of concurrent calls ({MAX_IN_FLIGHT}) has exceeded"
                        ),
                    );
                    let text = Utf8Bytes::from(wire::response_error(&id, &error));
                    let wait =
                        Duration::from_millis(self.app.limits.failed_login_deadline_ms.into());
                    let done = self.done_tx.clone();
                    self.in_flight += 1;
                    tokio::spawn(async move {
                        tokio::time::sleep(wait).await;
                        let _ = done.send(Some(text));
                    });
                    return Ok(());
                }
            }
        };
        self.spawn_call(request, queued);
        Ok(())
    }

    /// Runs a call off the loop; its answer comes back as
    /// [`Input::Answered`]. `queued` (an unprivileged caller's place in
    /// its peer's queue) makes it wait for the peer's turn and then for the
    /// unauthenticated capacity.
    fn spawn_call(&mut self, request: Request, queued: Option<Queued>) {
        self.in_flight += 1;
        let (api, session, done) = (
            self.app.api.clone(),
            self.session.clone(),
            self.done_tx.clone(),
        );
        let gate = queued.as_ref().map(|_| self.app.unauthenticated.clone());
        tokio::spawn(async move {
            let mut permits = None;
            if let (Some(q), Some(gate)) = (&queued, gate) {
                let Ok(own) = q.gate.running.clone().acquire_owned().await else {
                    return;
                };
                let Ok(shared) = gate.acquire_owned().await else {
                    return;
                };
                permits = Some((own, shared));
            }
            let ran = tokio::task::spawn_blocking(move || execute(&api, &session, request)).await;
            drop(permits);
            drop(queued);
            let (reply, delay) = ran.unwrap_or((None, Duration::ZERO));
            // A wrong password's delay is waited out here, on a timer, not
            // on a blocking-pool thread.
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let _ = done.send(reply);
        });
    }

    /// The closing state: answers what is running (bounded by the daemon's
    /// shutdown grace period, which ends the process), then closes.
    async fn closing(&mut self, why: Close) {
        while self.in_flight > 0 {
            let Some(done) = self.done_rx.recv().await else {
                break;
            };
            self.in_flight -= 1;
            if let Some(text) = done
                && self.send(text).await.is_err()
            {
                return;
            }
        }
        close(&mut self.socket, why).await;
    }

    /// Sends one text message; [`End::Gone`] when the peer is gone or has
    /// not read it within the send timeout (a peer that does not read is
    /// dropped, not buffered for without end).
    async fn send(&mut self, text: Utf8Bytes) -> Result<(), End> {
        let sent = tokio::time::timeout(self.send_within, self.socket.send(Message::Text(text)));
        match sent.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::Gone),
            Err(_) => {
                if let Some(suppressed) = crate::throttle::allow("send_timeout") {
                    tracing::info!(suppressed, "a peer that does not read was dropped");
                }
                Err(End::Gone)
            }
        }
    }
}

/// A read error: a message over the hard limit still gets its close code.
fn read_failed(e: &axum::Error, phase: Phase) -> End {
    let inner = std::error::Error::source(e).and_then(|s| s.downcast_ref::<tungstenite::Error>());
    match inner {
        Some(tungstenite::Error::Capacity(_)) => End::Close(Close::TooBig(phase)),
        // A broken frame and a text message that is not UTF-8 get their
        // close codes rather than a bare TCP close.
        Some(tungstenite::Error::Protocol(p)) => {
            tracing::debug!(error = %p, "WebSocket protocol error");
            End::Close(Close::ProtocolError)
        }
        Some(tungstenite::Error::Utf8(_)) => End::Close(Close::NotUtf8),
        _ => {
            tracing::debug!(error = %e, "connection failed");
            End::Gone
        }
    }
}

/// Sends a close frame and waits (bounded) for the peer's reply, so the
/// peer reads the code before the socket goes away.
async fn close(socket: &mut WebSocket, why: Close) {
    let (code, reason) = why.frame();
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let sent = tokio::time::timeout(CLOSE_REPLY_WAIT, socket.send(Message::Close(Some(frame))));
    if !matches!(sent.await, Ok(Ok(()))) {
        return;
    }
    let _ = tokio::time::timeout(CLOSE_REPLY_WAIT, async {
        while let Some(Ok(_)) = socket.recv().await {}
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer goes out through the wiping buffer as the very text the
    /// ordinary path writes (the wiping itself is `wire`'s test).
    #[test]
    fn an_answer_is_sent_from_its_wiping_buffer_unchanged() {
        let id = wire::Id::from(&serde_json::json!("a"));
        let result = serde_json::json!({"provisioning_uri": "otpauth://totp/x?secret=AAAA"});
        let text = wiping_text(wire::response_ok_wiping(&id, result.clone()));
        assert_eq!(text.as_str(), wire::response_ok(&id, result));
    }

    /// The size limit's close code depends on the phase the
    /// message arrived in, whichever path (the read limit or the length
    /// check) found it too big.
    #[test]
    fn too_big_closes_by_phase() {
        assert_eq!(Close::TooBig(Phase::Anonymous).frame().0, 1007);
        assert_eq!(Close::TooBig(Phase::LoggedIn).frame().0, 1009);
    }

    /// Every reason has its own text (two share 1007, invalid payload), a
    /// close code in the range RFC 6455 defines, and fits a control frame.
    #[test]
    fn each_reason_has_one_frame() {
        let all = [
            Close::ShuttingDown,
            Close::LoginTimeout,
            Close::Binary,
            Close::TooBig(Phase::Anonymous),
            Close::TooBig(Phase::LoggedIn),
            Close::ProtocolError,
            Close::NotUtf8,
        ];
        let reasons: std::collections::HashSet<_> = all.iter().map(|c| c.frame().1).collect();
        assert_eq!(reasons.len(), all.len());
        for c in all {
            let (code, reason) = c.frame();
            assert!((1000..=1011).contains(&code), "{c:?}: {code}");
            // RFC 6455: a close reason fits in a control frame.
            assert!(reason.len() <= 123, "{c:?}");
        }
    }
}
