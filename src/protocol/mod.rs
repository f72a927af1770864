//! Pure PostgreSQL wire protocol: frame decoding and message views/builders. No IO, no tokio, no logging.
pub mod walk;
