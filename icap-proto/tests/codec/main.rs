//! The codec's proof: byte-exact fixtures (RFC 3507 examples and real-server shapes),
//! re-encoding, splits, property tests, malformed-input tables and a streaming bound.
//!
//! One test binary (as rustls does) with a module per concern.

mod common;
mod encode_errors;
mod exchange;
mod extremes;
mod fixtures;
mod malformed;
mod regressions;
mod request_start;
mod robustness;
mod roundtrip;
mod split;
mod streaming;
mod strictness;
