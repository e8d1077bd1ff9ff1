//! The fuzz target `envelope`'s seeds and regression inputs (fuzz/), replayed
//! through the same check as `cargo fuzz run envelope` (fuzz/checks/envelope.rs).

#[path = "../../../fuzz/checks/envelope.rs"]
mod check;
#[path = "../../../fuzz/checks/replay.rs"]
mod replay;

#[test]
fn kept_fuzz_inputs_hold() {
    replay::all("envelope", check::check);
}
