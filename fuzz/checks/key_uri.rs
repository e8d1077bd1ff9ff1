//! Key URIs (`otp::KeyUri`): parsing any text never panics, and what parses
//! builds back to a URI that parses to the same key (parse → build → parse);
//! a key made from the input builds to a URI that parses back to it
//! (build → parse), up to the one normalisation parsing does on purpose:
//! white space after the label's `issuer:` is not part of the account.

pub fn check(data: &[u8]) {
    build_then_parse(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(uri) = otp::KeyUri::parse(text) else {
        return;
    };
    let built = match uri.build() {
        Ok(b) => b,
        // Build refuses only what parse would refuse too.
        Err(e) => panic!("{text:?} parsed but does not build: {e}"),
    };
    let again = otp::KeyUri::parse(&built)
        .unwrap_or_else(|e| panic!("{text:?} built {built:?}, which does not parse: {e}"));
    assert_eq!(again, uri, "{text:?} -> {built:?}");
    assert_eq!(
        again.build().ok().as_deref(),
        Some(built.as_str()),
        "{text:?}"
    );
}

/// A key from the input: 12 bytes of parameters, then issuer, account and
/// secret separated by 0xff (no issuer when there are only two parts).
fn build_then_parse(data: &[u8]) {
    let Some((head, rest)) = data.split_first_chunk::<12>() else {
        return;
    };
    let parts: Vec<&[u8]> = rest.split(|&b| b == 0xff).collect();
    let (issuer, account, secret) = match parts.as_slice() {
        [account, secret] => (None, *account, *secret),
        [issuer, account, secret] => (Some(*issuer), *account, *secret),
        _ => return,
    };
    let Ok(secret) = otp::Secret::from_bytes(secret.to_vec()) else {
        return;
    };
    let (Ok(digits), Ok(period)) = (
        otp::Digits::new(i64::from(head[1])),
        otp::Interval::new(i64::from(u16::from_le_bytes([head[2], head[3]]))),
    ) else {
        return;
    };
    let algorithm = match head[0] % 3 {
        0 => otp::Algorithm::Sha1,
        1 => otp::Algorithm::Sha256,
        _ => otp::Algorithm::Sha512,
    };
    let hotp = head[0] & 0x80 != 0;
    let counter = u64::from_le_bytes([
        head[4], head[5], head[6], head[7], head[8], head[9], head[10], head[11],
    ]);
    let key = otp::KeyUri {
        kind: if hotp {
            otp::OtpKind::Hotp { counter }
        } else {
            otp::OtpKind::Totp
        },
        issuer: issuer.map(|i| String::from_utf8_lossy(i).into_owned()),
        account: String::from_utf8_lossy(account).into_owned(),
        secret,
        algorithm,
        digits,
        period: if hotp { otp::Interval::DEFAULT } else { period },
    };
    let Ok(text) = key.build() else {
        return;
    };
    let parsed = otp::KeyUri::parse(&text)
        .unwrap_or_else(|e| panic!("built {text:?}, which does not parse: {e}"));
    let mut want = key;
    if want.issuer.is_some() {
        want.account = want.account.trim_start().to_owned();
    }
    assert_eq!(parsed, want, "{text:?}");
}
