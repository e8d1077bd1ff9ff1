//! `core.*`: ping, options, introspection, subscriptions.

use serde_json::{Value, json};

use crate::registry::{Access, Method, Registry, Target};
use crate::schema::Schema;
use crate::typed::{Reply, doc};
use crate::{Api, ApiError, Session, Subscription, args};

args! {
    pub(crate) struct SetOptionsArgs {
        #[expect(dead_code, reason = "no connection option changes anything here")]
        options: Value => doc("Connection options").default(json!({})),
    }
}

args! {
    pub(crate) struct GetServicesArgs {
        target: Target => doc("Describe for this client: WS, CLI or REST").default("WS"),
    }
}

args! {
    pub(crate) struct GetMethodsArgs {
        service: Option<String> => doc("Only this service's methods").nullable(),
        target: Target => doc("Describe for this client: WS, CLI or REST").default("WS"),
    }
}

args! {
    pub(crate) struct DescribeMethodArgs {
        name: String => doc("The method's name"),
        target: Target => doc("Describe for this client: WS, CLI or REST").default("WS"),
    }
}

args! {
    pub(crate) struct SubscribeArgs {
        name: Subscription => doc("Collection name, or * for every collection"),
    }
}

args! {
    pub(crate) struct UnsubscribeArgs {
        id: String => doc("Subscription id"),
    }
}

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
            ..base.clone().handles(|_, _, ()| Ok("pong"))
        },
        Method {
            name: "core.set_options",
            description: "Sets connection options. Unknown options are ignored.",
            cli_description: "Set connection options",
            ..base.clone().handles(|_, _, _: SetOptionsArgs| Ok(()))
        },
        Method {
            name: "core.get_services",
            description: "Describes every service: its type and CLI namespace.",
            cli_description: "List services",
            access: Access::User,
            ..base.clone().handles(|api, _, a: GetServicesArgs| {
                Ok(api.inner.registry.describe_services(a.target))
            })
        },
        Method {
            name: "core.get_methods",
            description: "Describes the methods the caller may call, optionally of one service.",
            cli_description: "List methods",
            access: Access::User,
            ..base.clone().handles(get_methods)
        },
        Method {
            name: "core.describe_method",
            description: "One method's description as core.get_methods gives it for the target, or \
                          null when core.get_methods would not list it to the caller: for a client \
                          that needs one method's schema, not its whole service's.",
            cli_description: "Describe one method",
            access: Access::User,
            private: true,
            ..base.clone().handles(|api, session, a: DescribeMethodArgs| {
                Ok(api.describe_method(session, &a.name, a.target))
            })
        },
        Method {
            name: "core.subscribe",
            description: "Subscribes to an event collection (auth.twofactor, user, or * for all). \
                          Returns the subscription id.",
            cli_description: "Subscribe to events",
            access: Access::Admin,
            ..base.clone().handles(subscribe)
        },
        Method {
            name: "core.unsubscribe",
            description: "Ends a subscription.",
            cli_description: "Unsubscribe from events",
            access: Access::User,
            ..base.handles(|_, session, a: UnsubscribeArgs| {
                session.state().subscriptions.remove(&a.id);
                Ok(())
            })
        },
    ]
}

fn get_methods(
    api: &Api,
    session: &Session,
    a: GetMethodsArgs,
) -> Result<wire::MethodDocs, ApiError> {
    Ok(api
        .listed_methods(session, a.service.as_deref(), a.target)
        .map(|m| (m.name.to_owned(), m.describe()))
        .collect())
}

/// The services' descriptions: an object keyed by service name (their
/// shape is the protocol's own description types).
impl Reply for wire::ServiceDocs {
    fn returns() -> Schema {
        Schema::Dict
    }
}

/// The methods' descriptions: an object keyed by method name.
impl Reply for wire::MethodDocs {
    fn returns() -> Schema {
        Schema::Dict
    }
}

/// One method's description.
impl Reply for wire::MethodDoc {
    fn returns() -> Schema {
        Schema::Dict
    }
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

    /// `name`'s entry of `core.get_methods(null, target)` for `session`:
    /// `None` when that would not list it.
    fn describe_method(
        &self,
        session: &Session,
        name: &str,
        target: Target,
    ) -> Option<wire::MethodDoc> {
        let registry = &self.inner.registry;
        registry
            .method(name)
            .filter(|m| registry.lists_method(m, target) && self.may_call(session, m))
            .map(Method::describe)
    }

    /// What `core.get_services("CLI")` answers, for an in-process caller
    /// (every session may call it).
    pub fn describe_cli_services(&self) -> wire::ServiceDocs {
        self.inner.registry.describe_services(Target::Cli)
    }

    /// The private `describe_method` for the CLI: what `core.describe_method(name,
    /// "CLI")` answers, for an in-process caller.
    pub fn describe_cli_method(&self, session: &Session, name: &str) -> Option<wire::MethodDoc> {
        self.describe_method(session, name, Target::Cli)
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

/// The name is one of [`Subscription::NAMES`] (the schema refuses any
/// other, naming the ones there are).
fn subscribe(_: &Api, session: &Session, a: SubscribeArgs) -> Result<String, ApiError> {
    let mut st = session.state();
    st.next_subscription += 1;
    let id = format!("sub-{}", st.next_subscription);
    st.subscriptions.insert(id.clone(), a.name);
    Ok(id)
}
