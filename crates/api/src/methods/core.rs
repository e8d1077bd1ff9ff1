//! `core.*`: ping, options, introspection, subscriptions.

use serde_json::{Map, Value, json};

use super::arg;
use crate::registry::{Access, Method, Registry, Target};
use crate::schema::{Field, Schema};
use crate::{Api, ApiError, Session};

pub(super) fn methods() -> Vec<Method> {
    // Every core method is in-memory work.
    let base = Method {
        inline: true,
        ..Method::base(Access::Public, true)
    };
    vec![
        Method {
            name: "core.ping",
            description: "Answers \"pong\": a liveness check.",
            cli_description: "Check the connection",
            returns: Schema::Str { nullable: false },
            handler: |_, _, _| Ok(json!("pong")),
            ..base.clone()
        },
        Method {
            name: "core.set_options",
            description: "Sets connection options. Unknown options are ignored.",
            cli_description: "Set connection options",
            accepts: vec![
                Field::new("options", Schema::Any, "Connection options").default(json!({})),
            ],
            returns: Schema::Null,
            handler: |_, _, _| Ok(Value::Null),
            ..base.clone()
        },
        Method {
            name: "core.get_services",
            description: "Describes every service: its type and CLI namespace.",
            cli_description: "List services",
            access: Access::User,
            accepts: vec![target()],
            handler: |api, _, args| {
                Ok(api
                    .inner
                    .registry
                    .describe_services(Target::from_arg(arg(&args, 0))))
            },
            ..base.clone()
        },
        Method {
            name: "core.get_methods",
            description: "Describes the methods the caller may call, optionally of one service.",
            cli_description: "List methods",
            access: Access::User,
            accepts: vec![
                Field::new(
                    "service",
                    Schema::Str { nullable: true },
                    "Only this service's methods",
                )
                .default(Value::Null),
                target(),
            ],
            handler: get_methods,
            ..base.clone()
        },
        Method {
            name: "core.subscribe",
            description: "Subscribes to an event collection (auth.twofactor, or * for all). Returns the subscription id.",
            cli_description: "Subscribe to events",
            access: Access::Admin,
            accepts: vec![
                Field::new("name", Schema::Str { nullable: false }, "Collection name").required(),
            ],
            returns: Schema::Str { nullable: false },
            handler: subscribe,
            ..base.clone()
        },
        Method {
            name: "core.unsubscribe",
            description: "Ends a subscription.",
            cli_description: "Unsubscribe from events",
            access: Access::User,
            accepts: vec![
                Field::new("id", Schema::Str { nullable: false }, "Subscription id").required(),
            ],
            returns: Schema::Null,
            handler: |_, session, args| {
                if let Some(id) = arg(&args, 0).as_str() {
                    session.state().subscriptions.remove(id);
                }
                Ok(Value::Null)
            },
            ..base
        },
    ]
}

/// TrueNAS's `target` argument: whom the description is for. With `CLI`,
/// only what has a CLI namespace is described (SPEC §5.6).
fn target() -> Field {
    Field::new(
        "target",
        Schema::Choice(Target::NAMES),
        "Describe for this client: WS, CLI or REST",
    )
    .default(json!("WS"))
}

fn get_methods(api: &Api, session: &Session, args: Vec<Value>) -> Result<Value, ApiError> {
    let wanted = arg(&args, 0).as_str();
    let target = Target::from_arg(arg(&args, 1));
    let map: Map<String, Value> = api
        .listed_methods(session, wanted, target)
        .map(|m| (m.name.to_owned(), m.describe()))
        .collect();
    Ok(Value::Object(map))
}

impl Api {
    /// The methods `core.get_methods(service, target)` describes to
    /// `session`: listed for `target`, callable by the session, and of
    /// `service` when one is named.
    fn listed_methods<'a>(
        &'a self,
        session: &'a Session,
        service: Option<&'a str>,
        target: Target,
    ) -> impl Iterator<Item = &'a Method> + 'a {
        let registry: &Registry = &self.inner.registry;
        registry
            .methods
            .iter()
            .filter(move |m| registry.lists_method(m, target) && self.may_call(session, m))
            .filter(move |m| {
                service.is_none_or(|w| registry.service_of(m.name).is_some_and(|s| s.name == w))
            })
    }

    /// The methods `core.get_methods(service, "CLI")` describes to
    /// `session`, undescribed: for an in-process caller that needs the
    /// names and describes only the one it runs ([`Method::describe`] is
    /// what `core.get_methods` answers for each).
    pub fn cli_methods<'a>(
        &'a self,
        session: &'a Session,
        service: &'a str,
    ) -> impl Iterator<Item = &'a Method> + 'a {
        self.listed_methods(session, Some(service), Target::Cli)
    }
}

fn subscribe(_: &Api, session: &Session, args: Vec<Value>) -> Result<Value, ApiError> {
    let name = arg(&args, 0).as_str().unwrap_or_default();
    if name != "auth.twofactor" && name != "*" {
        return Err(ApiError::call(
            wire::Errno::ENOENT,
            format!("{name}: no such event source"),
        ));
    }
    let mut st = session.state();
    st.next_subscription += 1;
    let id = format!("sub-{}", st.next_subscription);
    st.subscriptions.insert(id.clone(), name.to_owned());
    Ok(json!(id))
}
