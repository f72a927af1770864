//! bouncectl: a PgBouncer-compatible PostgreSQL connection pooler and the operator's toolkit around it.
//!
//! # Layout
//!
//! Layers, lowest first; a module imports only from its own layer or a lower one
//! (`tests/tidy.rs` enforces it):
//!
//! - **L0, pure** (no tokio, no sockets, no stdout): [`error`], [`protocol`], [`auth`], [`config`].
//! - **L1, io** (tokio allowed, no pool or session knowledge): [`conn`], [`tls`], [`shutdown`],
//!   [`stats`], [`latency`], [`registry`].
//! - **L2, pools**: [`pool`].
//! - **L3, serving**: [`proxy`], [`admin`] (the console; it never imports `proxy`) and [`metrics`]
//!   (the Prometheus endpoint, reading what the console reads).
//! - **L4, commands**: [`cli`], one file per subcommand; the only place that prints or prompts.
//!
//! The binary in `src/main.rs` only parses the command line and maps the result to an exit code.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
pub mod auth;
pub mod cli;
pub mod config;
pub mod conn;
pub mod error;
pub mod latency;
pub mod metrics;
pub mod net;
pub mod pool;
pub mod protocol;
pub mod proxy;
pub mod registry;
pub mod shutdown;
pub mod stats;
pub mod tls;

/// The hash map of the per-login and per-Parse lookups (pools, client counts, cancel keys,
/// prepared statements): foldhash, seeded at random per process, where std's SipHash cost a
/// login some 2,000 instructions.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
