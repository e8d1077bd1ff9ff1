//! Key URI parsing (`otp::KeyUri::parse`) on any text: no panic, and what
//! parses builds back to a URI that parses to the same key (build → parse
//! round trip).

pub fn check(data: &[u8]) {
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
