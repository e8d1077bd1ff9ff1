//! "Did you mean ...?": the nearest valid name to a misspelled one.

/// The candidate nearest to `word` by edit distance, when it is close
/// enough to be a plausible typo (or `word` is a prefix of it).
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| {
            let distance = strsim::damerau_levenshtein(word, c);
            // A prefix (`two` for `two_factor`) is as good as one typo.
            let score = if c.starts_with(word) && !word.is_empty() {
                distance.min(1)
            } else {
                distance
            };
            (score, c)
        })
        .filter(|(score, _)| *score <= limit)
        .min_by_key(|(score, _)| *score)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos() {
        let names = [
            "config",
            "provisioning_uri",
            "renew_secret",
            "update",
            "verify",
        ];
        assert_eq!(nearest("uodate", names), Some("update"));
        assert_eq!(nearest("cnofig", names), Some("config"));
        assert_eq!(nearest("provisioning", names), Some("provisioning_uri"));
        assert_eq!(nearest("xyzzy", names), None);
        let args = ["enabled", "otp_digits", "window", "interval", "services"];
        assert_eq!(nearest("enable", args), Some("enabled"));
        assert_eq!(nearest("digits", args), None);
        assert_eq!(nearest("otp_digit", args), Some("otp_digits"));
        assert_eq!(nearest("windows", args), Some("window"));
    }
}
