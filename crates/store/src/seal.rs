//! The key file and the AEAD that seals secrets at rest.
//!
//! A key file holds exactly 32 raw bytes: an XChaCha20-Poly1305 key. A sealed
//! blob is `nonce (24 bytes) || ciphertext || tag (16 bytes)`; the nonce is
//! random for every seal, which XChaCha's 192-bit nonce makes safe. The
//! associated data binds what a blob is for (purpose and owner), so a blob
//! moved to another row or purpose no longer opens.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{Key, KeyInit, Tag, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::{OsRandom, Randomness, Result, StoreError};

/// Key length in bytes (256 bits).
const KEY_LEN: usize = 32;
/// XChaCha20 nonce length in bytes.
const NONCE_LEN: usize = 24;
/// Poly1305 tag length in bytes.
const TAG_LEN: usize = 16;
/// Mode of the key file and of its temporary file.
const KEY_FILE_MODE: u32 = 0o600;

/// A 256-bit sealing key loaded from (or freshly written to) a file.
///
/// The key lives only inside the cipher, which wipes it on drop; `Debug`
/// shows the path, never the key.
pub struct KeyFile {
    path: PathBuf,
    cipher: XChaCha20Poly1305,
    /// Where sealing nonces come from.
    random: Arc<dyn Randomness>,
    /// HMAC-SHA-256 key for recovery-code hashes, derived from the key
    /// (HMAC of a fixed label under it), so the database alone cannot test
    /// a guess; wiped on drop.
    mac_key: Zeroizing<[u8; KEY_LEN]>,
}

/// Label of the derived recovery-code MAC key.
const MAC_KEY_LABEL: &[u8] = b"twofactor/v1/recovery-code-mac";

fn derive_mac_key(key: &[u8]) -> Zeroizing<[u8; KEY_LEN]> {
    use hmac::Mac;
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(key)
        .expect("HMAC takes a key of any length");
    mac.update(MAC_KEY_LABEL);
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    out.copy_from_slice(&mac.finalize().into_bytes());
    out
}

