//! Security review (issue 10, item 5): what a stats user may do on the console, and what the
//! log may never contain whatever the verbosity.

mod console;
mod logs;
