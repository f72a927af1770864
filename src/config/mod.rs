//! pgbouncer.ini, userlist.txt and HBA files: parsed into typed, validated values.
//! Pure: reads files, nothing else. No tokio, no logging.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod userlist;
