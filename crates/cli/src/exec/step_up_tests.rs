//! `tfa` on a call refused until a current code is proved (step-up).

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::{Value, json};

use super::*;

type Calls = Rc<RefCell<Vec<(String, Vec<Value>)>>>;

/// The real API in-process, but `user.provisioning_uri` is refused with
/// the step-up error until `user.verify_twofactor_token` got `123456`.
struct Guarded {
    inner: crate::backend::Embedded,
    calls: Calls,
    proved: bool,
}

impl Backend for Guarded {
    fn call(&mut self, method: &str, params: Vec<Value>) -> Result<Value, CallError> {
        self.calls
            .borrow_mut()
            .push((method.to_owned(), params.clone()));
        match method {
            "user.verify_twofactor_token" => {
                self.proved = params.get(1) == Some(&json!("123456"));
                Ok(json!(self.proved))
            }
            "user.provisioning_uri" if !self.proved => {
                Err(CallError::Rpc(Box::new(wire::RpcError::call(
                    wire::STEP_UP_ERRNO,
                    &format!("root: {}", wire::STEP_UP_REQUIRED),
                ))))
            }
            _ => self.inner.call(method, params),
        }
    }
    fn hostname(&self) -> String {
        self.inner.hostname()
    }
    fn cli_methods(&mut self, service: &str) -> Result<(Value, bool), CallError> {
        self.inner.cli_methods(service)
    }
    fn describe_cli_method(&mut self, service: &str, method: &str) -> Result<Value, CallError> {
        self.inner.describe_cli_method(service, method)
    }
}

fn engine() -> (Engine, Calls, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut config = api::host::Config::defaults();
    config.state_dir = dir.path().join("state");
    let calls = Calls::default();
    let backend = Guarded {
        inner: crate::backend::Embedded::open(&config).expect("embedded state"),
        calls: calls.clone(),
        proved: false,
    };
    let mut e = Engine::new(Box::new(backend), Mode::Table);
    let mut out = Vec::new();
    e.run_line("auth two_factor update enabled=true", false, &mut out)
        .expect("enable");
    (e, calls, dir)
}

fn run(e: &mut Engine, line: &str) -> Result<String, CliError> {
    let mut out = Vec::new();
    e.run_line(line, false, &mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn called(calls: &Calls, method: &str) -> Vec<Vec<Value>> {
    calls
        .borrow()
        .iter()
        .filter(|(m, _)| m == method)
        .map(|(_, p)| p.clone())
        .collect()
}

#[test]
fn on_a_terminal_the_code_is_asked_proved_and_the_call_made_again() {
    let (mut e, calls, _d) = engine();
    let asked = Rc::new(RefCell::new(0));
    let count = asked.clone();
    e.code_prompt = Some(Box::new(move |_| {
        *count.borrow_mut() += 1;
        Ok(" 123456 ".to_owned())
    }));
    let out =
        run(&mut e, "account user provisioning_uri username=root").expect("retried after the code");
    assert!(out.contains("otpauth://"), "{out}");
    assert_eq!(*asked.borrow(), 1);
    assert_eq!(called(&calls, "user.provisioning_uri").len(), 2);
    assert_eq!(
        called(&calls, "user.verify_twofactor_token"),
        [vec![json!("root"), json!("123456")]]
    );
}

#[test]
fn a_wrong_code_is_said_and_the_call_not_made_again() {
    let (mut e, calls, _d) = engine();
    e.code_prompt = Some(Box::new(|_| Ok("000000".to_owned())));
    let err = run(&mut e, "account user provisioning_uri username=root").unwrap_err();
    assert!(err.to_string().contains("not a current code"), "{err}");
    assert_eq!(called(&calls, "user.provisioning_uri").len(), 1);
}

#[test]
fn without_a_terminal_the_refusal_is_printed() {
    let (mut e, calls, _d) = engine();
    let err = run(&mut e, "account user provisioning_uri username=root").unwrap_err();
    assert!(err.to_string().contains(wire::STEP_UP_REQUIRED), "{err}");
    assert!(called(&calls, "user.verify_twofactor_token").is_empty());
}
