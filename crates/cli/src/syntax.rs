//! The command-line syntax: splitting a line into words, the
//! `name=value` form, and how a value's text becomes a JSON value under its
//! schema.
//!
//! Words are split on white space, except inside `"..."` (kept, so a JSON
//! string stays a JSON string), inside `'...'` (shell-style: the quotes go,
//! the text stays) and inside `{...}`/`[...]` (so `services={"ssh": true}`
//! is one word). A backslash outside quotes escapes the next character. A
//! shell-style splitter (shlex) would strip the JSON quotes and split JSON
//! objects at their spaces, so this splitter is JSON-aware instead.

use serde_json::Value;

use client::wire::{JsonSchema, JsonType};

/// Why a line could not be split into words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyntaxError {
    #[error("unterminated string (missing closing {0})")]
    Unterminated(char),
    #[error("unbalanced brackets (missing closing {0})")]
    Unclosed(char),
    #[error("unexpected {0}")]
    UnexpectedClose(char),
}

/// One word of a line, with the byte offset where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub start: usize,
    pub text: String,
}

/// Splits `line` into words; unterminated quotes or brackets are errors.
pub fn split(line: &str) -> Result<Vec<String>, SyntaxError> {
    scan(line, false).map(|words| words.into_iter().map(|w| w.text).collect())
}

/// Splits a partial line (for completion): never fails; an unterminated
/// last word is returned as far as it goes.
pub fn split_lenient(line: &str) -> Vec<Word> {
    scan(line, true).unwrap_or_default()
}

fn closing(open: char) -> char {
    if open == '{' { '}' } else { ']' }
}

fn scan(line: &str, lenient: bool) -> Result<Vec<Word>, SyntaxError> {
    let mut words = Vec::new();
    let mut current: Option<Word> = None;
    let mut brackets: Vec<char> = Vec::new();
    let mut in_double = false;
    let mut in_single = false;
    let mut escaped = false;
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        let word = current.get_or_insert_with(|| Word {
            start: i,
            text: String::new(),
        });
        if in_single {
            if c == '\'' {
                in_single = false;
            } else {
                word.text.push(c);
            }
            continue;
        }
        if in_double {
            word.text.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_double = false;
            }
            continue;
        }
        if escaped {
            word.text.push(c);
            escaped = false;
            continue;
        }
        match c {
            c if c.is_whitespace() && brackets.is_empty() => {
                // A word made only of quotes ('') is an empty string.
                if let Some(w) = current.take().filter(|w| !w.text.is_empty() || quoted) {
                    words.push(w);
                }
                quoted = false;
            }
            '"' => {
                word.text.push(c);
                in_double = true;
            }
            '\'' if brackets.is_empty() => {
                in_single = true;
                quoted = true;
            }
            '\\' if brackets.is_empty() => escaped = true,
            '{' | '[' => {
                word.text.push(c);
                brackets.push(c);
            }
            '}' | ']' => {
                word.text.push(c);
                match brackets.last() {
                    Some(&open) if closing(open) == c => {
                        brackets.pop();
                    }
                    // A closing bracket that opens nothing is an ordinary
                    // character of a bare word.
                    None => {}
                    Some(_) if lenient => {
                        brackets.pop();
                    }
                    Some(_) => return Err(SyntaxError::UnexpectedClose(c)),
                }
            }
            _ => word.text.push(c),
        }
    }
    if !lenient {
        if in_single {
            return Err(SyntaxError::Unterminated('\''));
        }
        if in_double {
            return Err(SyntaxError::Unterminated('"'));
        }
        if let Some(&open) = brackets.last() {
            return Err(SyntaxError::Unclosed(closing(open)));
        }
    }
    if let Some(w) = current.filter(|w| !w.text.is_empty() || quoted) {
        words.push(w);
    }
    Ok(words)
}

/// Whether `s` can be an argument name (`otp_digits`, `services.ssh`).
pub fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Splits `name=value` at its first `=`, when what precedes it is a name.
pub fn split_assignment(word: &str) -> Option<(&str, &str)> {
    let (name, value) = word.split_once('=')?;
    is_name(name).then_some((name, value))
}

