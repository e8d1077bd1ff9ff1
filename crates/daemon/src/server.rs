//! The HTTP side: one router served on the Unix socket and on TCP,
//! `GET /api/current` upgrading to the JSON-RPC WebSocket, `GET
//! /api/versions`, and a clean shutdown on SIGTERM/SIGINT.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use api::Api;
use api::host::Listen;
use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{ConnectInfo, Path, State, WebSocketUpgrade};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::{Semaphore, broadcast, mpsc, watch};

use crate::connection::App;
use crate::listen::{self, Admission, Conn, TcpPeers};
use crate::web;

/// The API version string besides `current` (TrueNAS names versions
/// `vYY.MM.N`; ours is the package version).
pub const VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"));

/// How long a stopping daemon lets calls in flight finish.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The largest WebSocket message (and frame) read at all, enforced while
/// reading, before a larger one is buffered; the 8 KiB limit before login
/// is checked per message so that it gets its close code.
const MAX_WS_MESSAGE: usize = crate::connection::MAX_MESSAGE;

/// Where the daemon listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub socket: std::path::PathBuf,
    /// TCP, or [`Listen::None`].
    pub listen: Listen,
    /// The hostile-load limits of both listeners and their connections.
    pub limits: api::host::Limits,
    /// HTTPS on the TCP listener (certificate and key files).
    pub tls: Option<api::host::TlsFiles>,
}

/// What one listener's router serves beyond the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Surface {
    /// The web page at `/ui/` (the TCP listener).
    pub page: bool,
    /// This listener speaks TLS: `https` origins, HSTS.
    pub tls: bool,
}

pub fn router(app: Arc<App>, surface: Surface) -> Router {
    let mut routes = Router::new()
        .route("/api/versions", get(versions))
        .route("/api/{version}", get(upgrade));
    if surface.page {
        routes = routes
            .route("/", get(web::to_page))
            .route("/ui", get(web::to_page))
            .route("/ui/", get(web::index))
            .route("/ui/{*path}", get(web::file));
    }
    routes
        .layer(axum::Extension(surface))
        // Every response the router makes (404s included) carries them.
        .layer(axum::middleware::map_response(
            move |mut response: Response| async move {
                web::secure(&mut response, surface.tls);
                response
            },
        ))
        .with_state(app)
}

async fn versions() -> Response {
    let body = serde_json::json!([VERSION, "current"]).to_string();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn upgrade(
    State(app): State<Arc<App>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    axum::Extension(surface): axum::Extension<Surface>,
    Path(version): Path<String>,
    headers: axum::http::HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if version != "current" && version != VERSION {
        return StatusCode::NOT_FOUND.into_response();
    }
    if !web::origin_allowed(&headers, surface.tls) {
        if let Some(suppressed) = crate::throttle::allow("foreign_origin") {
            tracing::warn!(peer = ?conn.peer, suppressed, "WebSocket upgrade from a foreign Origin refused");
        }
        return (
            StatusCode::FORBIDDEN,
            "WebSocket upgrades from another site's page are refused\n",
        )
            .into_response();
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    conn.upgraded();
    let peer = conn.peer;
    // The WebSocket layer zero-fills its read buffer's free space before
    // every read, waiting or not: with 16 KiB that was most of a `config`
    // call's instructions. A request is well under 4 KiB; a larger one
    // (up to the message limit) takes a few more reads.
    ws.max_message_size(MAX_WS_MESSAGE)
        .max_frame_size(MAX_WS_MESSAGE)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .on_upgrade(move |socket| crate::connection::run(app, peer, socket))
}

/// How much the WebSocket layer reads at a time (and zero-fills first).
const READ_BUFFER: usize = 4 * 1024;

/// Serves until SIGTERM or SIGINT, then shuts down cleanly: stops
/// accepting, lets calls in flight finish (at most [`SHUTDOWN_GRACE`]),
/// closes connections with 1001 and removes the socket file.
pub async fn serve(api: Api, endpoints: &Endpoints) -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot handle SIGTERM")?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot handle SIGINT")?;
    let stop = async move {
        tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        }
    };
    serve_until(api, endpoints, stop).await
}

