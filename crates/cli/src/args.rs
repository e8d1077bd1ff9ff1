//! From a command's argument words to the method's positional params
//! (SPEC §4.2), using only the method's `accepts` schemas.
//!
//! - `name=value`, `name = value`, `name= value`, `name =value` name an
//!   argument; other words are positional and fill parameters in order.
//! - When the method takes a single object (a config service's `update`,
//!   `audit query`), names are that object's properties.
//! - `--qr`, `--no-qr`, `--png FILE`, `--svg FILE` are presentation
//!   options of the CLI, never sent to the API.

use std::path::PathBuf;

use serde_json::{Map, Value};

use crate::error::CliError;
use crate::schema;
use crate::suggest;
use crate::syntax::{self, is_name, split_assignment};
use crate::tree::Command;

/// How a text result is presented besides being printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Presentation {
    /// `Some(true)`: `--qr`; `Some(false)`: `--no-qr`; `None`: draw the QR
    /// code of an `otpauth://` URI when standard output is a terminal.
    pub qr: Option<bool>,
    pub png: Option<PathBuf>,
    pub svg: Option<PathBuf>,
}

impl Presentation {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// A name the method does not know, with the nearest one it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    pub name: String,
    pub suggestion: Option<String>,
}

impl UnknownName {
    /// `Unknown argument `enable`: did you mean `enabled`?`
    pub fn hint(&self) -> String {
        match &self.suggestion {
            Some(s) => format!("Unknown argument `{}`: did you mean `{s}`?", self.name),
            None => format!("Unknown argument `{}`", self.name),
        }
    }
}

/// The usage error for an unknown name, listing the valid ones when no
/// name is near.
pub fn unknown_name_error(u: &UnknownName, valid: &[&str]) -> CliError {
    let mut text = u.hint();
    if u.suggestion.is_none() {
        if valid.is_empty() {
            text.push_str(" (this command takes no named arguments)");
        } else {
            text.push_str(&format!(" (valid: {})", valid.join(", ")));
        }
    }
    CliError::Usage(text)
}

/// A command's arguments, ready to call.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub params: Vec<Value>,
    pub presentation: Presentation,
    /// Names put into a closed object anyway, so that the API reports them
    /// together with every other problem of the call (SPEC §3: all problems
    /// at once); the CLI adds the suggestion to the API's answer.
    pub unknown: Vec<UnknownName>,
}

fn unknown_option(option: &str) -> CliError {
    CliError::usage(format!(
        "Unknown option `{option}`: commands take --qr, --no-qr, --png FILE and --svg FILE; \
         global options (-m, --url, ...) go before the command"
    ))
}

/// A word of the argument list after `=` joining.
#[derive(Debug)]
enum Arg {
    Named(String, String),
    Positional(String),
}

fn group(words: &[String], presentation: &mut Presentation) -> Result<Vec<Arg>, CliError> {
    let mut args = Vec::new();
    let mut i = 0;
    let value_after = |i: usize, name: &str| -> Result<String, CliError> {
        words
            .get(i)
            .cloned()
            .ok_or_else(|| CliError::usage(format!("Missing value for `{name}`")))
    };
    while i < words.len() {
        let word = &words[i];
        if let Some(option) = word
            .strip_prefix("--")
            .filter(|o| o.starts_with(|c: char| c.is_ascii_alphabetic()))
        {
            let (key, inline) = match option.split_once('=') {
                Some((k, v)) => (k, Some(v.to_owned())),
                None => (option, None),
            };
            match key {
                "qr" | "no-qr" if inline.is_none() => presentation.qr = Some(key == "qr"),
                "png" | "svg" => {
                    let file = match inline {
                        Some(v) => v,
                        None => {
                            i += 1;
                            value_after(i, &format!("--{key}"))?
                        }
                    };
                    if file.is_empty() {
                        return Err(CliError::usage(format!("Missing file name for `--{key}`")));
                    }
                    let slot = if key == "png" {
                        &mut presentation.png
                    } else {
                        &mut presentation.svg
                    };
                    *slot = Some(PathBuf::from(file));
                }
                _ => return Err(unknown_option(&format!("--{key}"))),
            }
            i += 1;
            continue;
        }
        // `-m json` after the command: a global option in the wrong place
        // (`-1` is a number, not an option).
        if word.len() > 1
            && word.starts_with('-')
            && word[1..].starts_with(|c: char| c.is_ascii_alphabetic())
        {
            return Err(unknown_option(word));
        }
        if let Some((name, value)) = split_assignment(word) {
            if value.is_empty() {
                args.push(Arg::Named(name.to_owned(), value_after(i + 1, name)?));
                i += 2;
            } else {
                args.push(Arg::Named(name.to_owned(), value.to_owned()));
                i += 1;
            }
            continue;
        }
        if let Some(next) = words
            .get(i + 1)
            .filter(|n| is_name(word) && n.starts_with('='))
        {
            if next == "=" {
                args.push(Arg::Named(word.clone(), value_after(i + 2, word)?));
                i += 3;
            } else {
                args.push(Arg::Named(word.clone(), next[1..].to_owned()));
                i += 2;
            }
            continue;
        }
        args.push(Arg::Positional(word.clone()));
        i += 1;
    }
    Ok(args)
}

