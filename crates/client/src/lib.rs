//! A blocking JSON-RPC 2.0 client over WebSocket, for `ws+unix:///path`
//! (the daemon's Unix socket) and `ws://host:port/api/current`. No async
//! runtime: the PAM module links it into sshd.
//!
//! CONTRACT (implemented by the daemon work; the CLI codes against it):
//!
//! ```ignore
//! let mut c = client::Client::connect("ws+unix:///run/twofactor/twofactord.sock", Duration::from_secs(5))?;
//! let v: serde_json::Value = c.call("auth.twofactor.config", vec![])?;
//! // errors: ClientError::Rpc(wire::RpcError) carries the server's error object.
//! let host: Option<&str> = c.server_hostname(); // not part of the protocol; None
//! ```

use std::time::Duration;

use serde_json::Value;

/// Why a call did not return a result.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a JSON-RPC error.
    #[error("{}", .0.data.as_ref().map_or(.0.message.as_str(), |d| d.message()))]
    Rpc(wire::RpcError),
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
}

/// A connection to the daemon.
#[derive(Debug)]
pub struct Client {
    _private: (),
}

impl Client {
    /// Connects and upgrades `GET /api/current`; `timeout` bounds connect,
    /// each send and each wait for an answer.
    pub fn connect(url: &str, timeout: Duration) -> Result<Self, ClientError> {
        Err(ClientError::Connect { url: url.to_owned(), reason: format!("not implemented yet ({timeout:?})") })
    }

    /// Calls `method` and waits for its answer (notifications that arrive
    /// meanwhile are queued for [`Client::next_notification`]).
    pub fn call(&mut self, method: &str, params: Vec<Value>) -> Result<Value, ClientError> {
        let _ = (method, params);
        Err(ClientError::Closed("not implemented yet".into()))
    }
}