/// [`serve`] with any stop signal (tests stop it with a future).
pub async fn serve_until(
    api: Api,
    endpoints: &Endpoints,
    stop: impl Future<Output = &'static str>,
) -> anyhow::Result<()> {
    let admission = Admission::new(endpoints.limits);
    let (mut unix, socket_file) = listen::bind_unix(&endpoints.socket)?;
    unix.admit_with(admission.clone());
    let tls = match &endpoints.tls {
        Some(files) if endpoints.listen != Listen::None => {
            match crate::tls::load(&files.cert, &files.key) {
                Ok(config) => Some(config),
                Err(e) => {
                    drop(unix);
                    socket_file.remove();
                    return Err(e);
                }
            }
        }
        _ => None,
    };
    let tcp = match &endpoints.listen {
        Listen::Tcp(addr) => match TcpPeers::bind(addr, admission).await {
            Ok(tcp) => Some(tcp),
            Err(e) => {
                // Nothing will serve the socket file: leave none behind.
                drop(unix);
                socket_file.remove();
                return Err(e);
            }
        },
        Listen::None => None,
    };
    let tcp_local = match &tcp {
        Some(t) => Some(t.local_addr()?),
        None => None,
    };
    let tcp_addr = match tcp_local {
        Some(a) => a.to_string(),
        None => Listen::None.to_string(),
    };
    if let Some(a) = tcp_local
        && tls.is_none()
        && !a.ip().is_loopback()
    {
        tracing::warn!(
            tcp = %a,
            "the TCP listener is not on a loopback address and has no TLS: passwords, codes \
             and tokens cross the network in clear; set tls_cert and tls_key, or reach it \
             through an SSH tunnel"
        );
    }

    let (events, _) = broadcast::channel(64);
    let sender = events.clone();
    api.on_event(move |event| {
        // No receivers (no connection) is fine.
        let _ = sender.send(Arc::new(event.clone()));
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let (alive, mut all_gone) = mpsc::channel::<()>(1);
    let app = Arc::new(App {
        api,
        events,
        shutdown: stop_rx.clone(),
        alive,
        limits: endpoints.limits,
        unauthenticated: Arc::new(Semaphore::new(
            usize::try_from(endpoints.limits.unauthenticated_workers.get()).unwrap_or(1),
        )),
        peers: crate::connection::PeerGates::default(),
    });
    let tls_on = tls.is_some();
    let unix_routes = router(
        app.clone(),
        Surface {
            page: false,
            tls: false,
        },
    );
    let tcp_routes = router(
        app.clone(),
        Surface {
            page: true,
            tls: tls.is_some(),
        },
    );

    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let unix_server = tokio::spawn(
        axum::serve(
            unix,
            unix_routes.into_make_service_with_connect_info::<Conn>(),
        )
        .with_graceful_shutdown(stopped(stop_rx.clone()))
        .into_future(),
    );
    let tcp_server = match (tcp, tls) {
        (Some(tcp), Some(config)) => Some(tokio::spawn(
            axum::serve(
                crate::tls::TlsPeers::new(tcp, config)?,
                tcp_routes.into_make_service_with_connect_info::<Conn>(),
            )
            .with_graceful_shutdown(stopped(stop_rx.clone()))
            .into_future(),
        )),
        (Some(tcp), None) => Some(tokio::spawn(
            axum::serve(
                tcp,
                tcp_routes.into_make_service_with_connect_info::<Conn>(),
            )
            .with_graceful_shutdown(stopped(stop_rx.clone()))
            .into_future(),
        )),
        (None, _) => {
            // Unused, they would hold the app (and its `alive` sender) to
            // the end: shutting down would wait out the whole grace period.
            drop(tcp_routes);
            None
        }
    };
    // Tests and scripts wait for this line.
    tracing::info!(unix = %socket_file.path().display(), tcp = %tcp_addr, tls = tls_on, "listening");

    let signal = stop.await;
    tracing::info!(
        signal,
        "stopping: no new connections; waiting for calls in flight"
    );
    let _ = stop_tx.send(true);
    drop(app);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        let _ = unix_server.await;
        if let Some(t) = tcp_server {
            let _ = t.await;
        }
        // Every connection dropped its `alive` clone.
        let _ = all_gone.recv().await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!(grace = ?SHUTDOWN_GRACE, "calls still running at the end of the grace period");
    }
    socket_file.remove();
    tracing::info!("stopped");
    Ok(())
}