fn unknown(name: &str, valid: &[&str]) -> UnknownName {
    UnknownName {
        name: name.to_owned(),
        suggestion: suggest::nearest(name, valid.iter().copied()).map(str::to_owned),
    }
}

/// Maps `words` (what follows the command name) onto `command`'s params.
pub fn invocation(command: &Command, words: &[String]) -> Result<Invocation, CliError> {
    let mut presentation = Presentation::default();
    let args = group(words, &mut presentation)?;
    if !presentation.is_default() && !command.returns_text() {
        return Err(CliError::usage(format!(
            "`{}` does not return text: --qr, --png and --svg do not apply",
            command.name
        )));
    }
    let mut out = match command.object_param() {
        Some(object) => object_invocation(object, args)?,
        None => positional_invocation(&command.accepts, args)?,
    };
    out.presentation = presentation;
    Ok(out)
}

/// A single object parameter: `name=value` pairs are its properties.
fn object_invocation(object: &Value, args: Vec<Arg>) -> Result<Invocation, CliError> {
    let props = schema::properties(object).cloned().unwrap_or_default();
    let valid: Vec<&str> = props.keys().map(String::as_str).collect();
    let own_name = schema::name(object).unwrap_or_default();
    let mut map = Map::new();
    let mut whole: Option<Value> = None;
    let mut unknowns = Vec::new();
    for arg in args {
        match arg {
            Arg::Named(name, text) => {
                if map.contains_key(&name) {
                    return Err(CliError::usage(format!(
                        "Argument `{name}` given more than once"
                    )));
                }
                match props.get(&name) {
                    Some(s) => {
                        map.insert(name, syntax::value_for(&text, Some(s)));
                    }
                    None if name == own_name && !own_name.is_empty() => {
                        whole = Some(syntax::value_for(&text, Some(object)));
                    }
                    None => {
                        if schema::closed(object) {
                            // Sent on purpose: the API refuses it together
                            // with every other problem of the call, and the
                            // CLI adds the suggestion to that answer.
                            unknowns.push(unknown(&name, &valid));
                        }
                        map.insert(name, syntax::value_for(&text, None));
                    }
                }
            }
            Arg::Positional(text) => {
                if whole.is_some() {
                    return Err(CliError::usage(format!("Too many arguments: `{text}`")));
                }
                whole = Some(syntax::value_for(&text, Some(object)));
            }
        }
    }
    let param = match (whole, map.is_empty()) {
        (None, _) => Value::Object(map),
        (Some(v), true) => v,
        (Some(Value::Object(mut base)), false) => {
            base.extend(map);
            Value::Object(base)
        }
        (Some(_), false) => {
            return Err(CliError::usage(
                "Give either one JSON object or name=value pairs",
            ));
        }
    };
    Ok(Invocation {
        params: vec![param],
        presentation: Presentation::default(),
        unknown: unknowns,
    })
}

/// The name of the argument that takes a code from an authenticator app.
pub const CODE_ARGUMENT: &str = "token";

