//! The two listeners and who is on the other end: the Unix socket (peer
//! credentials from SO_PEERCRED) and TCP (the remote address). Under hostile
//! load, connections are capped per listener and per remote address (uid on the
//! Unix socket) with capacity kept for root, and a connection that has not
//! finished its HTTP upgrade within the handshake time-out is closed.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::{Context, bail};
use api::host::Limits;
use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::time::Sleep;

use crate::throttle;

/// The other end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// A Unix-socket peer, by its credentials.
    Unix {
        uid: u32,
        pid: Option<i32>,
    },
    Tcp(SocketAddr),
}

/// An admitted connection: its peer, and the flag its upgrade sets to end
/// the handshake time-out.
#[derive(Debug, Clone)]
pub struct Conn {
    pub peer: Peer,
    upgraded: Arc<AtomicBool>,
}

impl Conn {
    /// The listener's own address, as axum asks for it.
    pub fn local(addr: SocketAddr) -> Self {
        Self {
            peer: Peer::Tcp(addr),
            upgraded: Arc::new(AtomicBool::new(true)),
        }
    }

    /// The HTTP upgrade is done: the handshake time-out no longer applies.
    pub fn upgraded(&self) {
        self.upgraded.store(true, Ordering::Release);
    }
}

impl Connected<IncomingStream<'_, UnixPeers>> for Conn {
    fn connect_info(stream: IncomingStream<'_, UnixPeers>) -> Self {
        stream.remote_addr().clone()
    }
}

impl Connected<IncomingStream<'_, TcpPeers>> for Conn {
    fn connect_info(stream: IncomingStream<'_, TcpPeers>) -> Self {
        stream.remote_addr().clone()
    }
}

/// What the connection caps count by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Ip(IpAddr),
    Uid(u32),
}

#[derive(Debug, Default)]
struct Counts {
    tcp: u32,
    /// Unix-socket connections of every uid but root's.
    unix: u32,
    /// Root's Unix-socket connections.
    root: u32,
    per_key: HashMap<Key, u32>,
}

/// The connection caps of both listeners.
#[derive(Debug)]
pub struct Admission {
    limits: Limits,
    counts: Mutex<Counts>,
}

/// One admitted connection's place in the counts, given back on drop.
#[derive(Debug)]
pub struct Slot {
    admission: Arc<Admission>,
    peer: Peer,
}

impl Admission {
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            counts: Mutex::new(Counts::default()),
        })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A slot for `peer`, or `None` when a cap is reached. Root on the Unix
    /// socket may use the whole listener's capacity plus the reserve, which
    /// nobody else can take.
    pub fn admit(self: &Arc<Self>, peer: &Peer) -> Option<Slot> {
        let l = &self.limits;
        let max = l.max_connections.get();
        let per_address = l.max_connections_per_address.get();
        let mut c = self.counts();
        match *peer {
            Peer::Unix { uid: 0, .. } => {
                if c.root + c.unix >= max + l.root_reserved_connections.get() {
                    return None;
                }
                c.root += 1;
            }
            Peer::Unix { uid, .. } => {
                let per = c.per_key.get(&Key::Uid(uid)).copied().unwrap_or(0);
                if c.unix >= max || per >= per_address {
                    return None;
                }
                c.unix += 1;
                *c.per_key.entry(Key::Uid(uid)).or_default() += 1;
            }
            Peer::Tcp(addr) => {
                let key = Key::Ip(addr.ip().to_canonical());
                let per = c.per_key.get(&key).copied().unwrap_or(0);
                if c.tcp >= max || per >= per_address {
                    return None;
                }
                c.tcp += 1;
                *c.per_key.entry(key).or_default() += 1;
            }
        }
        Some(Slot {
            admission: self.clone(),
            peer: *peer,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.admission.counts();
        let key = match self.peer {
            Peer::Unix { uid: 0, .. } => {
                c.root = c.root.saturating_sub(1);
                return;
            }
            Peer::Unix { uid, .. } => {
                c.unix = c.unix.saturating_sub(1);
                Key::Uid(uid)
            }
            Peer::Tcp(addr) => {
                c.tcp = c.tcp.saturating_sub(1);
                Key::Ip(addr.ip().to_canonical())
            }
        };
        if let Some(n) = c.per_key.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.per_key.remove(&key);
            }
        }
    }
}

