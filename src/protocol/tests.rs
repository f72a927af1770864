//! Unit tests for the protocol layer.
