//! Known answers from the RFCs and lists of inputs that must be rejected, all
//! read from `testdata/`.
//!
//! The expected values in `testdata/rfc4226.txt` and `testdata/rfc6238.txt`
//! are copied from the RFC appendices; nothing here compares the crate with
//! its own earlier output. Values for other digit counts and periods are
//! derived from the RFC numbers by arithmetic the RFCs define (a code with `d`
//! digits is the truncated value modulo 10^d; a TOTP code depends on the time
//! only through the step number).

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use otp::{
    Algorithm, Base32Error, Digits, Interval, KeyUri, OtpKind, Secret, SecretError, Totp, UriError,
    Window, decode_base32, encode_base32, hotp,
};

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

fn read(name: &str) -> String {
    let path = testdata().join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Lines that are neither blank nor comments, with 1-based line numbers. Only
/// a trailing `\r` is removed; everything else is kept verbatim.
fn data_lines(text: &str) -> Vec<(usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.strip_suffix('\r').unwrap_or(line)))
        .filter(|(_, line)| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
        .collect()
}

fn digits(n: u8) -> Digits {
    Digits::new(i64::from(n)).expect("digits in range")
}

fn interval(seconds: u32) -> Interval {
    Interval::new(i64::from(seconds)).expect("interval in range")
}

fn window(w: u8) -> Window {
    Window::new(i64::from(w)).expect("window in range")
}

fn mode(name: &str) -> Algorithm {
    match name {
        "SHA1" => Algorithm::Sha1,
        "SHA256" => Algorithm::Sha256,
        "SHA512" => Algorithm::Sha512,
        other => panic!("unknown mode {other:?} in test data"),
    }
}

fn hex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd-length hex {text:?}");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// `value` written with exactly `d` digits (leading zeros kept).
fn padded(value: u64, d: u8) -> String {
    format!(
        "{:0width$}",
        value % 10u64.pow(u32::from(d)),
        width = usize::from(d)
    )
}

// ---------------------------------------------------------------- RFC 4226

struct HotpRow {
    line: usize,
    count: u64,
    hmac: Vec<u8>,
    truncated_hex: u32,
    truncated_dec: u64,
    hotp: String,
}

fn rfc4226() -> (Vec<u8>, Vec<HotpRow>) {
    let text = read("rfc4226.txt");
    let mut secret = None;
    let mut rows = Vec::new();
    for (line, l) in data_lines(&text) {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f.as_slice() {
            ["secret", ascii] => secret = Some(ascii.as_bytes().to_vec()),
            [count, hmac, thex, tdec, code] => rows.push(HotpRow {
                line,
                count: count.parse().expect("count"),
                hmac: hex(hmac),
                truncated_hex: u32::from_str_radix(thex, 16).expect("truncated hex"),
                truncated_dec: tdec.parse().expect("truncated decimal"),
                hotp: (*code).to_owned(),
            }),
            _ => panic!("rfc4226.txt:{line}: cannot read {l:?}"),
        }
    }
    (secret.expect("rfc4226.txt has a secret line"), rows)
}

