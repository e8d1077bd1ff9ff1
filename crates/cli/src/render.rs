//! Output modes (SPEC §4.3): `table` (midcli's look), `csv`, `json`.

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
pub fn render(value: &Value, mode: Mode) -> String {
    let mut text = match mode {
        Mode::Json => serde_json::to_string_pretty(value).unwrap_or_default(),
        Mode::Table => table(value),
        Mode::Csv => csv(value),
    };
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// A value inside a table cell: `<null>`, `<dict>`, `<list>`, `<empty list>`.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "<null>".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(a) if a.is_empty() => "<empty list>".to_owned(),
        Value::Array(_) => "<list>".to_owned(),
        Value::Object(_) => "<dict>".to_owned(),
        other => other.to_string(),
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
        t.add_row(vec![k.clone(), cell(v)]);
    }
    if let Some(c) = t.column_mut(0) {
        c.set_cell_alignment(CellAlignment::Right);
    }
    t.to_string()
}

/// The union of the objects' keys, in order of first appearance.
fn columns(items: &[Value]) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for item in items.iter().filter_map(Value::as_object) {
        for k in item.keys() {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
    }
    keys
}

fn rows_table(items: &[Value]) -> String {
    let keys = columns(items);
    let mut t = new_table();
    t.set_header(keys.clone());
    for item in items {
        t.add_row(
            keys.iter()
                .map(|k| item.get(k).map(cell).unwrap_or_default())
                .collect::<Vec<_>>(),
        );
    }
    t.to_string()
}

/// A CSV field: nested values as JSON text, null empty, quoted when needed.
fn csv_field(value: &Value) -> String {
    let text = match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

fn csv_line(fields: impl IntoIterator<Item = String>) -> String {
    let mut line = fields.into_iter().collect::<Vec<_>>().join(",");
    line.push('\n');
    line
}

fn csv(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| csv_line([csv_field(&Value::String(k.clone())), csv_field(v)]))
            .collect(),
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
            let keys = columns(items);
            let mut out = csv_line(keys.iter().map(|k| csv_field(&Value::String(k.clone()))));
            for item in items {
                out.push_str(&csv_line(
                    keys.iter()
                        .map(|k| item.get(k).map(csv_field).unwrap_or_default()),
                ));
            }
            out
        }
        Value::Array(items) => items.iter().map(|v| csv_line([csv_field(v)])).collect(),
        scalar => csv_line([csv_field(scalar)]),
    }
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
        let rows =
            json!([{"id": 2, "event": "a", "detail": null}, {"id": 1, "event": "b", "extra": [1]}]);
        let expected = "\
+----+-------+--------+--------+
| id | event | detail | extra  |
+----+-------+--------+--------+
| 2  | a     | <null> |        |
| 1  | b     |        | <list> |
+----+-------+--------+--------+
";
        assert_eq!(render(&rows, Mode::Table), expected);
        assert_eq!(render(&json!([]), Mode::Table), "<empty list>\n");
        assert_eq!(
            render(&json!(["a", 1]), Mode::Table),
            "+---+\n| a |\n| 1 |\n+---+\n"
        );
    }

    #[test]
    fn csv_and_json() {
        assert_eq!(
            render(&entry(), Mode::Csv),
            "id,1\notp_digits,6\nsecret,\nwindow,0\ninterval,30\nservices,\"{\"\"ssh\"\":false}\"\nenabled,false\n"
        );
        assert_eq!(
            render(&json!([{"a": 1, "b": "x,y"}]), Mode::Csv),
            "a,b\n1,\"x,y\"\n"
        );
        assert_eq!(
            render(&json!({"a": [1]}), Mode::Json),
            "{\n  \"a\": [\n    1\n  ]\n}\n"
        );
        assert_eq!("csv".parse::<Mode>(), Ok(Mode::Csv));
        assert!("xml".parse::<Mode>().is_err());
    }
}
