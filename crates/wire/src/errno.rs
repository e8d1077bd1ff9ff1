//! The errno values TrueNAS puts in `data.error`, and their names.

/// An errno as TrueNAS reports it (Linux numbering plus middleware's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

impl Errno {
    pub const EPERM: Errno = Errno(1);
    pub const ENOENT: Errno = Errno(2);
    pub const EIO: Errno = Errno(5);
    pub const EACCES: Errno = Errno(13);
    pub const EFAULT: Errno = Errno(14);
    pub const EBUSY: Errno = Errno(16);
    pub const EEXIST: Errno = Errno(17);
    pub const EINVAL: Errno = Errno(22);
    pub const ETIMEDOUT: Errno = Errno(110);
    /// middlewared's own: the call needs a logged-in session.
    pub const ENOTAUTHENTICATED: Errno = Errno(207);

    /// The symbolic name (`EINVAL`), as TrueNAS's `get_errname`.
    pub fn name(self) -> &'static str {
        match self.0 {
            1 => "EPERM",
            2 => "ENOENT",
            5 => "EIO",
            13 => "EACCES",
            14 => "EFAULT",
            16 => "EBUSY",
            17 => "EEXIST",
            22 => "EINVAL",
            110 => "ETIMEDOUT",
            207 => "ENOTAUTHENTICATED",
            _ => "EUNKNOWN",
        }
    }

    /// Reads a name back (for clients that only have `errname`).
    pub fn from_name(name: &str) -> Option<Errno> {
        [
            Self::EPERM,
            Self::ENOENT,
            Self::EIO,
            Self::EACCES,
            Self::EFAULT,
            Self::EBUSY,
            Self::EEXIST,
            Self::EINVAL,
            Self::ETIMEDOUT,
            Self::ENOTAUTHENTICATED,
        ]
        .into_iter()
        .find(|e| e.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for e in [
            Errno::EINVAL,
            Errno::EFAULT,
            Errno::EBUSY,
            Errno::EACCES,
            Errno::ENOTAUTHENTICATED,
        ] {
            assert_eq!(Errno::from_name(e.name()), Some(e));
        }
        assert_eq!(Errno::EINVAL.0, 22);
        assert_eq!(Errno::EFAULT.0, 14);
        assert_eq!(Errno(9999).name(), "EUNKNOWN");
    }
}
