//! No freed allocation still holds a secret once an answer carrying it
//! has been written and dropped. A counting allocator looks through every
//! block freed while the check runs for the secret's bytes. This file holds
//! one test, so nothing else runs in the process meanwhile.

#![allow(
    unsafe_code,
    reason = "a global allocator that inspects the blocks it frees; test only"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde_json::{Value, json};

/// What the allocator looks for; never a literal on the heap by itself.
const MARKER: &[u8] = b"S3CR3T-W1PE-ME-7Q";

static SCAN: AtomicBool = AtomicBool::new(false);
static FOUND: AtomicUsize = AtomicUsize::new(0);

struct Inspecting;

// SAFETY: every call is forwarded to the system allocator unchanged; the
// freed block is only read (within its layout) before it is handed back.
unsafe impl GlobalAlloc for Inspecting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if SCAN.load(Ordering::Relaxed) && layout.size() >= MARKER.len() {
            // SAFETY: `ptr` is a live block of `layout.size()` bytes until
            // it is freed below.
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            if block.windows(MARKER.len()).any(|w| w == MARKER) {
                FOUND.fetch_add(1, Ordering::Relaxed);
            }
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Inspecting = Inspecting;

/// A secret on the heap, built without growing (no partial copy freed).
fn secret(prefix: &str) -> String {
    let mut s = String::with_capacity(prefix.len() + MARKER.len());
    s.push_str(prefix);
    s.push_str(std::str::from_utf8(MARKER).expect("ASCII"));
    s
}

/// An answer shaped like `renew_secret`'s and a recovery-code list, the
/// secrets moved in (`json!` would serialise a copy of each).
fn answer() -> Value {
    let mut v = json!({"provisioning_uri": null, "recovery_codes": [null, null], "otp_digits": 6});
    v["provisioning_uri"] = Value::String(secret("otpauth://totp/alice?secret="));
    v["recovery_codes"][0] = Value::String(secret("A-"));
    v["recovery_codes"][1] = Value::String(secret("B-"));
    v
}

/// Freed blocks holding the secret while `f` runs and drops what it made.
fn leaks(f: impl FnOnce()) -> usize {
    FOUND.store(0, Ordering::SeqCst);
    SCAN.store(true, Ordering::SeqCst);
    f();
    SCAN.store(false, Ordering::SeqCst);
    FOUND.load(Ordering::SeqCst)
}

#[test]
fn an_answer_written_through_the_wiping_path_leaves_no_copy() {
    let id = wire::Id::from(&json!(7));
    // The detector works: the ordinary path leaves the secret in freed
    // memory (the value's strings, the response text).
    let plain = leaks(|| {
        let text = wire::response_ok(&id, answer());
        assert!(text.contains("S3CR3T"));
    });
    assert!(plain >= 3, "the ordinary path left {plain} copies");
    // The wiping path: the value's strings are wiped, the buffer grows
    // from a small start (each old allocation wiped) and is wiped when
    // dropped.
    let wiped = leaks(|| {
        let text = wire::response_ok_wiping(&id, answer());
        let at = text.as_bytes().windows(MARKER.len());
        assert_eq!(at.filter(|w| *w == MARKER).count(), 3);
    });
    assert_eq!(wiped, 0, "copies of the secret freed without wiping");
    // ... and it is the same text as the ordinary path's.
    assert_eq!(
        wire::response_ok_wiping(&id, answer()).as_bytes(),
        wire::response_ok(&id, answer()).as_bytes()
    );
    // A buffer made to grow many times, handed on as its inner bytes.
    let grown = leaks(|| {
        use std::io::Write;
        let mut b = wire::WipingBuffer::with_capacity(1);
        for _ in 0..40 {
            b.write_all(MARKER).expect("write");
        }
        drop(b.into_inner());
    });
    assert_eq!(grown, 0, "a grown buffer left copies");
    // Handed to a transport as shared bytes (how both ends send a frame):
    // wiped when the last reference goes.
    let shared = leaks(|| {
        let bytes = bytes::Bytes::from_owner(wire::response_ok_wiping(&id, answer()).into_inner());
        let frame = bytes.clone();
        drop(bytes);
        assert!(frame.len() > MARKER.len());
        drop(frame);
    });
    assert_eq!(shared, 0, "shared bytes left copies");
    // A typed result written straight into the response (how the daemon
    // writes every answer): its secrets are in wiping types, so dropping
    // it leaves nothing; the same shape with plain strings does.
    #[derive(serde::Serialize)]
    struct Renewed<S> {
        provisioning_uri: S,
        recovery_codes: Vec<S>,
        otp_digits: u32,
    }
    fn renewed<S>(wrap: impl Fn(String) -> S) -> Renewed<S> {
        Renewed {
            provisioning_uri: wrap(secret("otpauth://totp/alice?secret=")),
            recovery_codes: vec![wrap(secret("A-")), wrap(secret("B-"))],
            otp_digits: 6,
        }
    }
    let typed_plain = leaks(|| {
        let text = wire::response_ok_of(&id, &renewed(|s| s)).expect("JSON");
        assert!(text.as_bytes().windows(MARKER.len()).any(|w| w == MARKER));
    });
    assert!(typed_plain >= 3, "plain strings left {typed_plain} copies");
    let typed = leaks(|| {
        let result = renewed(zeroize::Zeroizing::new);
        let text = wire::response_ok_of(&id, &result).expect("JSON");
        assert_eq!(
            text.as_bytes()
                .windows(MARKER.len())
                .filter(|w| *w == MARKER)
                .count(),
            3
        );
    });
    assert_eq!(typed, 0, "a typed answer left copies");
    // ... and it is the text the JSON-tree path writes.
    assert_eq!(
        wire::response_ok_of(&id, &renewed(zeroize::Zeroizing::new))
            .expect("JSON")
            .as_bytes(),
        wire::response_ok(&id, answer()).as_bytes()
    );
}
