//! Output modes: `table` (midcli's look), `csv`, `json`.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use comfy_table::{CellAlignment, ContentArrangement, Table};
use serde_json::{Map, Value};

/// How results are printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    #[default]
    Table,
    Csv,
    Json,
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "table" => Ok(Self::Table),
            "csv" => Ok(Self::Csv),
            "json" => Ok(Self::Json),
            other => Err(format!("Unknown mode `{other}` (table, csv or json)")),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Table => "table",
            Self::Csv => "csv",
            Self::Json => "json",
        })
    }
}

/// ASCII borders, `-` under a header, no lines between rows.
const STYLE: &str = "||--+-++|    ++++++";

/// A result as text in `mode`, newline-terminated; empty for nothing to show.
///
/// Human modes (table, csv) show every control character of a value or key
/// as a visible escape (see [`escape_controls`]): text from the server (a
/// user name in an audit record) can never move the cursor, clear the
/// screen or forge a row. JSON escapes them by itself.
pub fn render(value: &Value, mode: Mode) -> String {
    let mut text = match mode {
        Mode::Json => serde_json::to_string_pretty(value).unwrap_or_default(),
        Mode::Table => table(value),
        Mode::Csv => return csv(value),
    };
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// Control characters as visible escapes: `\r`, `\n`, `\t`, `\x1b` (and any
/// other C0/C1 control or DEL as `\xNN`), and the Unicode line separators and
/// bidirectional overrides as `\u202e`. Everything else, backslashes
/// included, is shown as it is.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    let special = |c: char| {
        c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}')
            || ('\u{202a}'..='\u{202e}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
    };
    if !text.contains(special) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if special(c) && u32::from(c) < 0x100 => {
                out.push_str(&format!("\\x{:02x}", u32::from(c)));
            }
            c if special(c) => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A value inside a table cell: `<null>`, `<dict>`, `<list>`, `<empty list>`.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "<null>".to_owned(),
        Value::String(s) => escape_controls(s).into_owned(),
        Value::Array(a) if a.is_empty() => "<empty list>".to_owned(),
        Value::Array(_) => "<list>".to_owned(),
        Value::Object(_) => "<dict>".to_owned(),
        other => other.to_string(),
    }
}

/// A nested value as one line a person reads: `key=value` pairs joined by
/// `, `, lists joined by `,`, nested objects in braces. Used for the
/// `detail` of audit records in a table, where `<dict>` would hide what
/// happened.
pub fn readable(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(readable_inner)
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}={}", readable_inner(v)))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

fn readable_inner(value: &Value) -> String {
    match value {
        Value::Object(_) => format!("{{{}}}", readable(value)),
        Value::Array(items) if items.is_empty() => "[]".to_owned(),
        Value::Array(_) => format!("[{}]", readable(value)),
        Value::Null => "null".to_owned(),
        other => readable(other),
    }
}

/// Audit records (`audit.query`) for a table: each `detail` as readable
/// text ([`readable`]) instead of `<dict>`.
pub fn audit_details_readable(records: Value) -> Value {
    match records {
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|mut item| {
                    if let Some(d) = item.get_mut("detail")
                        && (d.is_object() || d.is_array())
                    {
                        *d = Value::String(readable(d));
                    }
                    item
                })
                .collect(),
        ),
        other => other,
    }
}

fn new_table() -> Table {
    let mut t = Table::new();
    t.load_preset(STYLE)
        .set_content_arrangement(ContentArrangement::Disabled)
        .force_no_tty();
    t
}

fn table(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Object(map) => object_table(map),
        Value::Array(items) if items.is_empty() => cell(value),
        Value::Array(items) if items.iter().all(Value::is_object) => rows_table(items),
        Value::Array(items) => {
            let mut t = new_table();
            for item in items {
                t.add_row(vec![cell(item)]);
            }
            t.to_string()
        }
        scalar => cell(scalar),
    }
}

/// Header-less: keys right-aligned, values left-aligned, in the API's order.
fn object_table(map: &Map<String, Value>) -> String {
    if map.is_empty() {
        return "<empty dict>".to_owned();
    }
    let mut t = new_table();
    for (k, v) in map {
        t.add_row(vec![escape_controls(k).into_owned(), cell(v)]);
    }
    if let Some(c) = t.column_mut(0) {
        c.set_cell_alignment(CellAlignment::Right);
    }
    t.to_string()
}

/// The columns of a list of objects, as midcli orders them: each object's
/// keys in its order, a key first seen later going right after the key that
/// precedes it in that object.
fn columns(items: &[Value]) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for item in items.iter().filter_map(Value::as_object) {
        let mut prev: Option<&String> = None;
        for k in item.keys() {
            if !keys.contains(k) {
                let at = prev
                    .and_then(|p| keys.iter().position(|x| x == p))
                    .map_or(keys.len(), |i| i + 1);
                keys.insert(at, k.clone());
            }
            prev = Some(k);
        }
    }
    keys
}