/// Digits only: one group of a code as apps show it.
fn is_code_group(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// Several parameters: positional words fill them in order, names pick them.
fn positional_invocation(accepts: &[Value], args: Vec<Arg>) -> Result<Invocation, CliError> {
    let valid: Vec<&str> = accepts.iter().filter_map(schema::name).collect();
    let mut slots: Vec<Option<Value>> = vec![None; accepts.len()];
    let mut next = 0;
    let mut last_positional = None;
    for arg in args {
        match arg {
            Arg::Positional(text) => {
                while slots.get(next).is_some_and(Option::is_some) {
                    next += 1;
                }
                // A code typed as apps show it, in groups (`verify 447 862`):
                // the groups are one code.
                if next >= accepts.len()
                    && let Some(Some(Value::String(code))) =
                        last_positional.and_then(|i: usize| slots.get_mut(i))
                    && is_code_group(code)
                    && is_code_group(&text)
                {
                    code.push(' ');
                    code.push_str(&text);
                    continue;
                }
                let Some(schema) = accepts.get(next) else {
                    return Err(CliError::usage(format!(
                        "Too many arguments: `{text}` (expected at most {})",
                        accepts.len()
                    )));
                };
                slots[next] = Some(syntax::value_for(&text, Some(schema)));
                last_positional = (schema::name(schema) == Some(CODE_ARGUMENT)).then_some(next);
                next += 1;
            }
            Arg::Named(name, text) => {
                let Some(i) = accepts
                    .iter()
                    .position(|s| schema::name(s) == Some(name.as_str()))
                else {
                    return Err(unknown_name_error(&unknown(&name, &valid), &valid));
                };
                if slots[i].is_some() {
                    return Err(CliError::usage(format!(
                        "Argument `{name}` given more than once"
                    )));
                }
                slots[i] = Some(syntax::value_for(&text, Some(&accepts[i])));
            }
        }
    }
    // Params are positional on the wire: stop after the last one given and
    // fill gaps before it with their defaults.
    let given = slots.iter().rposition(Option::is_some).map_or(0, |i| i + 1);
    let params = slots
        .into_iter()
        .zip(accepts)
        .take(given)
        .map(|(v, s)| v.unwrap_or_else(|| s.get("default").cloned().unwrap_or(Value::Null)))
        .collect();
    Ok(Invocation {
        params,
        presentation: Presentation::default(),
        unknown: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::tests::sample;
    use serde_json::json;

    fn words(line: &str) -> Vec<String> {
        syntax::split(line).unwrap()
    }

    fn run(cmd: &str, line: &str) -> Result<Invocation, CliError> {
        let tree = sample();
        let ns = tree
            .root
            .child("auth")
            .unwrap()
            .child("two_factor")
            .unwrap();
        invocation(ns.command(cmd).unwrap(), &words(line))
    }

    #[test]
    fn update_pairs_become_the_object() {
        let inv = run(
            "update",
            "enabled=true otp_digits = 8 services={\"ssh\": true}",
        )
        .unwrap();
        assert_eq!(
            inv.params,
            vec![json!({"enabled": true, "otp_digits": 8, "services": {"ssh": true}})]
        );
        assert!(inv.unknown.is_empty());
        let inv = run("update", "enabled= false otp_digits =7").unwrap();
        assert_eq!(inv.params, vec![json!({"enabled": false, "otp_digits": 7})]);
        assert_eq!(run("update", "").unwrap().params, vec![json!({})]);
        let inv = run("update", "{\"enabled\": true}").unwrap();
        assert_eq!(inv.params, vec![json!({"enabled": true})]);
    }

    #[test]
    fn misspelled_names_are_sent_with_a_hint() {
        let inv = run("update", "otp_digits=5 enable=true").unwrap();
        assert_eq!(inv.params, vec![json!({"otp_digits": 5, "enable": true})]);
        assert_eq!(
            inv.unknown,
            vec![UnknownName {
                name: "enable".into(),
                suggestion: Some("enabled".into())
            }]
        );
        assert_eq!(
            inv.unknown[0].hint(),
            "Unknown argument `enable`: did you mean `enabled`?"
        );
        let inv = run("update", "frobnicate=1").unwrap();
        assert_eq!(
            inv.unknown,
            vec![UnknownName {
                name: "frobnicate".into(),
                suggestion: None
            }]
        );
        let err = unknown_name_error(&inv.unknown[0], &["enabled", "otp_digits"]);
        assert_eq!(err.exit_code(), 2);
        assert_eq!(
            err.to_string(),
            "Unknown argument `frobnicate` (valid: enabled, otp_digits)"
        );
    }

    #[test]
    fn string_params_keep_leading_zeros() {
        assert_eq!(
            run("verify", "token=012345").unwrap().params,
            vec![json!("012345")]
        );
        assert_eq!(
            run("verify", "token=123456").unwrap().params,
            vec![json!("123456")]
        );
        assert_eq!(
            run("verify", "token=\"123456\"").unwrap().params,
            vec![json!("123456")]
        );
        assert_eq!(
            run("verify", "012345").unwrap().params,
            vec![json!("012345")]
        );
        assert_eq!(
            run("verify", "token=null").unwrap().params,
            vec![json!(null)]
        );
        assert_eq!(run("verify", "").unwrap().params, Vec::<Value>::new());
    }

    #[test]
    fn usage_errors() {
        for (cmd, line) in [
            ("verify", "1 x"),
            ("verify", "token=1 2"),
            ("verify", "token=1 token=2"),
            ("verify", "tokn=1 x=2"),
            ("verify", "token="),
            ("verify", "--qr"),
            ("provisioning_uri", "--png"),
            ("provisioning_uri", "--bogus"),
            ("update", "-m json"),
            ("update", "enabled=true enabled=false"),
        ] {
            let err = run(cmd, line).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{cmd} {line}: {err}");
        }
        // The groups of a code as an app shows it are one code.
        assert_eq!(
            run("verify", "447 862").unwrap().params,
            vec![json!("447 862")]
        );
        let err = run("verify", "tokn=1").unwrap_err().to_string();
        assert_eq!(err, "Unknown argument `tokn`: did you mean `token`?");
    }

    #[test]
    fn presentation_options() {
        let inv = run("provisioning_uri", "--qr --png a.png --svg=b.svg").unwrap();
        assert_eq!(
            inv.presentation,
            Presentation {
                qr: Some(true),
                png: Some("a.png".into()),
                svg: Some("b.svg".into())
            }
        );
        assert!(inv.params.is_empty());
        assert_eq!(
            run("provisioning_uri", "--no-qr").unwrap().presentation.qr,
            Some(false)
        );
    }
}
