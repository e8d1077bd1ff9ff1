//! The fuzz target `cli_syntax`'s seeds and regression inputs (fuzz/), replayed
//! through the same check as `cargo fuzz run cli_syntax` (fuzz/checks/cli_syntax.rs).

#[path = "../../../fuzz/checks/cli_syntax.rs"]
mod check;
#[path = "../../../fuzz/checks/replay.rs"]
mod replay;

#[test]
fn kept_fuzz_inputs_hold() {
    replay::all("cli_syntax", check::check);
}
