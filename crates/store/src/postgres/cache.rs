//! The node's read cache and the listening connection that keeps it true.
//!
//! The cache holds the entry's rows (settings, and root's secret row still
//! sealed), as SQLite's does. It is used only while the listener is
//! connected and has issued `LISTEN`: every commit that changes the entry
//! sends a notification, and each one drops the cache. When the listening
//! connection is lost the cache is dropped and not refilled until the
//! listener is back, so a node never answers from rows it can no longer be
//! sure of. Notifications carry the writing node's name and what changed
//! (an account's name at most), never a secret.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;

use super::entry::SecretRow;
use crate::changes::Notifier;
use crate::{Change, Settings};

/// The notification channel.
pub(super) const CHANNEL: &str = "twofactor_changes";

/// Longest pause between two reconnection attempts of the listener.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
struct State {
    /// Moves on every invalidation: rows read before it moved are not
    /// stored.
    generation: u64,
    listening: bool,
    rows: Option<(Settings, Option<SecretRow>)>,
}

/// The cache and the listeners of changes (this node's, told at commit,
/// and other nodes', told as heard).
#[derive(Default)]
pub(super) struct Shared {
    state: Mutex<State>,
    /// Told whenever `listening` changes ([`Shared::wait_listening`]).
    listening_changed: std::sync::Condvar,
    pub(super) notifier: Notifier,
    pub(super) stop: AtomicBool,
    /// Whether the database answered the last time we tried.
    pub(super) available: AtomicBool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached rows, when they can be trusted.
    pub(super) fn get(&self) -> Option<(Settings, Option<SecretRow>)> {
        let s = self.state();
        if s.listening { s.rows.clone() } else { None }
    }

    /// The generation to hand back to [`Shared::put`] with rows read now.
    pub(super) fn generation(&self) -> u64 {
        self.state().generation
    }

    /// Stores rows read at `generation`, unless something changed since
    /// or nobody is listening.
    pub(super) fn put(&self, generation: u64, rows: (Settings, Option<SecretRow>)) {
        let mut s = self.state();
        if s.listening && s.generation == generation {
            s.rows = Some(rows);
        }
    }

    pub(super) fn invalidate(&self) {
        let mut s = self.state();
        s.generation = s.generation.wrapping_add(1);
        s.rows = None;
    }

    pub(super) fn set_listening(&self, listening: bool) {
        let mut s = self.state();
        s.listening = listening;
        s.generation = s.generation.wrapping_add(1);
        s.rows = None;
        self.listening_changed.notify_all();
    }

    /// Waits at most `within` for the listener to have issued `LISTEN`;
    /// whether it has.
    pub(super) fn wait_listening(&self, within: Duration) -> bool {
        let s = self.state();
        let (s, _) = self
            .listening_changed
            .wait_timeout_while(s, within, |s| !s.listening)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.listening
    }

    /// Handles one notification's payload (`<node>\n<kind>[\n<name>]`).
    pub(super) fn heard(&self, own_node: &str, payload: &str) {
        let mut parts = payload.splitn(3, '\n');
        let node = parts.next().unwrap_or_default();
        let change = match (parts.next(), parts.next()) {
            (Some("entry"), _) => Change::Entry,
            (Some("user"), Some(name)) => Change::User {
                username: name.to_owned(),
            },
            _ => {
                // Root's replay step moved (`STEP`), or a kind this build
                // does not know: the cached rows may be stale, and nothing
                // is told.
                self.invalidate();
                return;
            }
        };
        if change == Change::Entry {
            // The cache holds the entry with root's secret.
            self.invalidate();
        }
        if node == own_node {
            // This node told its own listeners when it committed.
            return;
        }
        self.notifier.notify(&[change]);
    }
}

/// The payload kind of a change that only moves root's replay step: it
/// drops the other nodes' cached rows (which carry the step) and is told to
/// no listener.
pub(super) const STEP: &str = "step";

/// The payload of a notification about `change` made by `node`.
pub(super) fn payload(node: &str, change: &Change) -> String {
    match change {
        Change::Entry => format!("{node}\nentry"),
        Change::User { username } => format!("{node}\nuser\n{username}"),
    }
}

