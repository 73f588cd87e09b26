//! Ketang server (crate docs to be written with the server wiring).
