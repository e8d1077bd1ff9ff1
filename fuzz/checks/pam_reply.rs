//! The PAM module's reading of the daemon's answer to a code check
//! (`pam_twofactor::parse_check_reply`) on any text: no panic, and fail
//! closed: only a response whose result's outcome is exactly "accepted",
//! with no error member, is Accepted.

use serde_json::Value;

pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let verdict = pam_twofactor::parse_check_reply(text);
    if matches!(verdict, Ok(pam_twofactor::Outcome::Accepted)) {
        let v: Value = serde_json::from_str(text).expect("accepted only JSON");
        assert!(v.get("error").is_none(), "{text:?}: an error was accepted");
        assert_eq!(v["result"]["outcome"], "accepted", "{text:?}");
    }
}
