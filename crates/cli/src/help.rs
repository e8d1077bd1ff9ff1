//! `help`, `ls` and `man` texts. Everything about a command comes from its
//! introspected description and schemas.

use crate::schema;
use crate::tree::{Command, Namespace};

/// The `help` text.
pub fn general() -> String {
    "\
Usage: [NAMESPACE ...] COMMAND [VALUE ...] [NAME=VALUE ...]

  NAMESPACE                enter a namespace (e.g. `auth two_factor`)
  ..  /                    go up one namespace / to the top
  ls [NAMESPACE]           list namespaces and commands (also NAMESPACE ls)
  man COMMAND              describe a command: arguments, types, ranges, defaults, examples
  .mode table|csv|json     choose the output format
  call METHOD [JSON ...]   call an API method directly and print its JSON result
  help, ?                  show this text
  exit, quit               leave the shell

A value is JSON (true, 8, null, \"text\", {\"ssh\": true}) or a bare word;
`name = value` may have spaces around `=`. Quote with '...' or \"...\".
Text results take --qr (draw a QR code), --no-qr, --png FILE and --svg FILE.
Table and csv output show control characters escaped (\\x1b, \\r, \\n, \\t).
Tab completes namespaces, commands, argument names and values.
"
    .to_owned()
}

fn columns(rows: &[(String, String)]) -> String {
    let width = rows
        .iter()
        .map(|(n, _)| n.chars().count())
        .max()
        .unwrap_or(0);
    rows.iter()
        .map(|(n, d)| {
            if d.is_empty() {
                format!("{n}\n")
            } else {
                format!("{n:<width$}  {d}\n")
            }
        })
        .collect()
}

/// `ls`: child namespaces, then commands, with one-line descriptions.
pub fn listing(ns: &Namespace) -> String {
    let rows: Vec<(String, String)> = ns
        .children
        .iter()
        .map(|c| (c.name.clone(), c.description.clone()))
        .chain(
            ns.commands
                .iter()
                .map(|c| (c.name.clone(), c.summary.clone())),
        )
        .collect();
    columns(&rows)
}

/// `man NAMESPACE`: its description and contents.
pub fn namespace_manual(ns: &Namespace) -> String {
    let mut out = String::new();
    if !ns.description.is_empty() {
        out.push_str(&ns.description);
        out.push_str("\n\n");
    }
    out.push_str(&listing(ns));
    out
}

/// Wraps `text` at 76 columns, indented by 4.
fn paragraph(text: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > 72 {
            out.push_str(&format!("    {line}\n"));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(&format!("    {line}\n"));
    }
    out
}

/// `man COMMAND`.
pub fn manual(c: &Command) -> String {
    let mut out = format!(
        "NAME\n    {} - {}\n\n",
        c.full_name(),
        if c.summary.is_empty() {
            &c.method
        } else {
            &c.summary
        }
    );
    let args = c.argument_names();
    let object = c.object_param();
    let is_required = |name: &str, s: &client::wire::JsonSchema| match object {
        Some(o) => o.property_required(name),
        None => s.must_be_given(),
    };
    let mut synopsis = vec![c.full_name()];
    for (name, s) in &args {
        let item = format!("{name}=<{}>", schema::type_name(s));
        synopsis.push(if is_required(name, s) {
            item
        } else {
            format!("[{item}]")
        });
    }
    if c.returns_text() {
        synopsis.push("[--qr|--no-qr] [--png FILE] [--svg FILE]".into());
    }
    out.push_str(&format!("SYNOPSIS\n    {}\n\n", synopsis.join(" ")));
    if !c.description.is_empty() {
        out.push_str("DESCRIPTION\n");
        out.push_str(&paragraph(&c.description));
        out.push('\n');
    }
    if !args.is_empty() {
        out.push_str("ARGUMENTS\n");
        if object.is_none() {
            out.push_str("    (by name, or positional in this order)\n");
        }
        for (name, s) in &args {
            let required = if is_required(name, s) {
                ", required"
            } else {
                ""
            };
            out.push_str(&format!("    {name}  ({}{required})\n", schema::summary(s)));
            let d = schema::description(s);
            if !d.is_empty() {
                out.push_str(&format!("        {d}\n"));
            }
        }
        out.push('\n');
    }
    if c.returns_text() {
        out.push_str(
            "OPTIONS\n    --qr         draw the result as a QR code (default for an otpauth:// URI on a terminal)\n    \
             --no-qr      do not draw it\n    --png FILE   write the QR code as a PNG image\n    \
             --svg FILE   write the QR code as an SVG image\n\n",
        );
    }
    if !c.examples.is_empty() {
        out.push_str("EXAMPLES\n");
        for e in &c.examples {
            out.push_str(&format!("    {e}\n"));
        }
        out.push('\n');
    }
    out.push_str(&format!("API METHOD\n    {}\n", c.method));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::tests::sample;

    #[test]
    fn man_shows_types_ranges_defaults() {
        let t = sample();
        let tf = t.root.child("auth").unwrap().child("two_factor").unwrap();
        let m = manual(tf.command("update").unwrap());
        assert!(
            m.starts_with("NAME\n    auth two_factor update - Change\n"),
            "{m}"
        );
        assert!(
            m.contains("otp_digits  (integer, 6 to 8, default 6)"),
            "{m}"
        );
        assert!(m.contains("[enabled=<boolean>]"), "{m}");
        let m = manual(tf.command("verify").unwrap());
        assert!(
            m.contains("token=<string|null>") && !m.contains("[token"),
            "{m}"
        );
        assert!(m.contains("token  (string|null, required)"), "{m}");
        assert!(manual(tf.command("provisioning_uri").unwrap()).contains("--png FILE"));
        let l = listing(tf);
        assert!(
            l.starts_with("config            Show the 2FA settings\n"),
            "{l}"
        );
        assert!(listing(&t.root).starts_with("auth  Authentication\n"));
    }
}
