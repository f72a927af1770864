//! The crate-wide error: what went wrong, whose fault it was, and the text and SQLSTATE a client sees.

/// Whose fault an error was: decides logging level and whether the client is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The client sent something wrong or is not allowed.
    Client,
    /// The PostgreSQL server misbehaved or went away.
    Server,
    /// A bug or resource problem inside the pooler.
    Internal,
}
