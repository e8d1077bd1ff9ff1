//! Change notices: what committed transactions changed, told to whoever
//! listens on the store (the API, which turns them into events).
//!
//! Every engine tells three kinds of writer through the same listeners:
//! - its own transactions: each one collects what it changed in a
//!   [`ChangeSet`] and, once it has committed, hands it to the
//!   [`Notifier`] on the committing thread, before `transact` returns;
//! - other processes on the same state (SQLite: another `tfa`, a backup
//!   restore): `sqlite::watch` hears their commits;
//! - other nodes on a shared database (PostgreSQL): `LISTEN/NOTIFY`.
//!
//! A change is told once: an engine's own notices coming back through its
//! cross-process channel are recognised and dropped there. Notices name
//! what changed (an account's name at most), never a secret or a value.

use std::collections::BTreeSet;
use std::sync::RwLock;

/// What a committed transaction changed, as listeners hear it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Change {
    /// The entry: its settings (`enabled`, window, services, the defaults
    /// for new secrets, the legacy shared-code mode), or root's secret,
    /// which `auth.twofactor.config` shows.
    Entry,
    /// One account's secret (made, replaced, its digits or interval
    /// changed, removed), its recovery codes, or its lock-out cleared.
    User { username: String },
}

impl Change {
    pub(crate) fn user(username: &str) -> Self {
        Self::User {
            username: username.to_owned(),
        }
    }

    /// The change of clearing the failure counters of `owner` (a secret's
    /// owner label, [`crate::user_owner`]'s).
    pub(crate) fn of_owner(owner: &str) -> Option<Self> {
        let (_uid, name) = owner.strip_prefix("user:")?.split_once(':')?;
        Some(Self::user(name))
    }
}

/// Hears the changes of one or more committed transactions (see
/// [`crate::Store::on_change`]). Each change appears once per batch.
pub type ChangeListener = Box<dyn Fn(&[Change]) + Send + Sync>;

/// The changes a transaction has made so far, each once.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ChangeSet(BTreeSet<Change>);

impl ChangeSet {
    pub(crate) fn note(&mut self, change: Change) {
        self.0.insert(change);
    }

    /// Notes a change of `username`'s secret; root's is also the entry's
    /// (`config` shows it, and the caches hold it).
    pub(crate) fn user_changed(&mut self, username: &str) {
        if username == crate::users::ROOT {
            self.note(Change::Entry);
        }
        self.note(Change::user(username));
    }

    /// Whether the entry changed.
    pub(crate) fn has_entry(&self) -> bool {
        self.0.contains(&Change::Entry)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Change> {
        self.0.iter()
    }

    pub(crate) fn into_vec(self) -> Vec<Change> {
        self.0.into_iter().collect()
    }
}

/// The listeners of one store.
#[derive(Default)]
pub(crate) struct Notifier {
    listeners: RwLock<Vec<ChangeListener>>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("listeners", &self.listeners().len())
            .finish()
    }
}

impl Notifier {
    fn listeners(&self) -> std::sync::RwLockReadGuard<'_, Vec<ChangeListener>> {
        self.listeners
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn add(&self, listener: ChangeListener) {
        self.listeners
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(listener);
    }

    /// Tells every listener `changes` (nothing when empty).
    pub(crate) fn notify(&self, changes: &[Change]) {
        if changes.is_empty() {
            return;
        }
        for l in self.listeners().iter() {
            l(changes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn a_set_holds_each_change_once_and_listeners_hear_batches() {
        let mut set = ChangeSet::default();
        assert!(set.is_empty());
        set.note(Change::User {
            username: "alice".into(),
        });
        set.note(Change::Entry);
        set.note(Change::User {
            username: "alice".into(),
        });
        let batch = set.into_vec();
        assert_eq!(
            batch,
            [
                Change::Entry,
                Change::User {
                    username: "alice".into()
                }
            ]
        );
        let n = Notifier::default();
        let heard = Arc::new(Mutex::new(Vec::new()));
        let sink = heard.clone();
        n.add(Box::new(move |c| {
            sink.lock().expect("lock").push(c.to_vec())
        }));
        n.notify(&[]);
        n.notify(&batch);
        assert_eq!(*heard.lock().expect("lock"), vec![batch]);
    }

    #[test]
    fn owner_labels_name_their_change_and_roots_secret_is_the_entrys() {
        assert_eq!(
            Change::of_owner(&crate::user_owner("root", 0)),
            Some(Change::user("root"))
        );
        assert_eq!(
            Change::of_owner(&crate::user_owner("a:b", 1001)),
            Some(Change::user("a:b"))
        );
        assert_eq!(Change::of_owner("system"), None);
        let mut set = ChangeSet::default();
        set.user_changed("alice");
        assert!(!set.has_entry());
        set.user_changed("root");
        assert!(set.has_entry());
        assert_eq!(
            set.into_vec(),
            [Change::Entry, Change::user("alice"), Change::user("root")]
        );
    }
}