impl fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFile")
            .field("path", &self.path)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl KeyFile {
    /// Size of a sealed blob's overhead: nonce plus tag.
    pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;

    /// Reads an existing key file. A missing file is [`StoreError::Io`] with
    /// [`io::ErrorKind::NotFound`]. It is opened without following a
    /// symbolic link and must be a regular file owned by us with no group
    /// or other permissions ([`StoreError::Unsafe`] otherwise, changing
    /// nothing); anything but exactly 32 bytes is [`StoreError::BadKeyFile`].
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_with(path, Arc::new(OsRandom))
    }

    /// [`KeyFile::load`], sealing with nonces from `random`.
    pub fn load_with(path: &Path, random: Arc<dyn Randomness>) -> Result<Self> {
        use std::os::unix::fs::MetadataExt;
        let shown = path.display().to_string();
        let io_err = |source| StoreError::Io {
            path: shown.clone(),
            source,
        };
        let refuse = |reason: String| StoreError::Unsafe {
            path: shown.clone(),
            reason,
        };
        // Named first, so a symbolic link or a FIFO is refused by what it is
        // (and a FIFO is never opened).
        let meta = fs::symlink_metadata(path).map_err(io_err)?;
        if !meta.file_type().is_file() {
            return Err(refuse(format!(
                "the key file must be a regular file, this is {}",
                crate::sqlite::file_kind(meta.file_type())
            )));
        }
        // O_NOFOLLOW closes the race with a swap to a link in between;
        // O_NONBLOCK keeps a swapped-in FIFO from blocking the open.
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(
                nix::fcntl::OFlag::O_NOFOLLOW.bits() | nix::fcntl::OFlag::O_NONBLOCK.bits(),
            )
            .open(path)
            .map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        if !meta.file_type().is_file() {
            return Err(refuse(format!(
                "the key file must be a regular file, this is {}",
                crate::sqlite::file_kind(meta.file_type())
            )));
        }
        let euid = crate::sqlite::euid();
        if meta.uid() != euid {
            return Err(refuse(format!(
                "the key file is owned by uid {}, not by this user (uid {euid})",
                meta.uid()
            )));
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(refuse(format!(
                "the key file has mode {mode:04o}, readable or writable by group or others; \
                 it must be 0600 (chmod 600 it, and consider the key disclosed)"
            )));
        }
        // Read one byte more than a key so an overlong file is noticed
        // without reading all of it.
        let mut bytes = Zeroizing::new(Vec::with_capacity(KEY_LEN + 1));
        file.take(KEY_LEN as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err)?;
        if bytes.len() != KEY_LEN {
            return Err(StoreError::BadKeyFile {
                path: shown,
                reason: "a key file holds exactly 32 bytes",
            });
        }
        Ok(Self {
            path: path.to_owned(),
            cipher: XChaCha20Poly1305::new(Key::from_slice(&bytes)),
            random,
            mac_key: derive_mac_key(&bytes),
        })
    }

    /// Makes a new random key and writes it to `path` atomically: a
    /// temporary file (mode 0600) in the same directory is written and
    /// synced, renamed into place, and the directory is synced. Refuses
    /// ([`io::ErrorKind::AlreadyExists`]) when `path` already exists, so an
    /// existing key is never replaced by accident; callers that can race
    /// other processes must serialise (the SQLite store holds its write lock).
    pub fn create(path: &Path) -> Result<Self> {
        Self::create_with(path, Arc::new(OsRandom))
    }

    /// [`KeyFile::create`] with the key (and later nonces) from `random`.
    pub fn create_with(path: &Path, random: Arc<dyn Randomness>) -> Result<Self> {
        let shown = path.display().to_string();
        let io_err = |source| StoreError::Io {
            path: shown.clone(),
            source,
        };
        match fs::symlink_metadata(path) {
            Ok(_) => return Err(io_err(io::Error::from(io::ErrorKind::AlreadyExists))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(e)),
        }
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        random.fill(&mut key[..])?;

        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let file_name = path.file_name().ok_or_else(|| {
            io_err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "key file path has no file name",
            ))
        })?;
        let mut tag = [0u8; 8];
        random.fill(&mut tag)?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(file_name);
        tmp_name.push(format!(".tmp-{}-{}", std::process::id(), hex(&tag)));
        let tmp = dir.join(tmp_name);

        let written = write_synced(&tmp, &key[..]).and_then(|()| {
            // Umask cannot widen the mode, but a pre-set default ACL or an
            // odd umask could narrow it oddly; make it exactly 0600.
            fs::set_permissions(&tmp, fs::Permissions::from_mode(KEY_FILE_MODE))?;
            fs::rename(&tmp, path)
        });
        if let Err(e) = written {
            // Best effort: the temporary file holds the key.
            let _ = fs::remove_file(&tmp);
            return Err(io_err(e));
        }
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| StoreError::Io {
                path: dir.display().to_string(),
                source,
            })?;
        Ok(Self {
            path: path.to_owned(),
            cipher: XChaCha20Poly1305::new(Key::from_slice(&key[..])),
            random,
            mac_key: derive_mac_key(&key[..]),
        })
    }

    /// Where the key lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// HMAC-SHA-256 of `parts` (each length-prefixed, so no two lists
    /// collide) under the derived MAC key: the keyed hash recovery codes
    /// are stored as.
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        use hmac::Mac;
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&self.mac_key[..])
            .expect("HMAC takes a key of any length");
        for p in parts {
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }

    /// Encrypts `plaintext` bound to `aad`: `nonce || ciphertext || tag`.
    /// Fails only when the operating system's random source does.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random.fill(&mut nonce)?;
        // Sized up front so no reallocation leaves a plaintext copy behind.
        let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let tag = self
            .cipher
            .encrypt_in_place_detached(XNonce::from_slice(&nonce), aad, &mut out[NONCE_LEN..])
            .map_err(|_| {
                // Unreachable for sane sizes (the limit is 256 GiB); do not
                // leave plaintext in the buffer either way.
                zeroize::Zeroize::zeroize(&mut out);
                StoreError::Corrupt("plaintext too long to seal".into())
            })?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Decrypts a blob made by [`KeyFile::seal`] with the same `aad`. A blob
    /// that does not authenticate (other key, other aad, altered bytes) or is
    /// too short is [`StoreError::WrongKey`]; callers that already know the
    /// key is right report it as corruption.
    pub fn open(&self, blob: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let wrong = || StoreError::WrongKey {
            path: self.path.display().to_string(),
        };
        if blob.len() < Self::OVERHEAD {
            return Err(wrong());
        }
        let (nonce, rest) = blob.split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        let mut plain = Zeroizing::new(ciphertext.to_vec());
        self.cipher
            .decrypt_in_place_detached(
                XNonce::from_slice(nonce),
                aad,
                &mut plain,
                Tag::from_slice(tag),
            )
            .map_err(|_| wrong())?;
        Ok(plain)
    }
}

