//! Server connection pools keyed by (database, user): checkout with FIFO waiting and limits,
//! checkin, and the registry the proxy and admin console share.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod queue;
