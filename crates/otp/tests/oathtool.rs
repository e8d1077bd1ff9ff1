//! Cross-checks against two independent implementations: `oathtool` (OATH
//! Toolkit, Debian package `oathtool`) and Python's `pyotp`.
//!
//! Both must be installed; CI installs them. Without them these tests fail
//! and say what to install, unless `TFA_SKIP_EXTERNAL=1` is set, in which
//! case they print a note and pass.
//!
//! Cases come from a fixed-seed xorshift generator, so a failure names a case
//! that reproduces on every run.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use otp::{
    Algorithm, Digits, Interval, KeyUri, OtpKind, Secret, Totp, Window, encode_base32, hotp,
};

// ------------------------------------------------------------ environment

/// Whether a missing tool may be skipped rather than fail the test.
fn skip_allowed() -> bool {
    std::env::var("TFA_SKIP_EXTERNAL").is_ok_and(|v| v == "1")
}

/// Runs the probe; returns false (skip) or panics (fail) if the tool is
/// unusable.
fn available(what: &str, install: &str, probe: std::io::Result<Output>) -> bool {
    let problem = match probe {
        Ok(out) if out.status.success() => return true,
        Ok(out) => format!(
            "{what} is present but failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => format!("{what} could not be run: {e}"),
    };
    if skip_allowed() {
        eprintln!("SKIPPED (TFA_SKIP_EXTERNAL=1): {problem}");
        false
    } else {
        panic!(
            "{problem}\n{install} (CI installs it), or set TFA_SKIP_EXTERNAL=1 to skip this test."
        );
    }
}

fn have_oathtool() -> bool {
    available(
        "oathtool",
        "Install the Debian package `oathtool` (apt-get install oathtool)",
        Command::new("oathtool").arg("--version").output(),
    )
}

fn have_pyotp() -> bool {
    available(
        "python3 with pyotp",
        "Install python3 and pyotp (apt-get install python3 python3-pyotp)",
        Command::new("python3")
            .args(["-c", "import pyotp"])
            .output(),
    )
}

// ------------------------------------------------------------ random cases

/// xorshift64* (Vigna); plenty for picking test cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform enough in `lo..=hi` for test selection.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.next() as usize % items.len()]
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

const ALGORITHMS: [Algorithm; 3] = [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512];
const PERIODS: [u32; 5] = [30, 45, 60, 5, 3600];

#[derive(Debug, Clone)]
struct Case {
    secret: Vec<u8>,
    time: u64,
    digits: u8,
    algorithm: Algorithm,
    period: u32,
}

impl Case {
    fn totp(&self) -> Totp {
        let secret = Secret::from_bytes(self.secret.clone()).expect("10..=64 bytes");
        Totp::new(
            &secret,
            digits(self.digits),
            interval(self.period),
            self.algorithm,
        )
    }

    fn describe(&self) -> String {
        format!(
            "{} digits={} period={} time={} secret={}",
            self.algorithm.as_str(),
            self.digits,
            self.period,
            self.time,
            hex(&self.secret)
        )
    }
}

fn digits(n: u8) -> Digits {
    Digits::new(i64::from(n)).expect("6..=8")
}

fn interval(p: u32) -> Interval {
    Interval::new(i64::from(p)).expect("5..=3600")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Times from the epoch to year 6325 (below 2^37 s; pyotp stops at year
/// 9999), weighted towards the present, past 2038 (2^31) and the seconds on
/// either side of a step boundary.
fn random_time(rng: &mut Rng, period: u32) -> u64 {
    let p = u64::from(period);
    match rng.range(0, 5) {
        0 => rng.range(0, 1_000),
        1 => rng.range(1_500_000_000, 2_000_000_000),
        2 => rng.range(1 << 31, 1 << 34),
        3 => rng.range(0, (1 << 37) - 1),
        4 => rng.range(1, (1 << 37) / p) * p - 1, // last second of a step
        _ => rng.range(0, (1 << 37) / p) * p,     // first second of a step
    }
}

fn random_cases(seed: u64, n: usize) -> Vec<Case> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| {
            let period = rng.pick(&PERIODS);
            let len = rng.range(10, 64) as usize;
            Case {
                secret: rng.bytes(len),
                time: random_time(&mut rng, period),
                digits: rng.range(6, 8) as u8,
                algorithm: rng.pick(&ALGORITHMS),
                period,
            }
        })
        .collect()
}

fn assert_no_mismatches(what: &str, checked: usize, mismatches: &[String]) {
    assert!(
        mismatches.is_empty(),
        "{} of {checked} {what} cases disagree:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

// --------------------------------------------------------------- oathtool

fn oathtool(args: &[String]) -> String {
    let out = Command::new("oathtool")
        .args(args)
        .output()
        .expect("oathtool runs");
    assert!(
        out.status.success(),
        "oathtool {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("ASCII output")
        .trim()
        .to_owned()
}

#[test]
fn totp_matches_oathtool() {
    if !have_oathtool() {
        return;
    }
    let cases = random_cases(0x00A7_7001_5EED, 240);
    let mut mismatches = Vec::new();
    for case in &cases {
        let args = vec![
            format!("--totp={}", case.algorithm.as_str()),
            format!("--digits={}", case.digits),
            format!("--time-step-size={}s", case.period),
            format!("--now=@{}", case.time),
            hex(&case.secret),
        ];
        let theirs = oathtool(&args);
        let totp = case.totp();
        let ours = totp.code(case.time).to_string();
        if ours != theirs {
            mismatches.push(format!(
                "oathtool {theirs}, ours {ours}: {}",
                case.describe()
            ));
            continue;
        }
        // oathtool's code verifies at that time with no window.
        let step = case.time / u64::from(case.period);
        if totp.verify(theirs.as_bytes(), case.time, Window::DEFAULT) != Some(step) {
            mismatches.push(format!(
                "verify refused oathtool's {theirs}: {}",
                case.describe()
            ));
        }
    }
    assert_no_mismatches("oathtool TOTP", cases.len(), &mismatches);
}

/// oathtool's HOTP mode is HMAC-SHA-1 only (RFC 4226).
#[test]
fn hotp_matches_oathtool() {
    if !have_oathtool() {
        return;
    }
    let mut rng = Rng(0x4077_0001);
    let mut mismatches = Vec::new();
    let n = 60;
    for i in 0..n {
        let len = rng.range(10, 64) as usize;
        let secret = rng.bytes(len);
        let d = rng.range(6, 8) as u8;
        let counter = match i % 4 {
            0 => rng.range(0, 100),
            1 => rng.range(0, u64::from(u32::MAX)),
            2 => rng.next(),
            _ => u64::MAX - rng.range(0, 3),
        };
        let theirs = oathtool(&[
            "--hotp".to_owned(),
            format!("--digits={d}"),
            format!("--counter={counter}"),
            hex(&secret),
        ]);
        let key = Secret::from_bytes(secret.clone()).expect("10..=64 bytes");
        let ours = hotp(&key, counter, digits(d), Algorithm::Sha1).to_string();
        if ours != theirs {
            mismatches.push(format!(
                "oathtool {theirs}, ours {ours}: digits={d} counter={counter} secret={}",
                hex(&secret)
            ));
        }
    }
    assert_no_mismatches("oathtool HOTP", n, &mismatches);
}

// ------------------------------------------------------------------ pyotp

/// Reads one request per line and answers each on one line, so a single
/// Python process serves every case. pyotp's own policy limits (secrets of
/// at least 112 bits, periods of at most 120 s) are lifted for code
/// generation only: the arithmetic is what is being compared.
const PYOTP_SERVER: &str = r#"
import base64, hashlib, sys
import pyotp

DIGESTS = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}

class LaxTOTP(pyotp.TOTP):
    min_secret_length_bits = 80

class LaxHOTP(pyotp.HOTP):
    min_secret_length_bits = 80

def text(s):
    return "-" if s is None else "x" + s.encode("utf-8").hex()

for line in sys.stdin:
    f = line.split()
    if not f:
        continue
    try:
        if f[0] == "totp":
            _, b32, digits, alg, period, t = f
            o = LaxTOTP(b32, digits=int(digits), digest=DIGESTS[alg], interval=30)
            o.interval = int(period)
            answer = o.at(int(t))
        elif f[0] == "hotp":
            _, b32, digits, alg, counter = f
            answer = LaxHOTP(b32, digits=int(digits), digest=DIGESTS[alg]).at(int(counter))
        elif f[0] == "uri":
            _, uri, t = f
            o = pyotp.parse_uri(uri)
            if isinstance(o, pyotp.TOTP):
                kind, extra, code = "totp", str(o.interval), o.at(int(t))
            else:
                kind, extra, code = "hotp", str(o.initial_count), o.at(0)
            answer = " ".join([kind, o.byte_secret().hex(), str(o.digits), o.digest().name,
                               extra, text(o.issuer), text(o.name), code])
        else:
            answer = "error unknown-request"
    except Exception as e:
        answer = "error " + type(e).__name__ + ":" + str(e).replace("\n", " ")
    print(answer)
"#;

/// Sends all requests to one python3 process and returns one answer each.
fn ask_pyotp(requests: &[String]) -> Vec<String> {
    let mut child = Command::new("python3")
        .args(["-c", PYOTP_SERVER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 starts");
    let mut input = requests.join("\n");
    input.push('\n');
    let mut stdin = child.stdin.take().expect("piped stdin");
    // Write from another thread so a full stdout pipe cannot deadlock us.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("python3 finishes");
    writer
        .join()
        .expect("writer thread")
        .expect("requests written");
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Vec<String> = String::from_utf8(out.stdout)
        .expect("UTF-8")
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(answers.len(), requests.len(), "one answer per request");
    answers
}

#[test]
fn totp_matches_pyotp() {
    if !have_pyotp() {
        return;
    }
    let cases = random_cases(0x000B_70B7_5EED, 300);
    let requests: Vec<String> = cases
        .iter()
        .map(|c| {
            format!(
                "totp {} {} {} {} {}",
                encode_base32(&c.secret),
                c.digits,
                c.algorithm.as_str(),
                c.period,
                c.time
            )
        })
        .collect();
    let answers = ask_pyotp(&requests);
    let mut mismatches = Vec::new();
    for (case, theirs) in cases.iter().zip(&answers) {
        let totp = case.totp();
        let ours = totp.code(case.time).to_string();
        if &ours != theirs {
            mismatches.push(format!("pyotp {theirs}, ours {ours}: {}", case.describe()));
        } else if totp
            .verify(theirs.as_bytes(), case.time, Window::DEFAULT)
            .is_none()
        {
            mismatches.push(format!(
                "verify refused pyotp's {theirs}: {}",
                case.describe()
            ));
        }
    }
    assert_no_mismatches("pyotp TOTP", cases.len(), &mismatches);
}

/// HOTP with all three hashes (oathtool covers SHA-1 only).
#[test]
fn hotp_matches_pyotp() {
    if !have_pyotp() {
        return;
    }
    let mut rng = Rng(0x4077_0002);
    let cases: Vec<(Vec<u8>, u8, Algorithm, u64)> = (0..120)
        .map(|i| {
            let len = rng.range(10, 64) as usize;
            let counter = match i % 3 {
                0 => rng.range(0, 1000),
                1 => rng.next(),
                _ => u64::MAX - rng.range(0, 3),
            };
            (
                rng.bytes(len),
                rng.range(6, 8) as u8,
                rng.pick(&ALGORITHMS),
                counter,
            )
        })
        .collect();
    let requests: Vec<String> = cases
        .iter()
        .map(|(s, d, a, c)| format!("hotp {} {d} {} {c}", encode_base32(s), a.as_str()))
        .collect();
    let answers = ask_pyotp(&requests);
    let mut mismatches = Vec::new();
    for ((s, d, a, c), theirs) in cases.iter().zip(&answers) {
        let key = Secret::from_bytes(s.clone()).expect("10..=64 bytes");
        let ours = hotp(&key, *c, digits(*d), *a).to_string();
        if &ours != theirs {
            mismatches.push(format!(
                "pyotp {theirs}, ours {ours}: {} digits={d} counter={c} secret={}",
                a.as_str(),
                hex(s)
            ));
        }
    }
    assert_no_mismatches("pyotp HOTP", cases.len(), &mismatches);
}

/// Characters for issuers and accounts: letters, digits, spaces, '@', the
/// characters URIs give meaning to, and non-ASCII.
const LABEL_CHARS: &[char] = &[
    'a',
    'b',
    'z',
    'A',
    'Q',
    'Z',
    '0',
    '7',
    '.',
    '-',
    '_',
    '~',
    ' ',
    ' ',
    ' ',
    '@',
    '@',
    '&',
    '?',
    '=',
    '+',
    '%',
    '/',
    '#',
    ';',
    ',',
    '\'',
    '(',
    '!',
    '*',
    '$',
    '\u{e9}',
    '\u{df}',
    '\u{4e2d}',
    '\u{1f642}',
];

/// Text of 1..=20 characters; white space only inside (pyotp keeps leading
/// spaces before an account, which the Key URI format lets readers drop).
/// Whether the python3 on PATH has a pyotp older than 2.9 (Debian 12
/// ships 2.6), whose `parse_uri` percent-decodes the whole URI before
/// splitting it, so that an encoded `&`, `#`, `?`, `%`, `=`, `+` or `;` in a label
/// breaks it apart: a bug of that parser, not of our URIs.
fn old_pyotp() -> bool {
    let out = Command::new("python3")
        .args([
            "-c",
            "import importlib.metadata as m; v = m.version('pyotp').split('.'); \
             print(int(v[0]) * 1000 + int(v[1]))",
        ])
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse::<u32>()
            .is_ok_and(|v| v < 2009),
        _ => false,
    }
}

fn random_label_from(rng: &mut Rng, chars: &[char]) -> String {
    let len = rng.range(1, 20) as usize;
    let mut s: String = (0..len).map(|_| rng.pick(chars)).collect();
    if s.trim() != s || s.is_empty() {
        s = format!("x{}x", s.trim());
    }
    s
}

#[test]
fn pyotp_parses_our_key_uris() {
    if !have_pyotp() {
        return;
    }
    const AT: u64 = 1_700_000_000;
    let mut rng = Rng(0x00B7_0011);
    // An old pyotp cannot parse labels with the characters its decoder
    // mistakes for URI syntax: labels without them (spaces, `@`, quotes,
    // `$`, non-ASCII and the rest stay).
    let chars: Vec<char> = if old_pyotp() {
        eprintln!("pyotp older than 2.9: labels without & # ? % = + ; for its parse_uri");
        LABEL_CHARS
            .iter()
            .copied()
            .filter(|c| !"&#?%=+;".contains(*c))
            .collect()
    } else {
        LABEL_CHARS.to_vec()
    };
    let mut uris = Vec::new();
    for i in 0..60 {
        let issuer = if i % 5 == 4 {
            None
        } else {
            Some(random_label_from(&mut rng, &chars))
        };
        let account = match i {
            0 => "nas 1@TrueNAS".to_owned(),
            1 => "john.doe@example.com".to_owned(),
            _ => random_label_from(&mut rng, &chars),
        };
        let kind = if i % 3 == 2 {
            OtpKind::Hotp {
                counter: rng.range(0, 1 << 40),
            }
        } else {
            OtpKind::Totp
        };
        // Within pyotp's own policy: secrets of 112 bits or more, periods of
        // at most 120 s.
        let len = rng.range(14, 64) as usize;
        let u = KeyUri {
            kind,
            issuer,
            account,
            secret: Secret::from_bytes(rng.bytes(len)).expect("14..=64 bytes"),
            algorithm: rng.pick(&ALGORITHMS),
            digits: digits(rng.range(6, 8) as u8),
            period: interval(rng.pick(&[5, 15, 30, 45, 60, 90, 120])),
        };
        let text = u.build().expect("no colons, non-blank account");
        uris.push((u, text));
    }
    let requests: Vec<String> = uris
        .iter()
        .map(|(_, text)| format!("uri {text} {AT}"))
        .collect();
    let answers = ask_pyotp(&requests);

    let label = |s: Option<&str>| s.map_or("-".to_owned(), |s| format!("x{}", hex(s.as_bytes())));
    let mut mismatches = Vec::new();
    for ((u, text), theirs) in uris.iter().zip(&answers) {
        let (kind, extra, code) = match u.kind {
            OtpKind::Totp => {
                let totp = Totp::new(&u.secret, u.digits, u.period, u.algorithm);
                ("totp", u.period.to_string(), totp.code(AT).to_string())
            }
            OtpKind::Hotp { counter } => (
                "hotp",
                counter.to_string(),
                hotp(&u.secret, counter, u.digits, u.algorithm).to_string(),
            ),
        };
        let digest = match u.algorithm {
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        };
        let want = [
            kind.to_owned(),
            hex(u.secret.expose()),
            u.digits.to_string(),
            digest.to_owned(),
            extra,
            label(u.issuer.as_deref()),
            label(Some(&u.account)),
            code,
        ]
        .join(" ");
        if &want != theirs {
            mismatches.push(format!("{text}\n  pyotp: {theirs}\n  want:  {want}"));
        }
    }
    assert_no_mismatches("pyotp.parse_uri", uris.len(), &mismatches);
}
