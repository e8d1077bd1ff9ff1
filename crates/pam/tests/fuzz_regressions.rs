//! The fuzz target `pam_reply`'s seeds and regression inputs (fuzz/), replayed
//! through the same check as `cargo fuzz run pam_reply` (fuzz/checks/pam_reply.rs).

#[path = "../../../fuzz/checks/pam_reply.rs"]
mod check;
#[path = "../../../fuzz/checks/replay.rs"]
mod replay;

#[test]
fn kept_fuzz_inputs_hold() {
    replay::all("pam_reply", check::check);
}
