//! `system.*`: what midcli asks of the system it is connected to.

use serde_json::json;

use crate::registry::{Access, Method};
use crate::schema::Schema;

pub(super) fn methods() -> Vec<Method> {
    vec![Method {
        name: "system.hostname",
        description: "Returns the system's short host name (the one in the provisioning URI and \
                      the CLI prompt).",
        cli_description: "Show the host name",
        inline: true,
        returns: || Schema::Str { nullable: false },
        // midcli asks for it to draw its prompt; `tfa` has its own.
        ..Method::base(Access::User, true)
            .handles(|api, _, ()| Ok(json!(api.twofactor().labels().hostname)))
    }]
}
