//! System accounts through NSS (`getpwnam_r`, `getpwuid_r`,
//! `getgrouplist`, `getgrgid_r`), so every account source the system is
//! configured with works, nss_wrapper's test files included.

use std::ffi::CString;

use api::host::{Account, Accounts, ListedAccount};
use nix::unistd::{Gid, Group, Uid, User, getgrouplist};

/// [`Accounts`] over NSS.
#[derive(Debug, Clone, Copy, Default)]
pub struct NssAccounts;

/// One NSS call at a time. glibc's `_r` functions are thread-safe, but NSS
/// modules need not be: nss_wrapper answers concurrent first look-ups with
/// ENOENT, which would read as "no such account". Look-ups of local files
/// take microseconds, so serialising them costs nothing measurable.
static NSS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn nss_lock() -> std::sync::MutexGuard<'static, ()> {
    NSS.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Accounts for NssAccounts {
    fn by_name(&self, name: &str) -> Option<Account> {
        let _nss = nss_lock();
        match User::from_name(name) {
            Ok(user) => user.map(account_of),
            Err(e) => {
                tracing::warn!(user = name, error = %e, "account look-up failed");
                None
            }
        }
    }

    /// `getpwnam_r` alone: the group look-ups of [`Accounts::by_name`]
    /// read the group database once more per group, which a code check
    /// does not need.
    fn identity(&self, name: &str) -> Option<(String, u32)> {
        let _nss = nss_lock();
        match User::from_name(name) {
            Ok(user) => user.map(|u| (u.name, u.uid.as_raw())),
            Err(e) => {
                tracing::warn!(user = name, error = %e, "account look-up failed");
                None
            }
        }
    }

    fn by_uid(&self, uid: u32) -> Option<Account> {
        let _nss = nss_lock();
        match User::from_uid(Uid::from_raw(uid)) {
            Ok(user) => user.map(account_of),
            Err(e) => {
                tracing::warn!(uid, error = %e, "account look-up failed");
                None
            }
        }
    }

    fn all(&self) -> Vec<Account> {
        all_names()
            .into_iter()
            .filter_map(|name| self.by_name(&name))
            .collect()
    }

    /// Straight from `getpwent`: no look-up per account (with a file
    /// source each would read the file again) and no group look-ups. The
    /// enumeration holds its own lock throughout (its position is
    /// process-wide); NSS itself is taken a batch of entries at a time, so
    /// that a login's look-up waits for one batch, not for the listing.
    #[allow(unsafe_code)]
    fn for_each_listed(&self, each: &mut dyn FnMut(ListedAccount) -> bool) {
        const BATCH: usize = 256;
        let _enumeration = ENUMERATION
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut batch = Vec::with_capacity(BATCH);
        let mut started = false;
        loop {
            let mut done = false;
            {
                let _nss = nss_lock();
                // SAFETY: getpwent's static buffer is read before the next
                // call, with NSS held; the position is ours alone while
                // ENUMERATION is held.
                unsafe {
                    if !started {
                        libc::setpwent();
                        started = true;
                    }
                    while batch.len() < BATCH {
                        let entry = libc::getpwent();
                        if entry.is_null() {
                            done = true;
                            break;
                        }
                        if let Some(listed) = listed_of(&*entry) {
                            batch.push(listed);
                        }
                    }
                    if done {
                        libc::endpwent();
                    }
                }
            }
            for listed in batch.drain(..) {
                if !each(listed) {
                    if !done {
                        let _nss = nss_lock();
                        // SAFETY: ends the enumeration this function began.
                        unsafe { libc::endpwent() };
                    }
                    return;
                }
            }
            if done {
                return;
            }
        }
    }
}

