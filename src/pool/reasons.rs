//! Why the pooler closes a server, in PgBouncer's words: operators' alerts grep them.

/// `server_idle_timeout` passed.
pub const IDLE_TIMEOUT: &str = "server idle timeout";
/// `server_lifetime` passed.
pub const LIFETIME: &str = "server lifetime over";
/// The connection broke or stopped answering.
pub const CRASHED: &str = "server conn crashed?";
/// `server_check_query` failed.
pub const CHECK_FAILED: &str = "test query failed";
/// The client left with a transaction open.
pub const NOT_READY: &str = "client disconnect while server was not ready";
/// The client left with replies still owed.
pub const IN_PROGRESS: &str = "client disconnected with queries in progress";
/// RECONNECT, or a reload that moved the database.
pub const CONFIG_CHANGED: &str = "database configuration changed";
/// `server_reset_query` failed.
pub const RESET_FAILED: &str = "reset query failed";
/// The SETs carrying a client's parameters failed.
pub const SYNC_FAILED: &str = "var change failed";
/// `query_timeout` ended the client's query.
pub const QUERY_TIMEOUT: &str = "query timeout";
/// `idle_transaction_timeout` ended the client's transaction.
pub const IDLE_TRANSACTION_TIMEOUT: &str = "idle transaction timeout";
/// `transaction_timeout` ended the client's transaction.
pub const TRANSACTION_TIMEOUT: &str = "transaction timeout";
/// PAUSE of the database.
pub const PAUSE: &str = "pause mode";
/// KILL of the database.
pub const KILLED: &str = "database killed";
/// Closed to make room under `max_db_connections`/`max_user_connections` for another pool.
pub const EVICTED: &str = "evicted";
/// A reload made the pool smaller than the servers it has open.
pub const TOO_MANY: &str = "too many servers in the pool";
/// The pooler is shutting down.
pub const SHUTDOWN: &str = "pooler is shutting down";
