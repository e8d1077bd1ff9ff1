//! `Totp::verify` timings. `compare.sh` runs `verify_wrong_window1` next to
//! pyotp's `TOTP.verify(wrong, for_time=T, valid_window=1)` (see
//! `pyotp_peer.py`, which uses the same secret, time and wrong code).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use otp::{Algorithm, Digits, Interval, Secret, Totp, Window};

/// The fixed point in time both benchmarks verify at.
const T: u64 = 1_700_000_000;

/// 20 bytes 0x00..0x13, the same secret pyotp_peer.py uses.
fn secret() -> Secret {
    Secret::from_bytes((0u8..20).collect()).expect("20 bytes")
}

fn window(w: i64) -> Window {
    Window::new(w).expect("in range")
}

/// The first of 000000, 000001, ... that no step in the window accepts, so
/// every candidate is computed and none matches (pyotp_peer.py picks the
/// same way).
fn wrong_code(totp: &Totp, w: Window) -> Vec<u8> {
    (0u32..1_000_000)
        .map(|n| format!("{n:06}").into_bytes())
        .find(|code| totp.verify(code, T, w).is_none())
        .expect("some code is wrong")
}

fn sha1_6() -> Totp {
    Totp::new(
        &secret(),
        Digits::new(6).expect("6"),
        Interval::new(30).expect("30"),
        Algorithm::Sha1,
    )
}

fn benches(c: &mut Criterion) {
    let totp = sha1_6();
    let w1 = window(1);
    let wrong = wrong_code(&totp, w1);
    assert_eq!(totp.verify(&wrong, T, w1), None);
    c.bench_function("verify_wrong_window1", |b| {
        b.iter(|| totp.verify(black_box(&wrong), black_box(T), w1))
    });

    let right = totp.code(T).to_string().into_bytes();
    let w0 = window(0);
    assert_eq!(totp.verify(&right, T, w0), Some(totp.step(T)));
    c.bench_function("verify_right_window0", |b| {
        b.iter(|| totp.verify(black_box(&right), black_box(T), w0))
    });

    // Keying the HMAC from the secret each time, as a caller that builds a
    // Totp per request does.
    let s = secret();
    c.bench_function("cold_new_then_verify_wrong_w1", |b| {
        b.iter(|| {
            let totp = Totp::new(
                black_box(&s),
                Digits::new(6).expect("6"),
                Interval::new(30).expect("30"),
                Algorithm::Sha1,
            );
            totp.verify(black_box(&wrong), black_box(T), w1)
        })
    });

    for (name, alg) in [("sha256", Algorithm::Sha256), ("sha512", Algorithm::Sha512)] {
        let totp = Totp::new(
            &secret(),
            Digits::new(6).expect("6"),
            Interval::new(30).expect("30"),
            alg,
        );
        let wrong = wrong_code(&totp, w1);
        c.bench_function(&format!("{name}_wrong_w1"), |b| {
            b.iter(|| totp.verify(black_box(&wrong), black_box(T), w1))
        });
    }
}

criterion_group!(verify, benches);
criterion_main!(verify);