/// The data file itself is consistent: RFC 4226 §5.3 dynamic truncation,
/// done here independently of the crate, turns each HMAC of Table 1 into the
/// numbers of Table 2. This catches a typo in the transcription.
#[test]
fn rfc4226_data_file_is_self_consistent() {
    let (secret, rows) = rfc4226();
    assert_eq!(secret, b"12345678901234567890");
    assert_eq!(
        rows.iter().map(|r| r.count).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    for r in &rows {
        assert_eq!(r.hmac.len(), 20, "line {}", r.line);
        let offset = usize::from(r.hmac[19] & 0x0f);
        let bin = u32::from_be_bytes([
            r.hmac[offset] & 0x7f,
            r.hmac[offset + 1],
            r.hmac[offset + 2],
            r.hmac[offset + 3],
        ]);
        assert_eq!(bin, r.truncated_hex, "line {}", r.line);
        assert_eq!(u64::from(bin), r.truncated_dec, "line {}", r.line);
        assert_eq!(padded(r.truncated_dec, 6), r.hotp, "line {}", r.line);
    }
}

#[test]
fn rfc4226_appendix_d_hotp_values() {
    let (ascii, rows) = rfc4226();
    let secret = Secret::from_bytes(ascii).expect("20-byte secret");
    for r in &rows {
        let code = hotp(&secret, r.count, digits(6), Algorithm::Sha1);
        assert_eq!(code.to_string(), r.hotp, "rfc4226.txt:{}", r.line);
        assert_eq!(
            u64::from(code.value()),
            r.truncated_dec % 1_000_000,
            "rfc4226.txt:{}",
            r.line
        );
        let (buf, n) = code.to_ascii();
        assert_eq!(&buf[..n], r.hotp.as_bytes(), "rfc4226.txt:{}", r.line);
    }
}

/// 7 and 8 digits are the same truncated value modulo 10^7 and 10^8 (RFC 4226
/// §5.3 step 3, and its Appendix C reference code).
#[test]
fn rfc4226_values_with_seven_and_eight_digits() {
    let (ascii, rows) = rfc4226();
    let secret = Secret::from_bytes(ascii).expect("20-byte secret");
    for r in &rows {
        for d in [7, 8] {
            let code = hotp(&secret, r.count, digits(d), Algorithm::Sha1);
            assert_eq!(
                code.to_string(),
                padded(r.truncated_dec, d),
                "rfc4226.txt:{} d={d}",
                r.line
            );
        }
    }
}

/// The same secret reached through base32 text and through a Key URI gives
/// the same codes.
#[test]
fn rfc4226_values_through_base32_and_a_key_uri() {
    let (ascii, rows) = rfc4226();
    // RFC 4648 base32 of "12345678901234567890", written out by hand from the
    // alphabet: "12345" -> GEZDGNBV, "67890" -> GY3TQOJQ.
    let b32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    assert_eq!(encode_base32(&ascii), b32);
    let lenient = "gezd gnbv gy3t qojq GEZD GNBV gy3t qojq";
    let from_text = Secret::from_base32(lenient).expect("lenient base32");
    assert_eq!(from_text.expose(), &ascii[..]);

    let uri = format!("otpauth://hotp/RFC%204226:test?secret={b32}&counter=0&digits=6");
    let parsed = KeyUri::parse(&uri).expect("hand-written hotp URI");
    assert_eq!(parsed.kind, OtpKind::Hotp { counter: 0 });
    assert_eq!(parsed.issuer.as_deref(), Some("RFC 4226"));
    for r in &rows {
        let code = hotp(&parsed.secret, r.count, parsed.digits, parsed.algorithm);
        assert_eq!(code.to_string(), r.hotp, "rfc4226.txt:{}", r.line);
    }
}

// ---------------------------------------------------------------- RFC 6238

struct TotpRow {
    line: usize,
    time: u64,
    step: u64,
    code: String,
    mode: Algorithm,
}

fn rfc6238() -> (BTreeMap<&'static str, Vec<u8>>, Vec<TotpRow>) {
    let text = read("rfc6238.txt");
    let mut seeds = BTreeMap::new();
    let mut rows = Vec::new();
    for (line, l) in data_lines(&text) {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f.as_slice() {
            ["seed", m, ascii] => {
                let key = match *m {
                    "SHA1" => "SHA1",
                    "SHA256" => "SHA256",
                    "SHA512" => "SHA512",
                    other => panic!("rfc6238.txt:{line}: unknown mode {other}"),
                };
                seeds.insert(key, ascii.as_bytes().to_vec());
            }
            [time, t, code, m] => rows.push(TotpRow {
                line,
                time: time.parse().expect("time"),
                step: u64::from_str_radix(t, 16).expect("T in hex"),
                code: (*code).to_owned(),
                mode: mode(m),
            }),
            _ => panic!("rfc6238.txt:{line}: cannot read {l:?}"),
        }
    }
    (seeds, rows)
}

fn seed_for(seeds: &BTreeMap<&'static str, Vec<u8>>, alg: Algorithm) -> Secret {
    let bytes = seeds
        .get(alg.as_str())
        .expect("a seed for every mode")
        .clone();
    Secret::from_bytes(bytes).expect("seed length")
}

#[test]
fn rfc6238_data_file_is_self_consistent() {
    let (seeds, rows) = rfc6238();
    assert_eq!(seeds.get("SHA1").map(Vec::len), Some(20));
    assert_eq!(seeds.get("SHA256").map(Vec::len), Some(32));
    assert_eq!(seeds.get("SHA512").map(Vec::len), Some(64));
    assert_eq!(rows.len(), 18);
    for alg in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
        assert_eq!(rows.iter().filter(|r| r.mode == alg).count(), 6);
    }
    for r in &rows {
        // T = floor((time - T0) / X) with T0 = 0 and X = 30 (RFC 6238 §4.2).
        assert_eq!(r.time / 30, r.step, "rfc6238.txt:{}", r.line);
        assert_eq!(r.code.len(), 8, "rfc6238.txt:{}", r.line);
    }
}