/// The listening thread: connects, `LISTEN`s, hands every notification to
/// [`Shared::heard`], and on a lost connection drops the cache and
/// reconnects with a growing pause (at most [`MAX_BACKOFF`]). Logs the
/// loss and the return once each.
pub(super) fn spawn_listener(
    shared: Arc<Shared>,
    connect: Arc<dyn Fn() -> Result<postgres::Client, String> + Send + Sync>,
    node: String,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("twofactor-listen".into())
        .spawn(move || {
            let mut pause = Duration::from_millis(50);
            let mut lost_logged = false;
            while !shared.stop.load(Ordering::Relaxed) {
                let mut client = match connect().and_then(|mut c| {
                    c.batch_execute(&format!("LISTEN {CHANNEL}"))
                        .map_err(|e| e.to_string())?;
                    Ok(c)
                }) {
                    Ok(c) => c,
                    Err(why) => {
                        shared.available.store(false, Ordering::Relaxed);
                        if !lost_logged {
                            tracing::warn!(reason = %why, "the database is unavailable; retrying");
                            lost_logged = true;
                        }
                        std::thread::sleep(pause);
                        pause = (pause * 2).min(MAX_BACKOFF);
                        continue;
                    }
                };
                pause = Duration::from_millis(50);
                shared.set_listening(true);
                shared.available.store(true, Ordering::Relaxed);
                if lost_logged {
                    tracing::info!("the database is available again");
                    lost_logged = false;
                }
                loop {
                    if shared.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let mut notes = client.notifications();
                    let mut it = notes.timeout_iter(Duration::from_millis(250));
                    let mut failed = None;
                    loop {
                        match it.next() {
                            Ok(Some(n)) => shared.heard(&node, n.payload()),
                            Err(e) => {
                                failed = Some(e.to_string());
                                break;
                            }
                            Ok(None) => break,
                        }
                    }
                    drop(it);
                    drop(notes);
                    if failed.is_none() && client.is_closed() {
                        failed = Some("connection closed".into());
                    }
                    if let Some(why) = failed {
                        shared.set_listening(false);
                        shared.available.store(false, Ordering::Relaxed);
                        if !lost_logged {
                            tracing::warn!(reason = %why, "lost the database connection; reconnecting");
                            lost_logged = true;
                        }
                        break;
                    }
                }
            }
        })
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_carry_names_only_and_other_nodes_changes_reach_listeners() {
        assert_eq!(payload("nas-a", &Change::Entry), "nas-a\nentry");
        let user = Change::User {
            username: "alice".into(),
        };
        assert_eq!(payload("nas-a", &user), "nas-a\nuser\nalice");
        let shared = Shared::default();
        let heard = Arc::new(Mutex::new(Vec::new()));
        let sink = heard.clone();
        shared.notifier.add(Box::new(move |c| {
            sink.lock().expect("lock").extend_from_slice(c);
        }));
        shared.set_listening(true);
        let g = shared.generation();
        shared.put(g, (Settings::default(), None));
        assert!(shared.get().is_some());
        // Our own change drops the cache but is not told again.
        shared.heard("nas-a", &payload("nas-a", &Change::Entry));
        assert!(shared.get().is_none());
        // Another node's changes are told; a replay step only drops the
        // cache.
        shared.heard("nas-a", &payload("nas-b", &user));
        shared.heard("nas-a", &payload("nas-b", &Change::Entry));
        let g = shared.generation();
        shared.put(g, (Settings::default(), None));
        shared.heard("nas-a", &format!("nas-b\n{STEP}"));
        assert!(shared.get().is_none());
        assert_eq!(*heard.lock().expect("lock"), vec![user, Change::Entry]);
        // Rows read before a change are not kept; nor while not listening.
        let g = shared.generation();
        shared.invalidate();
        shared.put(g, (Settings::default(), None));
        assert!(shared.get().is_none());
        shared.set_listening(false);
        let g = shared.generation();
        shared.put(g, (Settings::default(), None));
        assert!(shared.get().is_none());
    }
}