/// What a row shows for a key its object lacks (midcli's word).
const UNDEFINED: &str = "<undefined>";

/// One row per object, a header of the columns (midcli's PrettyTable).
fn rows_table(items: &[Value]) -> String {
    let keys = columns(items);
    let mut t = new_table();
    t.set_header(keys.iter().map(|k| escape_controls(k).into_owned()));
    for item in items {
        t.add_row(
            keys.iter()
                .map(|k| item.get(k).map_or_else(|| UNDEFINED.to_owned(), cell))
                .collect::<Vec<_>>(),
        );
    }
    t.to_string()
}

/// Python's `json.dumps` with its default separators (`", "`, `": "`),
/// which midcli uses for nested values in csv.
fn python_json(value: &Value) -> String {
    match value {
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(python_json).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{}: {}", python_str(k), python_json(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::String(s) => python_str(s),
        other => other.to_string(),
    }
}

/// A JSON string as `json.dumps` writes it by default (`ensure_ascii`):
/// everything beyond ASCII as `\uXXXX`, in UTF-16 units.
fn python_str(s: &str) -> String {
    let json = Value::String(s.to_owned()).to_string();
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            for unit in c.encode_utf16(&mut [0; 2]) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// A value as midcli's csv mode writes it, before quoting: `<null>`,
/// `<empty list>`, a list of scalars one per line, nested values as JSON.
fn csv_text(value: &Value) -> String {
    match value {
        Value::Null => "<null>".to_owned(),
        Value::String(s) => escape_controls(s).into_owned(),
        Value::Array(a) if a.is_empty() => "<empty list>".to_owned(),
        Value::Array(a) if a.iter().all(|v| !v.is_array() && !v.is_object()) => {
            a.iter().map(csv_text).collect::<Vec<_>>().join("\n")
        }
        Value::Bool(_) | Value::Number(_) => value.to_string(),
        nested => escape_controls(&python_json(nested)).into_owned(),
    }
}

/// A field quoted as Python's `csv` module does by default: only when it
/// holds a comma, a quote or a line break; quotes doubled.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// A csv row, ended as Python's `csv` module ends it: `\r\n`.
fn csv_line(fields: impl IntoIterator<Item = String>) -> String {
    let mut line = fields.into_iter().collect::<Vec<_>>().join(",");
    line.push_str("\r\n");
    line
}

/// midcli's csv mode, byte for byte: an object or a list of objects is a
/// header row and one row per object, followed by an empty line (midcli
/// prints the csv text, which ends its last row, with `print`).
fn csv(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Object(map) if map.is_empty() => "\n".to_owned(),
        Value::Object(_) => csv_rows(std::slice::from_ref(value)),
        Value::Array(items) if items.is_empty() => "\n".to_owned(),
        Value::Array(items) if items.first().is_some_and(Value::is_object) => csv_rows(items),
        Value::Array(items) => {
            let mut out = items.iter().map(csv_text).collect::<Vec<_>>().join("\n");
            out.push('\n');
            out
        }
        scalar => format!("{}\n", csv_text(scalar)),
    }
}

