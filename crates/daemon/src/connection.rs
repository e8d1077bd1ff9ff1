//! One WebSocket connection (SPEC §5.1–5.3): text frames only, message size
//! limits, the envelope through `wire::parse_incoming`, at most 20 calls in
//! flight, calls running concurrently (answers may overtake each other),
//! `collection_update` events for the session's subscriptions, and a clean
//! close at shutdown once the calls in flight have answered.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use api::{Api, Event, Session};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use tokio::sync::{Semaphore, broadcast, mpsc, watch};
use wire::{ErrorCode, Incoming, Request, RpcError};

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
    pub limits: service::Limits,
    /// Capacity for the blocking calls of sessions nobody has logged into
    /// (password checks): separate from, and much smaller than, the pool
    /// that serves root, administrators and the PAM module (SPEC §11).
    pub unauthenticated: Arc<Semaphore>,
}

/// Largest message before login (SPEC §5.1): bigger closes with 1007.
pub const MAX_ANONYMOUS_MESSAGE: usize = 8 * 1024;
/// Largest message after login: bigger closes with 1009.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Calls one connection may have running at once.
pub const MAX_IN_FLIGHT: usize = 20;

const CLOSE_PROTOCOL_ERROR: u16 = 1002;
const CLOSE_UNSUPPORTED_DATA: u16 = 1003;
const CLOSE_POLICY: u16 = 1008;
const CLOSE_INVALID_PAYLOAD: u16 = 1007;
const CLOSE_TOO_BIG: u16 = 1009;
const CLOSE_GOING_AWAY: u16 = 1001;

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
    // Unknown methods are inline too: they fail at once.
    api.method(method).is_none_or(|m| m.inline)
}

/// Runs one call; the response text (or `None` for a notification) and how
/// long to wait before sending it.
fn execute(api: &Api, session: &Session, request: Request) -> (Option<String>, Duration) {
    let Request { id, method, params } = request;
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        api.call_deferred(session, &method, params)
    }));
    let (outcome, delay) = match outcome {
        Ok((result, delay)) => (Ok(result), delay),
        Err(panic) => (Err(panic), Duration::ZERO),
    };
    let response = match outcome {
        Ok(Ok(result)) => {
            tracing::debug!(method, "call answered");
            id.map(|id| wire::response_ok(&id, result))
        }
        Ok(Err(e)) => {
            // `to_rpc` logs internal detail; params are never logged.
            let rpc = e.to_rpc();
            tracing::debug!(method, code = rpc.code, "call failed");
            id.map(|id| wire::response_error(&id, &rpc))
        }
        Err(_) => {
            tracing::error!(method, "a call panicked");
            id.map(|id| wire::response_error(&id, &RpcError::internal()))
        }
    };
    (response.map(|v| v.to_string()), delay)
}

/// Sends one text message; `false` when the peer is gone or has not read
/// it within `within` (a peer that does not read is dropped, not buffered
/// for without end: SPEC §11).
async fn send(socket: &mut WebSocket, text: String, within: Duration) -> bool {
    match tokio::time::timeout(within, socket.send(Message::Text(text.into()))).await {
        Ok(Ok(())) => true,
        Ok(Err(_)) => false,
        Err(_) => {
            if let Some(suppressed) = crate::throttle::allow("send_timeout") {
                tracing::info!(suppressed, "a peer that does not read was dropped");
            }
            false
        }
    }
}

