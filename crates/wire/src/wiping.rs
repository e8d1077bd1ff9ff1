//! Text that carries a secret, written so that no copy is left behind in
//! freed memory: a byte buffer that wipes every allocation it lets go of
//! (when it grows, and when it is dropped), and a walk that wipes the
//! strings of a JSON value before the value is dropped.
//!
//! Both ends use it: the client for a request that carries a password or a
//! code, the daemon for every answer (answers carry provisioning URIs,
//! renewed secrets, recovery codes and session tokens). What a WebSocket
//! library copies into its own output buffer, TLS records and the kernel's
//! socket buffers are out of its reach.

use std::fmt;
use std::io::{self, Write};

use serde::Serialize;
use serde_json::Value;
use zeroize::{Zeroize, Zeroizing};

/// A byte buffer that never leaves a copy behind: when it grows, the old
/// allocation is wiped before it is freed, and the last one is wiped when
/// the buffer (or what [`WipingBuffer::into_inner`] gave) is dropped.
/// `Debug` shows only the length.
#[derive(Default)]
pub struct WipingBuffer(Zeroizing<Vec<u8>>);

impl WipingBuffer {
    /// An empty buffer with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Self(Zeroizing::new(Vec::with_capacity(capacity)))
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes, still wiped when dropped (for a transport that takes
    /// ownership of what it sends, such as `Bytes::from_owner`).
    pub fn into_inner(self) -> Zeroizing<Vec<u8>> {
        self.0
    }
}

impl fmt::Debug for WipingBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WipingBuffer({} bytes)", self.0.len())
    }
}

impl Write for WipingBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let needed = self.0.len() + buf.len();
        if needed > self.0.capacity() {
            let mut grown = Zeroizing::new(Vec::with_capacity(needed.max(2 * self.0.capacity())));
            grown.extend_from_slice(&self.0);
            // The old allocation is wiped as it drops here.
            self.0 = grown;
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `value` as JSON text in a [`WipingBuffer`].
pub fn to_wiping(value: &impl Serialize) -> serde_json::Result<WipingBuffer> {
    let mut out = WipingBuffer::with_capacity(256);
    serde_json::to_writer(&mut out, value)?;
    Ok(out)
}

/// Wipes every string in `value` in place (object keys are names, not
/// secrets, and stay).
pub fn wipe_strings(value: &mut Value) {
    match value {
        Value::String(s) => s.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(wipe_strings),
        Value::Object(map) => map.values_mut().for_each(wipe_strings),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn debug_shows_the_length_only() {
        let mut b = WipingBuffer::default();
        b.write_all(b"JBSWY3DPEHPK3PXP").expect("write");
        assert_eq!(format!("{b:?}"), "WipingBuffer(16 bytes)");
    }

    #[test]
    fn growing_keeps_every_byte_in_order() {
        let mut b = WipingBuffer::with_capacity(1);
        for chunk in [&b"otpauth://"[..], b"totp/", b"x", &[b'y'; 300]] {
            b.write_all(chunk).expect("write");
        }
        let mut want = b"otpauth://totp/x".to_vec();
        want.extend([b'y'; 300]);
        assert_eq!(b.as_bytes(), want);
    }

    #[test]
    fn strings_are_wiped_at_any_depth_and_keys_stay() {
        let mut v =
            json!({"secret": "JBSWY3DP", "codes": ["AB12", {"uri": "otpauth://x"}], "n": 6});
        wipe_strings(&mut v);
        assert_eq!(v, json!({"secret": "", "codes": ["", {"uri": ""}], "n": 6}));
    }

    #[test]
    fn to_wiping_writes_the_json_text() {
        let v = json!({"a": ["b", 1]});
        assert_eq!(
            to_wiping(&v).expect("serialises").as_bytes(),
            serde_json::to_string(&v).expect("serialises").as_bytes()
        );
    }
}
