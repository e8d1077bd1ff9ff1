//! The errno values TrueNAS puts in `data.error`, and their names.

use serde::{Deserialize, Serialize};

/// An errno as TrueNAS reports it (Linux numbering plus middleware's own).
/// On the wire it is the bare number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Errno(pub i32);

/// The one table of errnos: each is a constant of [`Errno`] and a row of
/// [`Errno::TABLE`], from which both [`Errno::name`] and
/// [`Errno::from_name`] read. Adding an errno is one line here.
macro_rules! errnos {
    ($($(#[$doc:meta])* $name:ident = $n:literal,)*) => {
        impl Errno {
            $($(#[$doc])* pub const $name: Errno = Errno($n);)*

            /// Every errno the API sends, with its symbolic name.
            pub const TABLE: &'static [(Errno, &'static str)] =
                &[$((Errno($n), stringify!($name)),)*];
        }
    };
}

errnos! {
    EPERM = 1,
    ENOENT = 2,
    /// A shared database out of reach: the call failed and may be tried
    /// again.
    EIO = 5,
    EACCES = 13,
    EFAULT = 14,
    EBUSY = 16,
    EEXIST = 17,
    EINVAL = 22,
    ETIMEDOUT = 110,
    /// A handle to something that no longer exists: an enrolment whose
    /// pending secret expired before it was confirmed. Distinct from
    /// EINVAL (a wrong code, worth asking again) so that a client stops
    /// asking for codes at once.
    ESTALE = 116,
    /// middlewared's own: the call needs a logged-in session.
    ENOTAUTHENTICATED = 207,
}

impl Errno {
    /// The symbolic name (`EINVAL`), as TrueNAS's `get_errname`.
    pub fn name(self) -> &'static str {
        Self::TABLE
            .iter()
            .find(|(e, _)| *e == self)
            .map_or("EUNKNOWN", |(_, name)| name)
    }

    /// Reads a name back (for clients that only have `errname`).
    pub fn from_name(name: &str) -> Option<Errno> {
        Self::TABLE
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(e, _)| *e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for (e, name) in Errno::TABLE {
            assert_eq!(Errno::from_name(name), Some(*e));
            assert_eq!(e.name(), *name);
        }
        assert_eq!(Errno::EINVAL.0, 22);
        assert_eq!(Errno::EFAULT.0, 14);
        assert_eq!(Errno::ESTALE.name(), "ESTALE");
        assert_eq!(Errno::ENOTAUTHENTICATED.name(), "ENOTAUTHENTICATED");
        assert_eq!(Errno(9999).name(), "EUNKNOWN");
        assert_eq!(Errno::from_name("EUNKNOWN"), None);
    }

    #[test]
    fn the_table_has_no_duplicates() {
        for (i, (e, name)) in Errno::TABLE.iter().enumerate() {
            for (f, other) in &Errno::TABLE[i + 1..] {
                assert!(e != f && name != other, "{name} twice");
            }
        }
    }

    #[test]
    fn on_the_wire_an_errno_is_its_number() {
        assert_eq!(serde_json::to_string(&Errno::EBUSY).unwrap(), "16");
        assert_eq!(
            serde_json::from_str::<Errno>("207").unwrap(),
            Errno::ENOTAUTHENTICATED
        );
    }
}