/// Held for a whole enumeration: one at a time per process.
static ENUMERATION: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A passwd entry as a listing shows it; `None` without a name.
#[allow(unsafe_code)]
fn listed_of(entry: &libc::passwd) -> Option<ListedAccount> {
    let text = |p: *const libc::c_char| {
        if p.is_null() {
            None
        } else {
            // SAFETY: a non-null field of a passwd entry is a C string
            // valid until the next NSS call, which cannot come before this
            // copy (the caller holds NSS).
            Some(
                unsafe { std::ffi::CStr::from_ptr(p) }
                    .to_string_lossy()
                    .into_owned(),
            )
        }
    };
    Some(ListedAccount {
        name: text(entry.pw_name)?,
        uid: entry.pw_uid,
        gecos: text(entry.pw_gecos).unwrap_or_default(),
    })
}

/// Every account name NSS enumerates (`setpwent`/`getpwent`/`endpwent`),
/// serialised: the enumeration state is process-wide.
#[allow(unsafe_code)]
fn all_names() -> Vec<String> {
    let _nss = nss_lock();
    let mut names = Vec::new();
    // SAFETY: getpwent's static buffer is only read before the next call,
    // and every NSS call in this process holds NSS.
    unsafe {
        libc::setpwent();
        loop {
            let entry = libc::getpwent();
            if entry.is_null() {
                break;
            }
            let name = (*entry).pw_name;
            if !name.is_null() {
                names.push(
                    std::ffi::CStr::from_ptr(name)
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
        libc::endpwent();
    }
    names
}

fn account_of(user: User) -> Account {
    let mut gids: Vec<Gid> = CString::new(user.name.as_str())
        .ok()
        .and_then(|name| getgrouplist(&name, user.gid).ok())
        .unwrap_or_default();
    if !gids.contains(&user.gid) {
        gids.insert(0, user.gid);
    }
    let mut groups = Vec::with_capacity(gids.len());
    let mut group_names = Vec::with_capacity(gids.len());
    for gid in gids {
        if groups.contains(&gid.as_raw()) {
            continue;
        }
        groups.push(gid.as_raw());
        if let Ok(Some(group)) = Group::from_gid(gid) {
            group_names.push(group.name);
        }
    }
    Account {
        name: user.name,
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        gecos: user.gecos.to_string_lossy().into_owned(),
        home: user.dir.to_string_lossy().into_owned(),
        shell: user.shell.to_string_lossy().into_owned(),
        groups,
        group_names,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_is_the_accounts_name_and_uid() {
        for name in NssAccounts.all().iter().map(|a| a.name.clone()).take(8) {
            let whole = NssAccounts.by_name(&name).map(|a| (a.name, a.uid));
            assert_eq!(NssAccounts.identity(&name), whole, "{name}");
        }
        assert_eq!(NssAccounts.identity("root"), Some(("root".into(), 0)));
        assert_eq!(NssAccounts.identity("no-such-account-here"), None);
    }

    #[test]
    fn enumeration_lists_root() {
        let all = NssAccounts.all();
        assert!(
            all.iter().any(|a| a.uid == 0 && a.name == "root"),
            "{all:?}"
        );
    }

    #[test]
    fn the_listing_matches_the_accounts() {
        let mut listed = Vec::new();
        NssAccounts.for_each_listed(&mut |a| {
            listed.push(a);
            true
        });
        let all: Vec<ListedAccount> = NssAccounts.all().iter().map(ListedAccount::from).collect();
        assert_eq!(listed, all);
        // Stopping early ends the enumeration; the next one starts over.
        let mut first = None;
        NssAccounts.for_each_listed(&mut |a| {
            first = Some(a);
            false
        });
        assert_eq!(first.as_ref(), listed.first());
    }

    #[test]
    fn root_is_found_by_name_and_uid() {
        let by_uid = NssAccounts.by_uid(0).expect("uid 0 has a passwd entry");
        assert_eq!(by_uid.name, "root");
        assert!(by_uid.groups.contains(&0));
        assert_eq!(NssAccounts.by_name("root"), Some(by_uid));
        assert_eq!(NssAccounts.by_name("no-such-user-tfa"), None);
    }
}