/// Why the read loop ended.
enum End {
    /// The peer closed or vanished: nothing more to send.
    Gone,
    /// We close with this code once the calls in flight are answered.
    Close(u16, &'static str),
}

/// Serves one upgraded connection until it closes or the daemon stops.
pub async fn run(app: Arc<App>, peer: Peer, mut socket: WebSocket) {
    // The guard is dropped when this connection is done; shutdown waits
    // for every guard.
    let _alive = app.alive.clone();
    let session = match peer {
        Peer::Unix { uid, pid } => {
            let api = app.api.clone();
            // Root's session looks its account up in NSS: keep that off the loop.
            match tokio::task::spawn_blocking(move || api.unix_session(uid, pid)).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot set up a session");
                    return;
                }
            }
        }
        Peer::Tcp(addr) => Session::anonymous(service::Origin::Tcp {
            addr: addr.ip().to_canonical(),
            port: addr.port(),
        }),
    };
    let session = Arc::new(session);
    tracing::debug!(origin = %session.origin(), logged_in = session.user().is_some(), "connection opened");

    let mut events = app.events.subscribe();
    let mut events_open = true;
    let mut shutdown = app.shutdown.clone();
    let stopping = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stopping);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Option<String>>();
    let mut in_flight = 0usize;
    let send_within = Duration::from_secs(app.limits.send_timeout_secs.into());
    // SPEC §11: a connection nobody logs into is closed after this long
    // (counted again from a logout).
    let login_within = Duration::from_secs(app.limits.login_timeout_secs.into());
    let login_timer = tokio::time::sleep(login_within);
    tokio::pin!(login_timer);
    let mut was_logged_in = session.user().is_some();

    let end = loop {
        let logged_in = session.user().is_some();
        if was_logged_in && !logged_in {
            login_timer
                .as_mut()
                .reset(tokio::time::Instant::now() + login_within);
        }
        was_logged_in = logged_in;
        tokio::select! {
            biased;
            Some(done) = done_rx.recv() => {
                in_flight -= 1;
                if let Some(text) = done
                    && !send(&mut socket, text, send_within).await
                {
                    break End::Gone;
                }
            }
            event = events.recv(), if events_open => match event {
                Ok(event) => {
                    if session.is_subscribed(event.collection) {
                        let text = wire::notification("collection_update", event.to_params()).to_string();
                        if !send(&mut socket, text, send_within).await {
                            break End::Gone;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "a slow connection missed events");
                }
                Err(broadcast::error::RecvError::Closed) => events_open = false,
            },
            () = &mut stopping => break End::Close(CLOSE_GOING_AWAY, "Server shutting down"),
            () = &mut login_timer, if !logged_in => {
                tracing::debug!(origin = %session.origin(), "closed: no login in time");
                break End::Close(CLOSE_POLICY, "Login timeout");
            }
            message = socket.recv() => {
                let text = match message {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Binary(_))) => {
                        break End::Close(CLOSE_UNSUPPORTED_DATA, "Binary messages are not supported");
                    }
                    // Pings are answered by the WebSocket layer; a close
                    // is answered on the next read, which then ends.
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Close(_))) => continue,
                    Some(Err(e)) => break read_failed(&e, &session),
                    None => break End::Gone,
                };
                if !logged_in && text.len() > MAX_ANONYMOUS_MESSAGE {
                    break End::Close(CLOSE_INVALID_PAYLOAD, "Anonymous connection max message length is 8 kB");
                }
                if text.len() > MAX_MESSAGE {
                    break End::Close(CLOSE_TOO_BIG, "Max message length is 64 kB");
                }
                let request = match wire::parse_incoming(text.as_str()) {
                    Incoming::Call(request) => request,
                    Incoming::Reject { id, error } => {
                        let reply = wire::response_error(&id, &error).to_string();
                        if !send(&mut socket, reply, send_within).await {
                            break End::Gone;
                        }
                        continue;
                    }
                    Incoming::Ignore => continue,
                };
                if in_flight >= MAX_IN_FLIGHT {
                    if let Some(id) = &request.id {
                        let error = RpcError::bare(
                            ErrorCode::TooManyConcurrentCalls,
                            format!("Maximum number of concurrent calls ({MAX_IN_FLIGHT}) has exceeded"),
                        );
                        let reply = wire::response_error(id, &error).to_string();
                        if !send(&mut socket, reply, send_within).await {
                            break End::Gone;
                        }
                    }
                    continue;
                }
                if runs_inline(&app.api, &request.method) {
                    // Inline methods never ask for an answer delay.
                    if let (Some(reply), _) = execute(&app.api, &session, request)
                        && !send(&mut socket, reply, send_within).await
                    {
                        break End::Gone;
                    }
                } else {
                    in_flight += 1;
                    let (api, session, done) = (app.api.clone(), session.clone(), done_tx.clone());
                    // SPEC §11: the blocking work of a session nobody has
                    // logged into (password checks) waits for its own small
                    // capacity; root, administrators and the PAM module
                    // never queue behind it. A session logged in as a
                    // non-administrator waits there too: its password
                    // checks (`auth.login_ex` again) are as hostile as an
                    // anonymous peer's.
                    let admin = session.user().is_some_and(|u| u.admin);
                    let gate = (!admin).then(|| app.unauthenticated.clone());
                    tokio::spawn(async move {
                        let permit = match gate {
                            Some(gate) => match gate.acquire_owned().await {
                                Ok(p) => Some(p),
                                Err(_) => return,
                            },
                            None => None,
                        };
                        let ran =
                            tokio::task::spawn_blocking(move || execute(&api, &session, request))
                                .await;
                        drop(permit);
                        let (reply, delay) = ran.unwrap_or((None, Duration::ZERO));
                        // A wrong password's delay is waited out here, on a
                        // timer, not on a blocking-pool thread.
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        let _ = done.send(reply);
                    });
                }
            }
        }
    };

    if let End::Close(code, reason) = end {
        // Answer what is running before closing (bounded by the daemon's
        // shutdown grace period, which ends the process).
        while in_flight > 0 {
            let Some(done) = done_rx.recv().await else {
                break;
            };
            in_flight -= 1;
            if let Some(text) = done
                && !send(&mut socket, text, send_within).await
            {
                return;
            }
        }
        close(&mut socket, code, reason).await;
    }
    tracing::debug!(origin = %session.origin(), "connection closed");
}

/// A read error: a message over the hard limit still gets its close code.
fn read_failed(e: &axum::Error, session: &Session) -> End {
    let inner = std::error::Error::source(e).and_then(|s| s.downcast_ref::<tungstenite::Error>());
    match inner {
        Some(tungstenite::Error::Capacity(_)) if session.user().is_none() => End::Close(
            CLOSE_INVALID_PAYLOAD,
            "Anonymous connection max message length is 8 kB",
        ),
        Some(tungstenite::Error::Capacity(_)) => {
            End::Close(CLOSE_TOO_BIG, "Max message length is 64 kB")
        }
        // A broken frame (unmasked, unknown opcode, oversized control frame,
        // ...) and a text message that is not UTF-8 get their close codes
        // rather than a bare TCP close.
        Some(tungstenite::Error::Protocol(p)) => {
            tracing::debug!(error = %p, "WebSocket protocol error");
            End::Close(CLOSE_PROTOCOL_ERROR, "Protocol error")
        }
        Some(tungstenite::Error::Utf8(_)) => {
            End::Close(CLOSE_INVALID_PAYLOAD, "Text message is not valid UTF-8")
        }
        _ => {
            tracing::debug!(error = %e, "connection failed");
            End::Gone
        }
    }
}

/// Sends a close frame and waits (bounded) for the peer's reply, so the
/// peer reads the code before the socket goes away.
async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
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
