//! The two listeners and who is on the other end: the Unix socket (peer
//! credentials from SO_PEERCRED) and TCP (the remote address).

use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

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

impl Connected<IncomingStream<'_, UnixPeers>> for Peer {
    fn connect_info(stream: IncomingStream<'_, UnixPeers>) -> Self {
        *stream.remote_addr()
    }
}

impl Connected<IncomingStream<'_, TcpPeers>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TcpPeers>) -> Self {
        *stream.remote_addr()
    }
}

/// The Unix socket, answering each connection with its peer's credentials.
#[derive(Debug)]
pub struct UnixPeers {
    listener: UnixListener,
}

/// TCP, with Nagle off (calls are small request/answer pairs).
#[derive(Debug)]
pub struct TcpPeers {
    listener: TcpListener,
}

impl TcpPeers {
    pub async fn bind(addr: &str) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on TCP address {addr}"))?;
        Ok(Self { listener })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

impl Listener for UnixPeers {
    type Io = UnixStream;
    type Addr = Peer;

    async fn accept(&mut self) -> (UnixStream, Peer) {
        loop {
            match self.listener.accept().await {
                Ok((stream, _)) => match stream.peer_cred() {
                    Ok(cred) => {
                        return (
                            stream,
                            Peer::Unix {
                                uid: cred.uid(),
                                pid: cred.pid(),
                            },
                        );
                    }
                    // Without credentials the peer cannot be placed: refuse it.
                    Err(e) => tracing::warn!(error = %e, "no peer credentials; connection dropped"),
                },
                Err(e) => accept_failed(e).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Peer> {
        Err(io::Error::other(
            "a Unix socket has no peer address of its own",
        ))
    }
}

impl Listener for TcpPeers {
    type Io = TcpStream;
    type Addr = Peer;

    async fn accept(&mut self) -> (TcpStream, Peer) {
        loop {
            match self.listener.accept().await {
                Ok((stream, addr)) => {
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                    }
                    return (stream, Peer::Tcp(addr));
                }
                Err(e) => accept_failed(e).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Peer> {
        self.listener.local_addr().map(Peer::Tcp)
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
    tracing::error!(error = %e, "accept failed");
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
        UnixPeers { listener },
        SocketFile {
            path: path.to_owned(),
            identity: identity(&meta),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

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