/// The JSON value of an argument's text under its schema.
///
/// The text is tried as JSON first, then taken as a bare word. Where the
/// schema admits a string, text that is not a JSON string literal stays the
/// text as typed unless its JSON value is itself admitted: `012345` and
/// `123456` are the strings `"012345"` and `"123456"` for a string
/// parameter (never the number 123456, which would lose a leading zero),
/// while `null` stays null for a nullable one.
pub fn value_for(text: &str, schema: Option<&JsonSchema>) -> Value {
    let parsed: Option<Value> = serde_json::from_str(text).ok();
    if let Some(schema) = schema.filter(|s| s.types().contains(&JsonType::String)) {
        return match parsed {
            Some(v @ Value::String(_)) => v,
            Some(v) if schema.admits_type(&v) => v,
            _ => Value::String(text.to_owned()),
        };
    }
    parsed.unwrap_or_else(|| Value::String(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn words(line: &str) -> Vec<String> {
        split(line).unwrap()
    }

    #[test]
    fn splits_on_white_space() {
        assert_eq!(
            words("  auth two_factor\tconfig "),
            ["auth", "two_factor", "config"]
        );
        assert!(words("   ").is_empty());
    }

    #[test]
    fn keeps_json_together() {
        assert_eq!(
            words(r#"update services={"ftp": true} enable=true"#),
            ["update", r#"services={"ftp": true}"#, "enable=true"]
        );
        assert_eq!(
            words(r#"x=[1, {"a": "b c"}] y"#),
            [r#"x=[1, {"a": "b c"}]"#, "y"]
        );
        assert_eq!(words(r#"token="12 34""#), [r#"token="12 34""#]);
        assert_eq!(words(r#"s="a \" b""#), [r#"s="a \" b""#]);
    }

    #[test]
    fn single_quotes_and_escapes_group_words() {
        assert_eq!(words("name='a b' c\\ d"), ["name=a b", "c d"]);
        assert_eq!(words("x=''"), ["x="]);
        assert_eq!(words("''"), [""]);
        assert_eq!(
            words(r#"services='{"ssh": true}'"#),
            [r#"services={"ssh": true}"#]
        );
    }

    #[test]
    fn refuses_unterminated_input() {
        assert_eq!(split("a 'b"), Err(SyntaxError::Unterminated('\'')));
        assert_eq!(split(r#"a "b"#), Err(SyntaxError::Unterminated('"')));
        assert_eq!(split("a={"), Err(SyntaxError::Unclosed('}')));
        assert_eq!(split("a={]"), Err(SyntaxError::UnexpectedClose(']')));
        assert_eq!(split_lenient("a {\"b").len(), 2);
    }

    #[test]
    fn lenient_split_reports_offsets() {
        let w = split_lenient("update  enab");
        assert_eq!(
            w[1],
            Word {
                start: 8,
                text: "enab".into()
            }
        );
    }

    #[test]
    fn assignments() {
        assert_eq!(split_assignment("enabled=true"), Some(("enabled", "true")));
        assert_eq!(split_assignment("token="), Some(("token", "")));
        assert_eq!(split_assignment("a=b=c"), Some(("a", "b=c")));
        assert_eq!(split_assignment("=true"), None);
        assert_eq!(split_assignment(r#"{"a=b": 1}"#), None);
        assert_eq!(split_assignment("true"), None);
    }

    #[test]
    fn json_values_and_bare_words() {
        assert_eq!(value_for("true", None), json!(true));
        assert_eq!(value_for("null", None), json!(null));
        assert_eq!(value_for("-1", None), json!(-1));
        assert_eq!(value_for(r#""quoted""#, None), json!("quoted"));
        assert_eq!(value_for(r#"{"ssh": true}"#, None), json!({"ssh": true}));
        assert_eq!(value_for("otp.check", None), json!("otp.check"));
        assert_eq!(value_for("{broken", None), json!("{broken"));
    }

    #[test]
    fn string_schemas_keep_digits_as_typed() {
        let s: JsonSchema = serde_json::from_value(json!({"type": ["string", "null"]})).unwrap();
        assert_eq!(value_for("012345", Some(&s)), json!("012345"));
        assert_eq!(value_for("123456", Some(&s)), json!("123456"));
        assert_eq!(value_for(r#""012345""#, Some(&s)), json!("012345"));
        assert_eq!(value_for("true", Some(&s)), json!("true"));
        assert_eq!(value_for("null", Some(&s)), json!(null));
        let plain: JsonSchema = serde_json::from_value(json!({"type": "string"})).unwrap();
        assert_eq!(value_for("null", Some(&plain)), json!("null"));
    }

    #[test]
    fn integer_schemas_take_numbers() {
        let s: JsonSchema =
            serde_json::from_value(json!({"type": "integer", "minimum": 6, "maximum": 8})).unwrap();
        assert_eq!(value_for("8", Some(&s)), json!(8));
        assert_eq!(value_for("-1", Some(&s)), json!(-1));
        // Not JSON (leading zero): sent as typed; the API reads digit strings.
        assert_eq!(value_for("08", Some(&s)), json!("08"));
        let b: JsonSchema = serde_json::from_value(json!({"type": "boolean"})).unwrap();
        assert_eq!(value_for("false", Some(&b)), json!(false));
    }
}
