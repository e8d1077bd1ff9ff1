//! `interface.*` (CLI namespace `network interface`): only what midcli's
//! shell polls. There are no pending network changes to check in here.

use crate::registry::{Access, Method};

pub(super) fn methods() -> Vec<Method> {
    vec![Method {
        name: "interface.checkin_waiting",
        description: "Seconds left to check in pending network changes, or null when none are \
                      pending (never, here). midcli polls it every second.",
        cli_description: "Pending network changes to check in",
        inline: true,
        ..Method::base(Access::User, true).handles(|_, _, ()| Ok(()))
    }]
}