/// How long a closed WebSocket connection is drained before its socket is
/// dropped (see [`Guarded`]'s `Drop`).
const LINGER: Duration = Duration::from_secs(2);

/// Bytes a connection may send before its upgrade (request line and
/// headers). hyper alone buffers about 400 KiB of unfinished headers per
/// connection: 1,024 peers that never end their headers held 326 MB.
/// An upgrade request is a few hundred bytes.
pub const MAX_HANDSHAKE_BYTES: usize = 16 * 1024;

/// A connection's stream, holding its slot, failing reads and writes once
/// the handshake time-out passes before the upgrade.
#[derive(Debug)]
pub struct Guarded<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> {
    /// `None` only while dropping.
    inner: Option<S>,
    slot: Option<Slot>,
    handshake: Option<Pin<Box<Sleep>>>,
    upgraded: Arc<AtomicBool>,
    /// Bytes read while the handshake was still under way.
    handshake_bytes: usize,
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "connection already closed")
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Guarded<S> {
    fn new(inner: S, slot: Slot, timeout: Duration) -> (Self, Arc<AtomicBool>) {
        let upgraded = Arc::new(AtomicBool::new(false));
        (
            Self {
                inner: Some(inner),
                slot: Some(slot),
                handshake: Some(Box::pin(tokio::time::sleep(timeout))),
                upgraded: upgraded.clone(),
                handshake_bytes: 0,
            },
            upgraded,
        )
    }

    /// The stream, or `Err` once the handshake time-out has passed without
    /// an upgrade.
    fn io(&mut self, cx: &mut TaskContext<'_>) -> io::Result<&mut S> {
        if let Some(deadline) = &mut self.handshake {
            if self.upgraded.load(Ordering::Acquire) {
                self.handshake = None;
            } else if deadline.as_mut().poll(cx).is_ready() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no WebSocket upgrade within the handshake time-out",
                ));
            }
        }
        self.inner.as_mut().ok_or_else(gone)
    }
}