#[test]
fn rfc6238_appendix_b_codes() {
    let (seeds, rows) = rfc6238();
    for r in &rows {
        let totp = Totp::new(&seed_for(&seeds, r.mode), digits(8), interval(30), r.mode);
        let at = format!("rfc6238.txt:{} ({} at {})", r.line, r.mode.as_str(), r.time);
        assert_eq!(totp.step(r.time), r.step, "{at}");
        assert_eq!(totp.code(r.time).to_string(), r.code, "{at}");
        assert_eq!(totp.code_at_step(r.step).to_string(), r.code, "{at}");
        // Every second of the step has the same code.
        assert_eq!(totp.code(r.step * 30).to_string(), r.code, "{at}");
        assert_eq!(totp.code(r.step * 30 + 29).to_string(), r.code, "{at}");
        // HOTP with the step as counter is the same thing (RFC 6238 §4.2).
        assert_eq!(
            hotp(&seed_for(&seeds, r.mode), r.step, digits(8), r.mode).to_string(),
            r.code,
            "{at}"
        );
    }
}

#[test]
fn rfc6238_appendix_b_verify() {
    let (seeds, rows) = rfc6238();
    for r in &rows {
        let totp = Totp::new(&seed_for(&seeds, r.mode), digits(8), interval(30), r.mode);
        let token = r.code.as_bytes();
        let at = format!("rfc6238.txt:{} ({} at {})", r.line, r.mode.as_str(), r.time);
        assert_eq!(totp.verify(token, r.time, window(0)), Some(r.step), "{at}");
        assert_eq!(totp.verify(token, r.time, window(1)), Some(r.step), "{at}");
        assert_eq!(totp.verify(token, r.time, window(10)), Some(r.step), "{at}");
        // One step later the code is still accepted with a window of 1, and
        // is not accepted without one.
        assert_eq!(
            totp.verify(token, r.time + 30, window(1)),
            Some(r.step),
            "{at}"
        );
        assert_eq!(totp.verify(token, r.time + 30, window(0)), None, "{at}");
        // Eleven steps away it is outside even the largest window.
        assert_eq!(
            totp.verify(token, r.time + 11 * 30, window(10)),
            None,
            "{at}"
        );
        // The 8-digit code does not match a 6-digit verifier, and its last
        // six digits do.
        let six = Totp::new(&seed_for(&seeds, r.mode), digits(6), interval(30), r.mode);
        assert_eq!(six.verify(token, r.time, window(0)), None, "{at}");
        assert_eq!(
            six.verify(&token[2..], r.time, window(0)),
            Some(r.step),
            "{at}"
        );
        // Nor does a one-digit-short or one-digit-long version.
        assert_eq!(totp.verify(&token[1..], r.time, window(1)), None, "{at}");
        let mut long = token.to_vec();
        long.push(b'0');
        assert_eq!(totp.verify(&long, r.time, window(1)), None, "{at}");
    }
}

