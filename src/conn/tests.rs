//! Tests for framed connection IO over in-memory duplex streams.
