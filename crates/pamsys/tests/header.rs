//! The declarations of this crate against Linux-PAM's own header: a small C
//! program compiled with the system's C compiler prints every constant, and
//! the size and field offsets of every struct, as the header defines them;
//! each must equal the Rust declaration.

#![allow(clippy::expect_used, reason = "test: a failure is a test failure")]

use std::collections::BTreeMap;
use std::mem::{offset_of, size_of};
use std::path::Path;
use std::process::Command;

use pamsys::*;

const HEADER: &str = "/usr/include/security/_pam_types.h";

/// The constants checked, by their C name.
const CONSTANTS: &[(&str, i32)] = &[
    ("PAM_SUCCESS", PAM_SUCCESS),
    ("PAM_BUF_ERR", PAM_BUF_ERR),
    ("PAM_AUTH_ERR", PAM_AUTH_ERR),
    ("PAM_CONV_ERR", PAM_CONV_ERR),
    ("PAM_IGNORE", PAM_IGNORE),
    ("PAM_SERVICE", PAM_SERVICE),
    ("PAM_RHOST", PAM_RHOST),
    ("PAM_CONV", PAM_CONV),
    ("PAM_FAIL_DELAY", PAM_FAIL_DELAY),
    ("PAM_SILENT", PAM_SILENT),
    ("PAM_DISALLOW_NULL_AUTHTOK", PAM_DISALLOW_NULL_AUTHTOK),
    ("PAM_PROMPT_ECHO_OFF", PAM_PROMPT_ECHO_OFF),
    ("PAM_PROMPT_ECHO_ON", PAM_PROMPT_ECHO_ON),
    ("PAM_ERROR_MSG", PAM_ERROR_MSG),
    ("PAM_TEXT_INFO", PAM_TEXT_INFO),
    ("PAM_MAX_NUM_MSG", PAM_MAX_NUM_MSG),
];

/// Layout facts, by the name the C program prints them under.
fn layout() -> Vec<(&'static str, usize)> {
    vec![
        ("sizeof(struct pam_message)", size_of::<PamMessage>()),
        (
            "offsetof(struct pam_message, msg_style)",
            offset_of!(PamMessage, msg_style),
        ),
        (
            "offsetof(struct pam_message, msg)",
            offset_of!(PamMessage, msg),
        ),
        ("sizeof(struct pam_response)", size_of::<PamResponse>()),
        (
            "offsetof(struct pam_response, resp)",
            offset_of!(PamResponse, resp),
        ),
        (
            "offsetof(struct pam_response, resp_retcode)",
            offset_of!(PamResponse, resp_retcode),
        ),
        ("sizeof(struct pam_conv)", size_of::<PamConv>()),
        ("offsetof(struct pam_conv, conv)", offset_of!(PamConv, conv)),
        (
            "offsetof(struct pam_conv, appdata_ptr)",
            offset_of!(PamConv, appdata_ptr),
        ),
    ]
}

/// The C program: one `NAME<TAB>VALUE` line per constant and layout fact.
fn program() -> String {
    let mut c = String::from(
        "#include <stddef.h>\n#include <stdio.h>\n#include <security/_pam_types.h>\nint main(void) {\n",
    );
    for (name, _) in CONSTANTS {
        c.push_str(&format!(
            "  printf(\"%s\\t%ld\\n\", \"{name}\", (long)({name}));\n"
        ));
    }
    for (name, _) in layout() {
        c.push_str(&format!("  printf(\"%s\\t%zu\\n\", \"{name}\", {name});\n"));
    }
    c.push_str("  return 0;\n}\n");
    c
}

/// A missing compiler or header fails the test, as any missing tool does,
/// unless TFA_SKIP_EXTERNAL=1.
fn unavailable(what: String) -> bool {
    if std::env::var("TFA_SKIP_EXTERNAL").as_deref() == Ok("1") {
        eprintln!("SKIPPED (TFA_SKIP_EXTERNAL=1): {what}");
        return true;
    }
    panic!("{what}; set TFA_SKIP_EXTERNAL=1 to skip");
}

#[test]
fn constants_and_struct_layouts_match_the_linux_pam_header() {
    if !Path::new(HEADER).exists()
        && unavailable(format!(
            "{HEADER} is missing (apt: libpam0g-dev, which scripts/test installs)"
        ))
    {
        return;
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pamsys-header");
    std::fs::create_dir_all(&dir).expect("create the build directory");
    let source = dir.join("check.c");
    let binary = dir.join("check");
    std::fs::write(&source, program()).expect("write check.c");
    let compiled = match Command::new("cc")
        .arg("-o")
        .arg(&binary)
        .arg(&source)
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            if unavailable(format!("cc: {e} (apt: gcc)")) {
                return;
            }
            unreachable!()
        }
    };
    assert!(
        compiled.status.success(),
        "cc failed:\n{}",
        String::from_utf8_lossy(&compiled.stderr)
    );
    let out = Command::new(&binary)
        .output()
        .expect("run the compiled check");
    assert!(out.status.success(), "the compiled check failed");
    let printed: BTreeMap<String, i64> = String::from_utf8(out.stdout)
        .expect("UTF-8 output")
        .lines()
        .map(|l| {
            let (name, value) = l.split_once('\t').expect("NAME<TAB>VALUE");
            (name.to_owned(), value.parse().expect("a number"))
        })
        .collect();

    let ours = CONSTANTS
        .iter()
        .map(|&(name, v)| (name, i64::from(v)))
        .chain(
            layout()
                .into_iter()
                .map(|(name, v)| (name, i64::try_from(v).expect("a small size"))),
        );
    let mut checked = 0;
    for (name, value) in ours {
        assert_eq!(
            printed.get(name),
            Some(&value),
            "{name}: the header says otherwise"
        );
        checked += 1;
    }
    assert_eq!(checked, printed.len(), "every printed line was compared");
}