/// 6 and 7 digits are the RFC codes modulo 10^6 and 10^7: the last digits.
#[test]
fn rfc6238_codes_with_six_and_seven_digits() {
    let (seeds, rows) = rfc6238();
    for r in &rows {
        for d in [6u8, 7] {
            let totp = Totp::new(&seed_for(&seeds, r.mode), digits(d), interval(30), r.mode);
            let want = &r.code[8 - usize::from(d)..];
            assert_eq!(
                totp.code(r.time).to_string(),
                want,
                "rfc6238.txt:{} d={d}",
                r.line
            );
        }
    }
}

/// A code depends on the time only through the step number, so with a period
/// of P seconds, the RFC's step T is reached at T*P .. T*P + P - 1.
#[test]
fn rfc6238_steps_with_other_periods() {
    let (seeds, rows) = rfc6238();
    for r in &rows {
        for p in [5u32, 45, 60, 3600] {
            let totp = Totp::new(&seed_for(&seeds, r.mode), digits(8), interval(p), r.mode);
            let start = r.step * u64::from(p);
            let end = start + u64::from(p) - 1;
            for t in [start, end] {
                assert_eq!(totp.step(t), r.step, "rfc6238.txt:{} p={p} t={t}", r.line);
                assert_eq!(
                    totp.code(t).to_string(),
                    r.code,
                    "rfc6238.txt:{} p={p} t={t}",
                    r.line
                );
            }
            assert_eq!(totp.verify(r.code.as_bytes(), end, window(0)), Some(r.step));
            assert_eq!(totp.verify(r.code.as_bytes(), end + 1, window(0)), None);
        }
    }
}

/// The seeds carried through a built and re-parsed Key URI give the RFC codes.
#[test]
fn rfc6238_through_a_key_uri() {
    let (seeds, rows) = rfc6238();
    for r in &rows {
        let uri = KeyUri {
            kind: OtpKind::Totp,
            issuer: Some("RFC 6238".into()),
            account: "appendix-b@example.com".into(),
            secret: seed_for(&seeds, r.mode),
            algorithm: r.mode,
            digits: digits(8),
            period: interval(30),
        };
        let text = uri.build().expect("no colons");
        let parsed = KeyUri::parse(&text).expect("parses what it builds");
        let totp = Totp::new(
            &parsed.secret,
            parsed.digits,
            parsed.period,
            parsed.algorithm,
        );
        assert_eq!(totp.code(r.time).to_string(), r.code, "{text}");
    }
}

// ------------------------------------------------------------ reject lists

/// `(line, expected variant, input)` from a `fail_*.txt` file.
fn fail_cases(name: &str) -> Vec<(usize, String, String)> {
    let text = read(name);
    let cases: Vec<_> = data_lines(&text)
        .into_iter()
        .map(|(line, l)| {
            let (variant, input) = l
                .split_once(' ')
                .unwrap_or_else(|| panic!("{name}:{line}: no variant in {l:?}"));
            (line, variant.to_owned(), input.to_owned())
        })
        .collect();
    assert!(cases.len() >= 10, "{name} has only {} cases", cases.len());
    cases
}

/// Every variant is listed, so a new one fails to compile here until the
/// reject lists know about it.
fn uri_variant(e: &UriError) -> &'static str {
    match e {
        UriError::Scheme => "Scheme",
        UriError::Type(_) => "Type",
        UriError::MissingLabel => "MissingLabel",
        UriError::Colon { .. } => "Colon",
        UriError::Encoding(_) => "Encoding",
        UriError::MissingSecret => "MissingSecret",
        UriError::Secret(_) => "Secret",
        UriError::Algorithm(_) => "Algorithm",
        UriError::NotANumber { .. } => "NotANumber",
        UriError::Range(_) => "Range",
        UriError::MissingCounter => "MissingCounter",
        UriError::IssuerMismatch { .. } => "IssuerMismatch",
        UriError::Duplicate(_) => "Duplicate",
    }
}