fn csv_rows(items: &[Value]) -> String {
    let keys = columns(items);
    if keys.is_empty() {
        return format!(
            "None of the specified fields found among {} object(s)\n",
            items.len()
        );
    }
    let mut out = csv_line(keys.iter().map(|k| csv_field(&escape_controls(k))));
    for item in items {
        out.push_str(&csv_line(keys.iter().map(|k| {
            csv_field(&item.get(k).map_or_else(|| UNDEFINED.to_owned(), csv_text))
        })));
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry() -> Value {
        json!({"id": 1, "otp_digits": 6, "secret": null, "window": 0, "interval": 30,
               "services": {"ssh": false}, "enabled": false})
    }

    #[test]
    fn the_seed_table() {
        let expected = "\
+------------+--------+
|         id | 1      |
| otp_digits | 6      |
|     secret | <null> |
|     window | 0      |
|   interval | 30     |
|   services | <dict> |
|    enabled | false  |
+------------+--------+
";
        assert_eq!(render(&entry(), Mode::Table), expected);
    }

    #[test]
    fn audit_detail_reads_as_text() {
        let records = json!([
            {"id": 2, "detail": {"changed": ["enabled", "window"], "secret_generated": true}},
            {"id": 1, "detail": {"failed_logins": {"unix:uid=1000": 5}, "note": null, "x": []}},
            {"id": 0, "detail": null},
        ]);
        let shown = audit_details_readable(records);
        assert_eq!(
            shown[0]["detail"],
            "changed=[enabled,window], secret_generated=true"
        );
        assert_eq!(
            shown[1]["detail"],
            "failed_logins={unix:uid=1000=5}, note=null, x=[]"
        );
        assert_eq!(shown[2]["detail"], Value::Null);
        let table = render(&shown, Mode::Table);
        assert!(!table.contains("<dict>"), "{table}");
        assert!(table.contains("secret_generated=true"), "{table}");
    }

    #[test]
    fn cells() {
        assert_eq!(cell(&json!([])), "<empty list>");
        assert_eq!(cell(&json!([1])), "<list>");
        assert_eq!(cell(&json!({})), "<dict>");
        assert_eq!(cell(&json!("text")), "text");
        assert_eq!(cell(&json!(true)), "true");
        assert_eq!(cell(&json!(null)), "<null>");
    }

    #[test]
    fn scalars_print_alone() {
        assert_eq!(render(&json!(true), Mode::Table), "true\n");
        assert_eq!(render(&json!("otpauth://x"), Mode::Table), "otpauth://x\n");
        assert_eq!(render(&json!(null), Mode::Table), "");
        assert_eq!(render(&json!(false), Mode::Csv), "false\n");
    }

    #[test]
    fn lists_of_objects_have_a_header() {
        // Columns as midcli orders them: `extra` follows `event`, the key
        // before it in its object; a missing key is `<undefined>`.
        let rows =
            json!([{"id": 2, "event": "a", "detail": null}, {"id": 1, "event": "b", "extra": [1]}]);
        let expected = "\
+----+-------+-------------+-------------+
| id | event | extra       | detail      |
+----+-------+-------------+-------------+
| 2  | a     | <undefined> | <null>      |
| 1  | b     | <list>      | <undefined> |
+----+-------+-------------+-------------+
";
        assert_eq!(render(&rows, Mode::Table), expected);
        assert_eq!(render(&json!([]), Mode::Table), "<empty list>\n");
        assert_eq!(
            render(&json!(["a", 1]), Mode::Table),
            "+---+\n| a |\n| 1 |\n+---+\n"
        );
    }

    #[test]
    fn csv_is_midclis() {
        assert_eq!(
            render(&entry(), Mode::Csv),
            "id,otp_digits,secret,window,interval,services,enabled\r\n\
             1,6,<null>,0,30,\"{\"\"ssh\"\": false}\",false\r\n\n"
        );
        assert_eq!(
            render(
                &json!([{"a": 1, "b": "x,y"}, {"a": 2, "c": {"k": [1, "é"]}}]),
                Mode::Csv
            ),
            "a,c,b\r\n1,<undefined>,\"x,y\"\r\n2,\"{\"\"k\"\": [1, \"\"\\u00e9\"\"]}\",<undefined>\r\n\n"
        );
        assert_eq!(
            render(&json!({"l": ["x", "y"], "e": [], "f": 1.5}), Mode::Csv),
            "l,e,f\r\n\"x\ny\",<empty list>,1.5\r\n\n"
        );
        assert_eq!(render(&json!({}), Mode::Csv), "\n");
        assert_eq!(render(&json!([]), Mode::Csv), "\n");
        assert_eq!(render(&json!(["a", null]), Mode::Csv), "a\n<null>\n");
        assert_eq!(render(&json!("otpauth://x"), Mode::Csv), "otpauth://x\n");
    }

    #[test]
    fn json_and_modes() {
        assert_eq!(
            render(&json!({"a": [1]}), Mode::Json),
            "{\n  \"a\": [\n    1\n  ]\n}\n"
        );
        assert_eq!("csv".parse::<Mode>(), Ok(Mode::Csv));
        assert!("xml".parse::<Mode>().is_err());
    }

    #[test]
    fn control_characters_are_shown_escaped_in_human_modes() {
        let evil = "\u{1b}[2J\u{7}root\r| 9 | forged\n\t\u{9b}\u{202e}x\\y";
        let shown = "\\x1b[2J\\x07root\\r| 9 | forged\\n\\t\\x9b\\u202ex\\y";
        assert_eq!(escape_controls(evil), shown);
        assert!(matches!(escape_controls("plain ü"), Cow::Borrowed(_)));
        let rows = json!([{"user": evil, "k\u{1b}": {"n": evil}}]);
        for mode in [Mode::Table, Mode::Csv] {
            let out = render(&rows, mode);
            assert!(
                !out.contains(
                    |c: char| (c.is_control() && c != '\n' && c != '\r') || c == '\u{202e}'
                ),
                "{mode}: {out:?}"
            );
            assert!(out.contains(shown), "{mode}: {out}");
            assert!(out.contains("k\\x1b"), "{mode}: {out}");
        }
        // Only the csv's own line ends remain.
        let csv = render(&rows, Mode::Csv);
        assert_eq!(csv.matches('\n').count(), 3, "{csv:?}");
        assert_eq!(
            render(&json!({"name": evil}), Mode::Table).lines().count(),
            3
        );
        assert_eq!(render(&json!(evil), Mode::Table), format!("{shown}\n"));
        // JSON escapes by itself.
        assert!(!render(&rows, Mode::Json).contains('\u{1b}'));
    }
}
