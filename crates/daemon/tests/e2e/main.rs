//! End-to-end tests of `twofactord` through real sockets: our blocking
//! client here, Python's websocket-client in `python.rs`.

mod attack;
mod browser;
mod cli;
mod cluster;
mod harness;
mod hostile;
mod login;
mod nonroot;
mod peruser;
mod protocol;
mod python;
mod state;

#[path = "../../../store/tests/pgcluster/mod.rs"]
mod pgcluster;
mod web;
