//! How error texts echo a name a caller gave (an account, a method, a
//! socket path): whole when short, else a bounded prefix and `…`, so that
//! an answer or a log line never grows with what was sent.

use std::borrow::Cow;

/// Characters of a given name an error text echoes at most.
pub const MAX_SHOWN_CHARS: usize = 64;

/// `name` as error texts show it: itself when it has at most
/// [`MAX_SHOWN_CHARS`] characters, else its first [`MAX_SHOWN_CHARS`]
/// characters followed by `…`.
pub fn shown(name: &str) -> Cow<'_, str> {
    match name.char_indices().nth(MAX_SHOWN_CHARS) {
        None => Cow::Borrowed(name),
        Some((cut, _)) => Cow::Owned(format!("{}…", &name[..cut])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_whole_long_ones_cut_at_a_character() {
        assert_eq!(shown("alice"), "alice");
        let exact = "a".repeat(MAX_SHOWN_CHARS);
        assert_eq!(shown(&exact), exact.as_str());
        let long = "é".repeat(10_000);
        let cut = shown(&long);
        assert_eq!(cut.chars().count(), MAX_SHOWN_CHARS + 1);
        assert!(cut.ends_with('…'));
        assert!(cut.starts_with(&"é".repeat(MAX_SHOWN_CHARS)));
    }
}