fn base32_variant(e: &Base32Error) -> &'static str {
    match e {
        Base32Error::Empty => "Empty",
        Base32Error::Symbol { .. } => "Symbol",
        Base32Error::Length { .. } => "Length",
        Base32Error::Padding => "Padding",
    }
}

#[test]
fn fail_uris_are_rejected_for_the_listed_reason() {
    let mut seen = Vec::new();
    let mut wrong = Vec::new();
    for (line, variant, input) in fail_cases("fail_uris.txt") {
        match KeyUri::parse(&input) {
            Ok(u) => wrong.push(format!("fail_uris.txt:{line}: accepted {input:?} as {u:?}")),
            Err(e) => {
                if uri_variant(&e) != variant {
                    wrong.push(format!(
                        "fail_uris.txt:{line}: {input:?} failed with {e:?} ({e}), expected {variant}"
                    ));
                }
                // A bad secret is never echoed back in the message.
                if let UriError::Secret(_) = e {
                    let value = input.split("secret=").nth(1).unwrap_or("");
                    let value = value.split('&').next().unwrap_or("");
                    if value.len() >= 4 && e.to_string().contains(value) {
                        wrong.push(format!("fail_uris.txt:{line}: error {e} shows the secret"));
                    }
                }
                seen.push(variant);
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The list exercises every reason a URI can be refused.
    for v in [
        "Scheme",
        "Type",
        "MissingLabel",
        "Colon",
        "Encoding",
        "MissingSecret",
        "Secret",
        "Algorithm",
        "NotANumber",
        "Range",
        "MissingCounter",
        "IssuerMismatch",
        "Duplicate",
    ] {
        assert!(seen.iter().any(|s| s == v), "fail_uris.txt has no {v} case");
    }
}

#[test]
fn fail_base32_is_rejected_for_the_listed_reason() {
    let mut seen = Vec::new();
    let mut wrong = Vec::new();
    for (line, variant, input) in fail_cases("fail_base32.txt") {
        match decode_base32(&input) {
            Ok(bytes) => wrong.push(format!(
                "fail_base32.txt:{line}: accepted {input:?} as {bytes:?}"
            )),
            Err(e) => {
                if base32_variant(&e) != variant {
                    wrong.push(format!(
                        "fail_base32.txt:{line}: {input:?} failed with {e:?}, expected {variant}"
                    ));
                }
                // Secret::from_base32 refuses it for the same reason.
                if Secret::from_base32(&input).err() != Some(SecretError::Base32(e.clone())) {
                    wrong.push(format!(
                        "fail_base32.txt:{line}: Secret::from_base32 disagrees"
                    ));
                }
                seen.push(variant);
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    for v in ["Empty", "Symbol", "Length", "Padding"] {
        assert!(
            seen.iter().any(|s| s == v),
            "fail_base32.txt has no {v} case"
        );
    }
}

/// Each `fail_*` file in testdata/ has a test above; a new file without one
/// fails here instead of being silently ignored.
#[test]
fn every_fail_file_is_walked() {
    const WALKED: &[&str] = &["fail_base32.txt", "fail_uris.txt"];
    let mut found = Vec::new();
    for entry in fs::read_dir(testdata()).expect("testdata/ exists") {
        let name = entry
            .expect("directory entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.starts_with("fail_") {
            assert!(
                WALKED.contains(&name.as_str()),
                "testdata/{name} is not walked by any test"
            );
            found.push(name);
        }
    }
    found.sort();
    assert_eq!(found, WALKED);
}
