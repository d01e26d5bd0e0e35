//! What the workspace's test suites share, in the manner of h2's `tests/h2-support`: the
//! raw-bytes ICAP peer the server tests speak through, the request and chunk builders
//! they write requests with, and the import-circle check the crates run over their `src/`.
//!
//! | module | what |
//! |---|---|
//! | [`build`] | requests and chunked bodies written by hand: the test is the referee, not the codec |
//! | [`raw`] | [`Conn`], a connection speaking raw bytes whose answers are decoded by icap-proto and kept raw too; [`read_until`] for fake servers |
//! | [`layers`] | [`assert_no_import_cycles`] over a crate's modules |
//! | [`terminal`] | [`on_terminal`]: a command run on a pseudo-terminal, for what a CLI shows only there |
//!
//! ```
//! use icap_test_support::{chunks, one_chunk};
//! assert_eq!(one_chunk(b"hello"), b"5\r\nhello\r\n0\r\n\r\n");
//! assert_eq!(chunks(&[b"ab", b"", b"c"], "0; ieof\r\n\r\n"), b"2\r\nab\r\n1\r\nc\r\n0; ieof\r\n\r\n");
//! ```

pub mod build;
pub mod layers;
pub mod raw;
pub mod terminal;

pub use build::{RES_HDR, chunks, filler, find, one_chunk, reqmod, respmod, respmod_with_url};
pub use layers::{assert_no_import_cycles, import_cycles};
pub use raw::{Answer, Conn, read_until, try_read_until};
pub use terminal::{drawn_lines, on_terminal};
