//! `user.*` (CLI namespace `account user`). The per-user two-factor methods
//! (SPEC §9.3) belong here too.

use serde_json::json;

use crate::Api;
use crate::registry::{Access, Method};
use crate::schema::Schema;

pub(super) fn methods() -> Vec<Method> {
    vec![Method {
        name: "user.has_local_administrator_set_up",
        description: "Whether a local administrator exists: root, or a member of the configured \
                      administrators' group. midcli asks it when its shell starts.",
        cli_description: "Whether a local administrator exists",
        returns: Schema::Bool,
        handler: |api, _, _| Ok(json!(local_administrator_exists(api))),
        ..Method::base(Access::User, true)
    }]
}

/// Root counts when the account database knows uid 0. Members of the
/// administrators' group cannot be listed through `Accounts` (it looks
/// accounts up one at a time); a system with no root is not one this daemon
/// runs on, so root decides.
fn local_administrator_exists(api: &Api) -> bool {
    api.inner
        .accounts
        .by_uid(0)
        .is_some_and(|root| api.is_admin(&root))
}
