//! HTTPS on the TCP listener (`tls_cert` and `tls_key` in the
//! configuration file): rustls with the ring provider, no OpenSSL.
//!
//! Handshakes run in tasks of their own, so a slow or silent client never
//! holds up the others; each connection is admitted (the connection caps)
//! before its handshake and keeps the handshake time-out of every
//! connection, which bounds the TLS handshake as well.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;

use crate::listen::{Conn, Guarded, TcpPeers};

/// Handshaken connections waiting for the server to take them.
const QUEUE: usize = 64;

/// The server configuration from PEM files: the certificate chain (leaf
/// first) and its private key (PKCS#8, PKCS#1 or SEC1).
pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Arc<ServerConfig>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read the TLS certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("cannot parse the TLS certificate {}", cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{}: no certificate in the file", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("cannot read a private key from {}", key.display()))?;
    // ring builds with the C compiler alone (aws-lc-rs needs more of a
    // toolchain); it has no post-quantum key exchange, hence the notice.
    #[expect(
        deprecated,
        reason = "ring has no post-quantum key exchange; it is the provider chosen"
    )]
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS certificate and key do not go together")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The TCP listener speaking TLS.
#[derive(Debug)]
pub struct TlsPeers {
    ready: mpsc::Receiver<(TlsStream<Guarded<TcpStream>>, Conn)>,
    local: SocketAddr,
}

impl TlsPeers {
    /// Accepts on `tcp` in a task of its own, each handshake in its own
    /// task; stops accepting when this listener is dropped.
    pub fn new(mut tcp: TcpPeers, config: Arc<ServerConfig>) -> io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(QUEUE);
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let (io, conn) = tokio::select! {
                    () = tx.closed() => break,
                    accepted = tcp.accept() => accepted,
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match acceptor.accept(io).await {
                        Ok(tls) => {
                            let _ = tx.send((tls, conn)).await;
                        }
                        Err(e) => tracing::debug!(error = %e, "TLS handshake failed"),
                    }
                });
            }
        });
        Ok(Self { ready, local })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

impl Listener for TlsPeers {
    type Io = TlsStream<Guarded<TcpStream>>;
    type Addr = Conn;

    async fn accept(&mut self) -> (Self::Io, Conn) {
        match self.ready.recv().await {
            Some(next) => next,
            // The accepting task is gone: nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Conn> {
        Ok(Conn::local(self.local))
    }
}

impl Connected<IncomingStream<'_, TlsPeers>> for Conn {
    fn connect_info(stream: IncomingStream<'_, TlsPeers>) -> Self {
        stream.remote_addr().clone()
    }
}