/// A WebSocket connection that ends while the peer still sends (a message
/// over the size limit, a protocol error) would be reset by the kernel if
/// dropped with unread data, and the peer would lose the close frame. So an
/// upgraded connection is shut down for writing and drained for at most
/// [`LINGER`] before it goes, still holding its slot.
impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Drop for Guarded<S> {
    fn drop(&mut self) {
        let (Some(mut inner), Some(slot)) = (self.inner.take(), self.slot.take()) else {
            return;
        };
        if !self.upgraded.load(Ordering::Acquire) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let _slot = slot;
            let _ = tokio::time::timeout(LINGER, async {
                let _ = inner.shutdown().await;
                let mut buf = [0u8; 4096];
                while let Ok(n) = inner.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            })
            .await;
        });
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncRead for Guarded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = match this.io(cx) {
            Ok(io) => Pin::new(io).poll_read(cx, buf),
            Err(e) => return Poll::Ready(Err(e)),
        };
        // Still in the handshake (the time-out not yet cleared): count
        // what the peer sent, and give up past the cap.
        if this.handshake.is_some() && !this.upgraded.load(Ordering::Acquire) {
            this.handshake_bytes += buf.filled().len().saturating_sub(before);
            if this.handshake_bytes > MAX_HANDSHAKE_BYTES {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the upgrade request is too large",
                )));
            }
        }
        read
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncWrite for Guarded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().io(cx) {
            Ok(io) => Pin::new(io).poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().inner.as_mut() {
            Some(io) => Pin::new(io).poll_flush(cx),
            None => Poll::Ready(Err(gone())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().inner.as_mut() {
            Some(io) => Pin::new(io).poll_shutdown(cx),
            None => Poll::Ready(Err(gone())),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().io(cx) {
            Ok(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(AsyncWrite::is_write_vectored)
    }
}

/// Admits `stream` from `peer`, or drops it (closing it) at a cap.
fn admit<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    admission: &Arc<Admission>,
    stream: S,
    peer: Peer,
) -> Option<(Guarded<S>, Conn)> {
    let Some(slot) = admission.admit(&peer) else {
        if let Some(suppressed) = throttle::allow("connection_refused") {
            tracing::warn!(peer = ?peer, suppressed, "connection refused: connection limit reached");
        }
        return None;
    };
    let timeout = Duration::from_secs(admission.limits.handshake_timeout_secs.get().into());
    let (guarded, upgraded) = Guarded::new(stream, slot, timeout);
    Some((guarded, Conn { peer, upgraded }))
}

/// The Unix socket, answering each connection with its peer's credentials.
#[derive(Debug)]
pub struct UnixPeers {
    listener: UnixListener,
    admission: Arc<Admission>,
}

impl UnixPeers {
    /// Counts this listener's connections in `admission`.
    pub fn admit_with(&mut self, admission: Arc<Admission>) {
        self.admission = admission;
    }
}

/// TCP, with Nagle off (calls are small request/answer pairs).
#[derive(Debug)]
pub struct TcpPeers {
    listener: TcpListener,
    admission: Arc<Admission>,
}

impl TcpPeers {
    pub async fn bind(addr: &str, admission: Arc<Admission>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on TCP address {addr}"))?;
        Ok(Self {
            listener,
            admission,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

impl Listener for UnixPeers {
    type Io = Guarded<UnixStream>;
    type Addr = Conn;

    async fn accept(&mut self) -> (Guarded<UnixStream>, Conn) {
        loop {
            match self.listener.accept().await {
                Ok((stream, _)) => match stream.peer_cred() {
                    Ok(cred) => {
                        let peer = Peer::Unix {
                            uid: cred.uid(),
                            pid: cred.pid(),
                        };
                        if let Some(admitted) = admit(&self.admission, stream, peer) {
                            return admitted;
                        }
                    }
                    // Without credentials the peer cannot be placed: refuse it.
                    Err(e) => tracing::warn!(error = %e, "no peer credentials; connection dropped"),
                },
                Err(e) => accept_failed(e).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Conn> {
        Err(io::Error::other(
            "a Unix socket has no peer address of its own",
        ))
    }
}

impl Listener for TcpPeers {
    type Io = Guarded<TcpStream>;
    type Addr = Conn;

    async fn accept(&mut self) -> (Guarded<TcpStream>, Conn) {
        loop {
            match self.listener.accept().await {
                Ok((stream, addr)) => {
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                    }
                    if let Some(admitted) = admit(&self.admission, stream, Peer::Tcp(addr)) {
                        return admitted;
                    }
                }
                Err(e) => accept_failed(e).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Conn> {
        self.listener.local_addr().map(Conn::local)
    }
}

/// As hyper: a failed connection is skipped; running out of descriptors is
/// logged and retried after a pause rather than spinning.
async fn accept_failed(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    // Logged at most a few times per interval (EMFILE repeats ~10 times a second).
    if let Some(suppressed) = throttle::allow("accept_failed") {
        tracing::error!(error = %e, suppressed, "accept failed");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// The socket file this process created, removed at shutdown only if it is
/// still the same file.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    /// dev, inode and change time: an inode number alone may be reused.
    identity: (u64, u64, i64, i64),
}

fn identity(m: &std::fs::Metadata) -> (u64, u64, i64, i64) {
    (m.dev(), m.ino(), m.ctime(), m.ctime_nsec())
}

impl SocketFile {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn remove(&self) {
        match std::fs::symlink_metadata(&self.path) {
            Ok(m) if identity(&m) == self.identity => {
                if let Err(e) = std::fs::remove_file(&self.path) {
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot remove the socket");
                }
            }
            _ => {}
        }
    }
}

/// Binds the Unix socket: creates its directory (0755), replaces a stale
/// socket file that nobody answers on, and opens the socket to everyone
/// (0666): authorization is by peer credentials and login, not file mode.
pub fn bind_unix(path: &Path) -> anyhow::Result<(UnixPeers, SocketFile)> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .with_context(|| format!("cannot create the socket directory {}", dir.display()))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_socket() => {
            bail!(
                "{} exists and is not a socket; not replacing it",
                path.display()
            )
        }
        Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => bail!("another daemon is already listening on {}", path.display()),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                tracing::info!(path = %path.display(), "removing a stale socket");
                std::fs::remove_file(path).with_context(|| {
                    format!("cannot remove the stale socket {}", path.display())
                })?;
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot probe the existing socket {}", path.display())
                });
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", path.display())),
    }
    let std_listener = std::os::unix::net::UnixListener::bind(path)
        .with_context(|| format!("cannot listen on the Unix socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    let meta = std::fs::symlink_metadata(path)?;
    std_listener.set_nonblocking(true)?;
    let listener = UnixListener::from_std(std_listener)?;
    Ok((
        UnixPeers {
            listener,
            admission: Admission::new(Limits::default()),
        },
        SocketFile {
            path: path.to_owned(),
            identity: identity(&meta),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_listener_and_address_with_a_reserve_for_root() {
        let n = |v| std::num::NonZeroU32::new(v).expect("not zero");
        let a = Admission::new(Limits {
            max_connections: n(4),
            max_connections_per_address: n(2),
            root_reserved_connections: n(2),
            ..Limits::default()
        });
        let tcp = |last: u8| Peer::Tcp(SocketAddr::from(([10, 0, 0, last], 1000)));
        let user = |uid: u32| Peer::Unix { uid, pid: None };
        let root = Peer::Unix { uid: 0, pid: None };
        // Per address.
        let t1 = a.admit(&tcp(1)).expect("first");
        let _t2 = a.admit(&tcp(1)).expect("second");
        assert!(a.admit(&tcp(1)).is_none(), "a third from one address");
        let _t3 = a.admit(&tcp(2)).expect("another address");
        let _t4 = a.admit(&tcp(3)).expect("the listener's fourth");
        assert!(a.admit(&tcp(4)).is_none(), "the listener is full");
        drop(t1);
        assert!(
            a.admit(&tcp(1)).is_some(),
            "a closed connection frees its slot"
        );
        // The Unix socket: other uids fill it; root still gets in, up to
        // the reserve beyond it.
        let users: Vec<Slot> = [1, 1, 2, 2]
            .iter()
            .map(|&u| a.admit(&user(u)).expect("user"))
            .collect();
        assert!(a.admit(&user(3)).is_none());
        let r1 = a.admit(&root).expect("root, listener full");
        let _r2 = a.admit(&root).expect("root's reserve");
        assert!(a.admit(&root).is_none(), "beyond the reserve");
        drop(users);
        drop(r1);
        assert!(a.admit(&user(3)).is_some());
        assert!(a.admit(&root).is_some());
    }

    #[tokio::test]
    async fn stale_sockets_are_replaced_live_ones_and_files_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/d.sock");
        let (live, file) = bind_unix(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666);
        let err = bind_unix(&path).unwrap_err().to_string();
        assert!(err.contains("already listening"), "{err}");
        drop(live);
        // Nobody answers now: the stale file is replaced.
        let (_again, file2) = bind_unix(&path).unwrap();
        // The first owner's removal must not take the new socket away.
        file.remove();
        assert!(path.exists());
        file2.remove();
        assert!(!path.exists());
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"x").unwrap();
        assert!(bind_unix(&plain).is_err());
        assert!(plain.exists());
    }
}
