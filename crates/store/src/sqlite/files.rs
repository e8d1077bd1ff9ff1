//! The state directory and its files: ownership and mode checks, the
//! lost-state rule, and leftovers of an interrupted key creation.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::io_error;
use crate::{Result, StoreError};

/// Mode of the state directory.
pub(super) const DIR_MODE: u32 = 0o700;
/// Mode of the database and its companions.
pub(super) const FILE_MODE: u32 = 0o600;

/// The effective user id of this process.
pub(crate) fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

pub(super) fn unsafe_path(path: &Path, reason: impl Into<String>) -> StoreError {
    StoreError::Unsafe {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// What a non-regular file is, for messages.
pub(crate) fn file_kind(ft: fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_symlink() {
        "a symbolic link"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_block_device() || ft.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

/// Creates the state directory 0700 when missing. An existing one must be a
/// directory owned by us with no group or other permissions (as sshd's
/// StrictModes); anything else is refused by name and left as it is — the
/// directory may be `/tmp`.
pub(crate) fn prepare_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let err = io_error(dir);
    match fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => Err(err(io::Error::new(
            io::ErrorKind::NotADirectory,
            "not a directory",
        ))),
        Ok(meta) => {
            let mode = meta.mode() & 0o7777;
            if meta.uid() != euid() {
                return Err(unsafe_path(
                    dir,
                    format!(
                        "the state directory is owned by uid {}, not by this user (uid {}); \
                         use a directory of your own",
                        meta.uid(),
                        euid()
                    ),
                ));
            }
            if mode & 0o077 != 0 {
                return Err(unsafe_path(
                    dir,
                    format!(
                        "the state directory has mode {mode:04o}, open to group or others; \
                         it must be 0700 (chmod 700 it, or use a directory of its own)"
                    ),
                ));
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(dir)
                .map_err(&err)?;
            // The umask may have narrowed the mode; make it exactly 0700.
            fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE)).map_err(err)
        }
        Err(e) => Err(err(e)),
    }
}

/// A key file whose database is missing or empty is a lost state, not a
/// first start: refused unless `init`. The key is looked at
/// first: it is only ever created after the database was initialised, so a
/// process starting next to one that is creating the state cannot see a
/// key with a database that is still empty.
pub(super) fn check_not_lost(key_path: &Path, db_path: &Path, init: bool) -> Result<()> {
    if init {
        return Ok(());
    }
    match fs::symlink_metadata(key_path) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(key_path)(e)),
    }
    let lost = match fs::symlink_metadata(db_path) {
        Ok(meta) => meta.file_type().is_file() && meta.len() == 0,
        Err(e) if e.kind() == io::ErrorKind::NotFound => true,
        Err(e) => return Err(io_error(db_path)(e)),
    };
    if lost {
        return Err(StoreError::StateLost {
            key: key_path.display().to_string(),
            db: db_path.display().to_string(),
        });
    }
    Ok(())
}

/// Creates the database file 0600 before SQLite does (SQLite gives the
/// `-wal` and `-shm` files the database's mode), and tightens existing files.
/// Anything but a regular file (a symbolic link, a FIFO, a device) in place
/// of the database or its companions is refused by name.
pub(super) fn prepare_db_files(db_path: &Path) -> Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = db_path.as_os_str().to_owned();
        name.push(suffix);
        let path = PathBuf::from(name);
        match fs::symlink_metadata(&path) {
            Ok(meta) if !meta.file_type().is_file() => {
                return Err(unsafe_path(
                    &path,
                    format!(
                        "the database must be a regular file, this is {}",
                        file_kind(meta.file_type())
                    ),
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&path)(e)),
        }
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(FILE_MODE)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits() | nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(db_path)
        .map_err(io_error(db_path))?;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = db_path.as_os_str().to_owned();
        name.push(suffix);
        let path = PathBuf::from(name);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.permissions().mode() & 0o777 != FILE_MODE => {
                fs::set_permissions(&path, fs::Permissions::from_mode(FILE_MODE))
                    .map_err(io_error(&path))?;
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&path)(e)),
        }
    }
    Ok(())
}

/// Removes what a crash during [`KeyFile::create`] left behind:
/// `.secret.key.tmp-<pid>-<hex>` files, only regular files owned by us.
/// Run under the database's write lock, so no live creator is racing.
pub(crate) fn remove_key_leftovers(dir: &Path, key_name: &std::ffi::OsStr) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(key_name);
    prefix.push(".tmp-");
    let Some(prefix) = prefix.to_str().map(str::to_owned) else {
        return Ok(());
    };
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        let Some((pid, tag)) = rest.split_once('-') else {
            continue;
        };
        let ours = !pid.is_empty()
            && pid.bytes().all(|b| b.is_ascii_digit())
            && tag.len() == 16
            && tag.bytes().all(|b| b.is_ascii_hexdigit());
        if !ours {
            continue;
        }
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).map_err(io_error(&path))?;
        if meta.file_type().is_file() && meta.uid() == euid() {
            fs::remove_file(&path).map_err(io_error(&path))?;
        }
    }
    Ok(())
}