/// Creates `path` (which must not exist) with mode 0600, writes `bytes` and
/// syncs it.
fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(KEY_FILE_MODE)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> (tempfile::TempDir, KeyFile) {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyFile::create(&dir.path().join("secret.key")).unwrap();
        (dir, key)
    }

    #[test]
    fn seal_then_open_round_trips() {
        let (_dir, key) = fresh();
        let blob = key.seal(b"twenty bytes of key!", b"aad").unwrap();
        assert_eq!(blob.len(), 20 + KeyFile::OVERHEAD);
        assert_eq!(
            &key.open(&blob, b"aad").unwrap()[..],
            b"twenty bytes of key!"
        );
        assert_eq!(
            &key.open(&key.seal(b"", b"").unwrap(), b"").unwrap()[..],
            b""
        );
    }

    #[test]
    fn every_seal_uses_a_new_nonce() {
        let (_dir, key) = fresh();
        let a = key.seal(b"same", b"aad").unwrap();
        let b = key.seal(b"same", b"aad").unwrap();
        assert_ne!(a, b);
        assert_ne!(a[..NONCE_LEN], b[..NONCE_LEN]);
    }

    #[test]
    fn other_aad_altered_bytes_or_short_blobs_do_not_open() {
        let (_dir, key) = fresh();
        let blob = key
            .seal(b"payload", b"twofactor/v1/otp_secret/system")
            .unwrap();
        assert!(matches!(
            key.open(&blob, b"twofactor/v1/otp_secret/user:1000"),
            Err(StoreError::WrongKey { .. })
        ));
        for i in 0..blob.len() {
            let mut bad = blob.clone();
            bad[i] ^= 1;
            assert!(
                key.open(&bad, b"twofactor/v1/otp_secret/system").is_err(),
                "byte {i}"
            );
        }
        assert!(key.open(&blob[..KeyFile::OVERHEAD - 1], b"").is_err());
        assert!(key.open(&[], b"").is_err());
    }

    #[test]
    fn another_key_does_not_open() {
        let (_d1, k1) = fresh();
        let (_d2, k2) = fresh();
        let blob = k1.seal(b"payload", b"x").unwrap();
        assert!(matches!(
            k2.open(&blob, b"x"),
            Err(StoreError::WrongKey { .. })
        ));
    }

    #[test]
    fn created_file_is_32_bytes_mode_0600_and_loads_to_the_same_key() {
        let (dir, key) = fresh();
        let path = dir.path().join("secret.key");
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), 32);
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let again = KeyFile::load(&path).unwrap();
        let blob = key.seal(b"payload", b"x").unwrap();
        assert_eq!(&again.open(&blob, b"x").unwrap()[..], b"payload");
        // Only the key file: the temporary file was renamed away.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("secret.key")]);
    }

    #[test]
    fn create_refuses_to_replace_a_key() {
        let (dir, _key) = fresh();
        let path = dir.path().join("secret.key");
        let before = fs::read(&path).unwrap();
        match KeyFile::create(&path) {
            Err(StoreError::Io { source, .. }) => {
                assert_eq!(source.kind(), io::ErrorKind::AlreadyExists);
            }
            other => panic!("expected AlreadyExists, got {other:?}"),
        }
        assert_eq!(fs::read(&path).unwrap(), before);
    }

    #[test]
    fn wrong_length_is_bad_key_file() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0usize, 16, 31, 33, 64] {
            let path = dir.path().join(format!("k{len}"));
            fs::write(&path, vec![7u8; len]).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
            assert!(
                matches!(KeyFile::load(&path), Err(StoreError::BadKeyFile { .. })),
                "length {len}"
            );
        }
        assert!(matches!(
            KeyFile::load(dir.path()),
            Err(StoreError::Unsafe { .. })
        ));
    }

    #[test]
    fn missing_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        match KeyFile::load(&dir.path().join("nope")) {
            Err(StoreError::Io { source, .. }) => {
                assert_eq!(source.kind(), io::ErrorKind::NotFound)
            }
            other => panic!("expected NotFound, got {other:?}"),
        }
    }

    #[test]
    fn loose_mode_is_refused_and_left_unchanged() {
        let (dir, _key) = fresh();
        let path = dir.path().join("secret.key");
        for mode in [0o644, 0o640, 0o604, 0o660] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let err = KeyFile::load(&path).unwrap_err();
            assert!(matches!(err, StoreError::Unsafe { .. }), "{err:?}");
            let text = err.to_string();
            assert!(
                text.contains("secret.key") && text.contains(&format!("{mode:04o}")),
                "{text}"
            );
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                mode,
                "left unchanged"
            );
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
        KeyFile::load(&path).unwrap();
    }

    #[test]
    fn a_key_of_another_owner_is_refused() {
        use std::os::unix::fs::MetadataExt;
        let (dir, _key) = fresh();
        let path = dir.path().join("secret.key");
        if crate::sqlite::euid() != 0 {
            // Only root can give a file away; as anyone else the check is
            // exercised the other way round: root's files are not ours.
            let err = KeyFile::load(Path::new("/etc/passwd")).unwrap_err();
            assert!(err.to_string().contains("owned by uid 0"), "{err}");
            return;
        }
        std::os::unix::fs::chown(&path, Some(4242), None).unwrap();
        let err = KeyFile::load(&path).unwrap_err();
        assert!(err.to_string().contains("owned by uid 4242"), "{err}");
        assert_eq!(fs::metadata(&path).unwrap().uid(), 4242, "left unchanged");
    }

    #[test]
    fn a_symlinked_key_or_a_fifo_is_refused_by_name() {
        let (dir, _key) = fresh();
        let real = dir.path().join("secret.key");
        let link = dir.path().join("link.key");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = KeyFile::load(&link).unwrap_err();
        assert!(err.to_string().contains("a symbolic link"), "{err}");
        assert!(err.to_string().contains("link.key"), "{err}");
        let fifo = dir.path().join("fifo.key");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let err = KeyFile::load(&fifo).unwrap_err();
        assert!(err.to_string().contains("a FIFO"), "{err}");
        let err = KeyFile::load(Path::new("/dev/null")).unwrap_err();
        assert!(err.to_string().contains("a device"), "{err}");
    }

    #[test]
    fn debug_shows_no_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        fs::write(&path, [0xABu8; 32]).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let key = KeyFile::load(&path).unwrap();
        let shown = format!("{key:?}");
        assert!(shown.contains("redacted"), "{shown}");
        assert!(
            !shown.to_lowercase().contains("ab, ab") && !shown.contains("171"),
            "{shown}"
        );
    }
}
