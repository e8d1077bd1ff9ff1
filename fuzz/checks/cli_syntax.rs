//! The CLI's argument syntax (`cli::syntax`) on any line: splitting never
//! panics, word offsets are where the words start, the lenient splitter
//! (completion) agrees with the strict one wherever the strict one succeeds,
//! and every word can be turned into a JSON value.

pub fn check(data: &[u8]) {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let lenient = cli::syntax::split_lenient(line);
    for w in &lenient {
        assert!(line.is_char_boundary(w.start), "{line:?}: {w:?}");
        assert!(
            !line[w.start..].starts_with(char::is_whitespace),
            "{line:?}: {w:?}"
        );
    }
    assert!(
        lenient.windows(2).all(|p| p[0].start < p[1].start),
        "{line:?}: {lenient:?}"
    );
    if let Ok(words) = cli::syntax::split(line) {
        let texts: Vec<&str> = lenient.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(words, texts, "{line:?}");
        for word in &words {
            let _ = cli::syntax::value_for(word, None);
            if let Some((name, value)) = cli::syntax::split_assignment(word) {
                assert!(cli::syntax::is_name(name), "{word:?}");
                let _ = cli::syntax::value_for(value, None);
            }
        }
    }
}
