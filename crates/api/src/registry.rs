//! The method table: names, access rules, parameter schemas, descriptions.

use std::sync::{Arc, OnceLock};

use serde_json::Value;

use crate::schema::{Field, Problem, Schema};
use crate::typed::{Answer, Outcome, Params, Reply};
use crate::{Api, ApiError, Session};

/// Who may call a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Before login (`core.ping`, `auth.login_ex`, ...).
    Public,
    /// Any logged-in user.
    User,
    /// A logged-in administrator.
    Admin,
    /// Root over the Unix socket only (the PAM module's private methods).
    RootLocal,
}

/// Whom introspection describes the API for (TrueNAS's `target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Target {
    Ws,
    Cli,
    Rest,
}

impl Target {
    pub const NAMES: &'static [&'static str] = &["WS", "CLI", "REST"];
}

impl crate::typed::Described for Target {
    fn schema() -> Schema {
        Schema::Choice(Self::NAMES)
    }
}

/// `config` services have one entry; `service` ones are plain method groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKind {
    Config,
    Service,
}

/// A service: a group of methods sharing a name prefix.
#[derive(Debug, Clone)]
pub struct ServiceDef {
    pub name: &'static str,
    pub kind: ServiceKind,
    /// Dotted CLI path (`auth.two_factor`); `None` keeps it out of the CLI.
    pub cli_namespace: Option<&'static str>,
    pub cli_description: &'static str,
    pub private: bool,
}

/// A method's handler behind its typed parameters: takes the values that
/// passed [`Method::validate`].
pub(crate) type Handler =
    Arc<dyn Fn(&Api, &Session, &Method, Vec<Value>) -> Answer<Outcome> + Send + Sync>;

/// One API method.
#[derive(Clone)]
pub struct Method {
    pub name: &'static str,
    pub description: &'static str,
    pub cli_description: &'static str,
    /// Example CLI invocations, shown by `man`.
    pub examples: &'static [&'static str],
    pub access: Access,
    /// Hidden from introspection and the CLI.
    pub private: bool,
    /// Kept out of the CLI (still callable with `tfa call`).
    pub cli_private: bool,
    /// Cheap enough for a transport's event loop: in-memory work and at most
    /// a cached read. Everything else (password checks, SQLite writes with
    /// their fsync) may block and runs off the event loop.
    pub inline: bool,
    /// Validation attributes start with the method name, `.` as `_`
    /// (`user_renew_2fa_secret.twofactor_options.interval`).
    pub validation_prefix: bool,
    /// Set with the handler (`Method::handles`), from its parameter type;
    /// built when first needed (a one-shot `tfa` needs one method's).
    pub(crate) accepts: Arc<OnceLock<Vec<Field>>>,
    pub(crate) accepts_of: fn() -> Vec<Field>,
    /// The result's schema, built when the method is described: set with
    /// the handler (`Method::handles`), from its result type.
    pub returns: fn() -> Schema,
    pub(crate) handler: Handler,
    /// Only the conversion of validated values into the handler's
    /// parameter type (for the tests that hold schema and type together).
    #[cfg(test)]
    pub(crate) parse: fn(&Method, Vec<Value>) -> Result<(), ApiError>,
}

impl std::fmt::Debug for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Method")
            .field("name", &self.name)
            .field("access", &self.access)
            .finish_non_exhaustive()
    }
}

impl Method {
    /// A method with no arguments, returning anything, doing nothing: the
    /// base that each entry of the table overrides with `..`.
    pub(crate) fn base(access: Access, cli_private: bool) -> Self {
        Self {
            name: "",
            description: "",
            cli_description: "",
            examples: &[],
            access,
            private: false,
            cli_private,
            inline: false,
            validation_prefix: false,
            accepts: Arc::new(OnceLock::new()),
            accepts_of: Vec::new,
            returns: || Schema::Any,
            handler: Arc::new(|_, _, _, _| Answer::from(Ok(Outcome::new(())))),
            #[cfg(test)]
            parse: |_, _| Ok(()),
        }
    }

