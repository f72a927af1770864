//! The integration test binary (`cargo test --test it`): real PostgreSQL, real clients, the real
//! `bouncectl` binary.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod admin;
mod auth;
mod auth_robustness;
mod check;
mod cli;
mod drivers;
mod faults;
mod hba;
mod hosts;
mod kill;
mod leaks;
mod limits;
mod logs;
mod metrics;
mod metrics_names;
mod modes;
mod pool_size;
mod prepared;
mod prepared_raw;
mod security;
mod settings;
mod show;
mod shutdown;
mod sockets;
mod support;
mod tls;
mod tls_ciphers;
mod tls_pooler;
mod tls_serve;
mod training;