    /// The method's handler; its parameter type `P` is what the method
    /// accepts (schema, validation, description) and its result type `R`
    /// what it returns (JSON and description).
    pub(crate) fn handles<P: Params + 'static, R: Reply + 'static>(
        self,
        f: impl Fn(&Api, &Session, P) -> Result<R, ApiError> + Send + Sync + 'static,
    ) -> Self {
        self.answers(move |api, session, p| Answer::from(f(api, session, p)))
    }

    /// Like [`Method::handles`], for a handler whose answer may wait.
    pub(crate) fn answers<P: Params + 'static, R: Reply + 'static>(
        mut self,
        f: impl Fn(&Api, &Session, P) -> Answer<R> + Send + Sync + 'static,
    ) -> Self {
        self.accepts = Arc::new(OnceLock::new());
        self.accepts_of = P::accepts;
        self.returns = R::returns;
        #[cfg(test)]
        {
            self.parse = |m, values| P::from_validated(m.accepts(), values).map(drop);
        }
        self.handler = Arc::new(move |api, session, m: &Method, values| {
            match P::from_validated(m.accepts(), values) {
                Ok(p) => {
                    let answer = f(api, session, p);
                    Answer::after(answer.result.map(Outcome::new), answer.delay)
                }
                Err(e) => Answer::from(Err(e)),
            }
        });
        self
    }

    /// What the method accepts, described.
    pub fn accepts(&self) -> &[Field] {
        self.accepts.get_or_init(self.accepts_of)
    }

    /// Validates positional params against `accepts`, reporting every problem.
    pub fn validate(&self, params: Vec<Value>) -> Result<Vec<Value>, ApiError> {
        let mut problems: Vec<Problem> = Vec::new();
        let accepts = self.accepts();
        if params.len() > accepts.len() {
            return Err(ApiError::Validation(vec![(
                self.name.to_owned(),
                format!(
                    "Too many arguments (expected {}, found {})",
                    accepts.len(),
                    params.len()
                ),
            )]));
        }
        let mut given = params.into_iter();
        let mut out = Vec::with_capacity(accepts.len());
        for field in accepts {
            match given.next() {
                Some(mut v) => {
                    out.push(field.schema.validate(&v, field.name, &mut problems));
                    // The schema gave a validated copy; the strings of the
                    // one sent (passwords, codes) are wiped, not just freed.
                    wire::wipe_strings(&mut v);
                }
                None if field.required => {
                    problems.push((field.name.to_owned(), wire::ATTRIBUTE_REQUIRED.to_owned()));
                }
                // A default goes through the schema too: its own fields'
                // defaults are put in place (defaults at every depth).
                None => out.push(match &field.default {
                    Some(d) => field.schema.validate(d, field.name, &mut problems),
                    None => Value::Null,
                }),
            }
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            if self.validation_prefix {
                let prefix = self.name.replace('.', "_");
                for (attr, _) in &mut problems {
                    *attr = format!("{prefix}.{attr}");
                }
            }
            Err(ApiError::Validation(problems))
        }
    }

    /// Debug builds: the result must be what the method's `returns`
    /// describes, so every test that calls a method holds the description
    /// to the answer. A mismatch is a bug in the method table; it panics
    /// with the problems found.
    #[cfg(debug_assertions)]
    pub(crate) fn check_result(&self, result: &Value) {
        let mut problems = Vec::new();
        // The schema's copy of an answer that carries a secret is wiped
        // like the answer itself.
        let mut copy = (self.returns)().validate(result, "result", &mut problems);
        wire::wipe_strings(&mut copy);
        assert!(
            problems.is_empty(),
            "{} answered outside its `returns` schema: {problems:?}",
            self.name
        );
    }

    /// The `core.get_methods` description.
    pub fn describe(&self) -> wire::MethodDoc {
        let roles = match self.access {
            Access::Public | Access::User => vec![],
            Access::Admin | Access::RootLocal => vec!["FULL_ADMIN".to_owned()],
        };
        wire::MethodDoc {
            description: self.description.to_owned(),
            cli_description: self.cli_description.to_owned(),
            // midcli's `man` joins the examples with nothing between them.
            examples: wire::Examples {
                cli: self.examples.iter().map(|e| format!("{e}\n")).collect(),
            },
            no_auth_required: self.access == Access::Public,
            filterable: false,
            job: false,
            roles,
            cli_private: self.cli_private,
            accepts: self.accepts().iter().map(Field::to_json).collect(),
            returns: vec![
                (self.returns)().to_json(&format!("{}_returns", self.name.replace('.', "_"))),
            ],
        }
    }
}

impl ServiceDef {
    /// The `core.get_services` description.
    pub fn describe(&self) -> wire::ServiceDoc {
        wire::ServiceDoc {
            kind: match self.kind {
                ServiceKind::Config => wire::ServiceType::Config,
                ServiceKind::Service => wire::ServiceType::Service,
            },
            config: wire::ServiceConfig {
                namespace: self.name.to_owned(),
                cli_namespace: self.cli_namespace.map(str::to_owned),
                cli_description: self.cli_description.to_owned(),
                private: self.private,
                cli_private: self.cli_namespace.is_none(),
            },
        }
    }
}

#[derive(Debug)]
pub(crate) struct Registry {
    pub services: Vec<ServiceDef>,
    pub methods: Vec<Method>,
}

impl Registry {
    pub fn method(&self, name: &str) -> Option<&Method> {
        self.methods.iter().find(|m| m.name == name)
    }

    /// The service a method belongs to: the longest service name prefixing it.
    pub fn service_of(&self, method: &str) -> Option<&ServiceDef> {
        wire::service_of(method, &self.services, |s| s.name)
    }

    /// Whether introspection for `target` lists the service: never a
    /// private one, and for `CLI` only one with a CLI namespace (midcli
    /// splits every listed service's `cli_namespace`).
    pub fn lists_service(service: &ServiceDef, target: Target) -> bool {
        !service.private && (target != Target::Cli || service.cli_namespace.is_some())
    }

    /// Whether introspection for `target` lists the method (authorization
    /// aside): for `CLI` only CLI methods of listed services.
    pub fn lists_method(&self, method: &Method, target: Target) -> bool {
        if method.private {
            return false;
        }
        if target != Target::Cli {
            return true;
        }
        !method.cli_private
            && self
                .service_of(method.name)
                .is_some_and(|s| Self::lists_service(s, target))
    }

    pub fn describe_services(&self, target: Target) -> wire::ServiceDocs {
        self.services
            .iter()
            .filter(|s| Self::lists_service(s, target))
            .map(|s| (s.name.to_owned(), s.describe()))
            .collect()
    }
}

/// The one authorization check.
pub(crate) fn authorize(session: &Session, method: &Method) -> Result<(), ApiError> {
    if method.access == Access::Public {
        return Ok(());
    }
    if method.access == Access::RootLocal {
        let root_local = matches!(session.origin(), service::Origin::Unix { uid: 0, .. });
        return if root_local {
            Ok(())
        } else {
            Err(ApiError::not_authorized())
        };
    }
    // Read the flag under the lock: no copy of the account on the hot path.
    let admin = session.state().user.as_ref().map(|u| u.admin);
    let Some(admin) = admin else {
        return Err(ApiError::not_authenticated());
    };
    if method.access == Access::Admin && !admin {
        return Err(ApiError::not_authorized());
    }
    Ok(())
}

#[cfg(all(test, debug_assertions))]
mod tests {
    use super::*;

    fn answering_bool() -> Method {
        Method {
            name: "test.flag",
            returns: || Schema::Bool,
            ..Method::base(Access::Public, true)
        }
    }

    #[test]
    fn a_result_in_its_returns_schema_passes_the_debug_check() {
        answering_bool().check_result(&Value::Bool(true));
    }

    #[test]
    #[should_panic(expected = "test.flag answered outside its `returns` schema")]
    fn a_result_outside_its_returns_schema_fails_the_debug_check() {
        answering_bool().check_result(&Value::String("yes".into()));
    }
}
