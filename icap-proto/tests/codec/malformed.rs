//! Malformed and incomplete input: each row names the exact error, or says the decoder
//! must wait for more bytes rather than fail.

use icap_proto::{DecodeError, EncapsulatedError, Limit, Limits, Method};

use crate::common::{Ev, Kind, Outcome, feed};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// Decoding stops with this error.
    Fails(DecodeError),
    /// No error, and the message is not complete yet (`Ok(None)`).
    Incomplete,
}
use Want::{Fails, Incomplete};

struct Row {
    what: &'static str,
    kind: Kind,
    limits: Limits,
    input: Vec<u8>,
    want: Want,
}

const REQ: Kind = Kind::Request;
const RES: Kind = Kind::Response(Method::Respmod);

fn row(what: &'static str, kind: Kind, input: impl AsRef<[u8]>, want: Want) -> Row {
    Row {
        what,
        kind,
        limits: Limits::default(),
        input: input.as_ref().to_vec(),
        want,
    }
}

fn row_with(
    what: &'static str,
    kind: Kind,
    limits: Limits,
    input: impl AsRef<[u8]>,
    want: Want,
) -> Row {
    Row {
        limits,
        ..row(what, kind, input, want)
    }
}

fn enc(e: EncapsulatedError) -> Want {
    Fails(DecodeError::InvalidEncapsulated(e))
}

fn limit(limit: Limit, max: u64) -> Want {
    Fails(DecodeError::LimitExceeded { limit, max })
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A REQMOD request with `Encapsulated: <enc>` and extra ICAP header lines, then `rest`.
fn reqmod(enc: &str, extra: &str, rest: &[u8]) -> Vec<u8> {
    cat(&[
        format!("REQMOD icap://h/s ICAP/1.0\r\nHost: h\r\n{extra}Encapsulated: {enc}\r\n\r\n")
            .as_bytes(),
        rest,
    ])
}

/// A RESPMOD request with `Encapsulated: <enc>` and extra ICAP header lines, then `rest`.
fn respmod(enc: &str, extra: &str, rest: &[u8]) -> Vec<u8> {
    cat(&[
        format!("RESPMOD icap://h/s ICAP/1.0\r\nHost: h\r\n{extra}Encapsulated: {enc}\r\n\r\n")
            .as_bytes(),
        rest,
    ])
}

/// The embedded head most rows use: 19 bytes.
const RES_HDR: &[u8] = b"HTTP/1.1 200 OK\r\n\r\n";

/// A RESPMOD request with a 19-byte response head and the chunked body `body`.
fn with_body(extra: &str, body: impl AsRef<[u8]>) -> Vec<u8> {
    respmod(
        "res-hdr=0, res-body=19",
        extra,
        &cat(&[RES_HDR, body.as_ref()]),
    )
}

fn options(headers: &str) -> Vec<u8> {
    format!("OPTIONS icap://h/s ICAP/1.0\r\n{headers}\r\n").into_bytes()
}

fn many_headers(n: usize) -> String {
    use std::fmt::Write as _;
    (0..n).fold(String::new(), |mut s, i| {
        let _ = write!(s, "X-H{i}: {i}\r\n");
        s
    })
}

#[allow(clippy::too_many_lines)] // a table-driven test: its rows read best as one list
fn rows() -> Vec<Row> {
    let d = Limits::default();
    vec![
        // ---- line endings: LF-only is rejected, never guessed at
        row(
            "bare LF ends the request line",
            REQ,
            "OPTIONS icap://h/s ICAP/1.0\nHost: h\r\n\r\n",
            Fails(DecodeError::BareLineFeed),
        ),
        row(
            "bare LF ends a header",
            REQ,
            "OPTIONS icap://h/s ICAP/1.0\r\nHost: h\n\r\n",
            Fails(DecodeError::BareLineFeed),
        ),
        row(
            "LF-only message",
            REQ,
            "OPTIONS icap://h/s ICAP/1.0\nHost: h\n\n",
            Fails(DecodeError::BareLineFeed),
        ),
        row(
            "LF-only response",
            RES,
            "ICAP/1.0 204 No Content\n\n",
            Fails(DecodeError::BareLineFeed),
        ),
        row(
            "bare LF in an embedded head",
            REQ,
            reqmod(
                "req-hdr=0, null-body=26",
                "",
                b"GET / HTTP/1.1\nHost: a\r\n\r\n",
            ),
            Fails(DecodeError::BareLineFeed),
        ),
        // Whole, these sections are parsed without the scan for bare LFs and early ends
        // (the parser refuses both); the error must still be the one the scan gives.
        row(
            "bare LF inside an embedded header value",
            REQ,
            reqmod(
                "req-hdr=0, null-body=28",
                "",
                b"GET / HTTP/1.1\r\nX-A: a\nb\r\n\r\n",
            ),
            Fails(DecodeError::BareLineFeed),
        ),
        row(
            "bare LF in an embedded status line's reason",
            REQ,
            respmod("res-hdr=0, null-body=20", "", b"HTTP/1.1 200 O\nK\r\n\r\n"),
            Fails(DecodeError::BareLineFeed),
        ),
        row(
            "bare LF in the second embedded head, an error in the first",
            REQ,
            respmod(
                "req-hdr=0, res-hdr=21, null-body=46",
                "",
                b"GET / HTTP/1.1\r\nX\r\n\r\nHTTP/1.1 200 OK\r\nA: \n\r\n\r\n",
            ),
            Fails(DecodeError::InvalidHeader),
        ),
        row(
            "embedded head ends before its offset, whole",
            REQ,
            respmod(
                "req-hdr=0, res-hdr=26, null-body=45",
                "",
                b"GET / HTTP/1.1\r\n\r\nX: 1\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
            ),
            Fails(DecodeError::EncapsulatedMismatch),
        ),
        row(
            "bare LF after a chunk size",
            REQ,
            with_body("", b"3\nabc\r\n0\r\n\r\n"),
            Fails(DecodeError::BareLineFeed),
        ),
        row(
            "bare LF after chunk data",
            REQ,
            with_body("", b"3\r\nabc\n0\r\n\r\n"),
            Fails(DecodeError::BareLineFeed),
        ),
        row(
            "bare LF in trailers",
            REQ,
            with_body("", b"0\r\nX-T: 1\n\r\n"),
            Fails(DecodeError::BareLineFeed),
        ),
        // ---- control characters
        row(
            "bare CR in a header value",
            REQ,
            options("Host: h\r\nX-A: a\rb\r\n"),
            Fails(DecodeError::InvalidControlCharacter),
        ),
        row(
            "NUL in a header value",
            REQ,
            options("Host: h\r\nX-A: a\0b\r\n"),
            Fails(DecodeError::InvalidControlCharacter),
        ),
        row(
            "NUL in a header name",
            REQ,
            options("Host: h\r\nX\0A: b\r\n"),
            Fails(DecodeError::InvalidControlCharacter),
        ),
        row(
            "NUL in an embedded header",
            REQ,
            reqmod(
                "req-hdr=0, null-body=26",
                "",
                b"GET / HTTP/1.1\r\nX: a\0b\r\n\r\n",
            ),
            Fails(DecodeError::InvalidControlCharacter),
        ),
        row(
            "NUL in the URI",
            REQ,
            "OPTIONS icap://h/\0s ICAP/1.0\r\n\r\n",
            Fails(DecodeError::InvalidRequestLine),
        ),
        row(
            "NUL in a reason phrase",
            RES,
            "ICAP/1.0 200 O\0K\r\n\r\n",
            Fails(DecodeError::InvalidStatusLine),
        ),
        // ---- request line
        row(
            "unknown method",
            REQ,
            "GET icap://h/s ICAP/1.0\r\nHost: h\r\n\r\n",
            Fails(DecodeError::UnknownMethod),
        ),
        row(
            "method in lower case",
            REQ,
            "options icap://h/s ICAP/1.0\r\n\r\n",
            Fails(DecodeError::UnknownMethod),
        ),
        row(
            "ICAP/2.0",
            REQ,
            "OPTIONS icap://h/s ICAP/2.0\r\n\r\n",
            Fails(DecodeError::UnsupportedVersion),
        ),
        row(
            "ICAP/1.1",
            REQ,
            "OPTIONS icap://h/s ICAP/1.1\r\n\r\n",
            Fails(DecodeError::UnsupportedVersion),
        ),
        row(
            "HTTP version on an ICAP request",
            REQ,
            "OPTIONS icap://h/s HTTP/1.1\r\n\r\n",
            Fails(DecodeError::InvalidRequestLine),
        ),
        row(
            "not a version",
            REQ,
            "OPTIONS icap://h/s FOO/1.0\r\n\r\n",
            Fails(DecodeError::InvalidRequestLine),
        ),
        row(
            "no version",
            REQ,
            "OPTIONS icap://h/s\r\n\r\n",
            Fails(DecodeError::InvalidRequestLine),
        ),
        row(
            "two spaces",
            REQ,
            "OPTIONS  icap://h/s ICAP/1.0\r\n\r\n",
            Fails(DecodeError::InvalidRequestLine),
        ),
        row(
            "http URI",
            REQ,
            "OPTIONS http://h/s ICAP/1.0\r\n\r\n",
            Fails(DecodeError::InvalidUri),
        ),
        row(
            "URI without host",
            REQ,
            "OPTIONS icap:///s ICAP/1.0\r\n\r\n",
            Fails(DecodeError::InvalidUri),
        ),
        row(
            "URI with user info",
            REQ,
            "OPTIONS icap://u@h/s ICAP/1.0\r\n\r\n",
            Fails(DecodeError::InvalidUri),
        ),
        row(
            "URI port out of range",
            REQ,
            "OPTIONS icap://h:99999/s ICAP/1.0\r\n\r\n",
            Fails(DecodeError::InvalidUri),
        ),
        // ---- status line
        row(
            "HTTP status line",
            RES,
            "HTTP/1.1 200 OK\r\n\r\n",
            Fails(DecodeError::InvalidStatusLine),
        ),
        row(
            "response ICAP/2.0",
            RES,
            "ICAP/2.0 200 OK\r\n\r\n",
            Fails(DecodeError::UnsupportedVersion),
        ),
        row(
            "two-digit status",
            RES,
            "ICAP/1.0 20 OK\r\n\r\n",
            Fails(DecodeError::InvalidStatusLine),
        ),
        row(
            "four-digit status",
            RES,
            "ICAP/1.0 2000 OK\r\n\r\n",
            Fails(DecodeError::InvalidStatusLine),
        ),
        row(
            "status below 100",
            RES,
            "ICAP/1.0 099 Low\r\n\r\n",
            Fails(DecodeError::InvalidStatusLine),
        ),
        // ---- header fields
        row(
            "header without colon",
            REQ,
            options("Host h\r\n"),
            Fails(DecodeError::InvalidHeader),
        ),
        row(
            "space before colon",
            REQ,
            options("Host : h\r\n"),
            Fails(DecodeError::InvalidHeader),
        ),
        row(
            "fold before any header",
            REQ,
            options(" X: y\r\n"),
            Fails(DecodeError::InvalidHeader),
        ),
        row(
            "empty header name",
            REQ,
            options(": x\r\n"),
            Fails(DecodeError::InvalidHeader),
        ),
        row(
            "bad embedded header",
            REQ,
            reqmod(
                "req-hdr=0, null-body=23",
                "",
                b"GET / HTTP/1.1\r\nX y\r\n\r\n",
            ),
            Fails(DecodeError::InvalidHeader),
        ),
        row(
            "Preview not a number",
            REQ,
            with_body("Preview: abc\r\n", b"0\r\n\r\n"),
            Fails(DecodeError::InvalidHeaderValue("Preview")),
        ),
        row(
            "Preview negative",
            REQ,
            with_body("Preview: -1\r\n", b"0\r\n\r\n"),
            Fails(DecodeError::InvalidHeaderValue("Preview")),
        ),
        // ---- Encapsulated, each EncapsulatedError
        row(
            "Encapsulated missing on REQMOD",
            REQ,
            "REQMOD icap://h/s ICAP/1.0\r\nHost: h\r\n\r\n",
            Fails(DecodeError::MissingEncapsulated),
        ),
        row(
            "Encapsulated missing on RESPMOD",
            REQ,
            "RESPMOD icap://h/s ICAP/1.0\r\nHost: h\r\n\r\n",
            Fails(DecodeError::MissingEncapsulated),
        ),
        row(
            "Encapsulated twice",
            REQ,
            reqmod("null-body=0", "Encapsulated: null-body=0\r\n", b""),
            Fails(DecodeError::DuplicateEncapsulated),
        ),
        row(
            "Encapsulated without =",
            REQ,
            reqmod("req-hdr0, null-body=5", "", b""),
            enc(EncapsulatedError::Syntax),
        ),
        row(
            "Encapsulated empty",
            REQ,
            reqmod("", "", b""),
            enc(EncapsulatedError::Syntax),
        ),
        row(
            "Encapsulated without a name",
            REQ,
            reqmod("=0", "", b""),
            enc(EncapsulatedError::Syntax),
        ),
        row(
            "Encapsulated with an empty entry",
            REQ,
            reqmod("req-hdr=0,, null-body=5", "", b""),
            enc(EncapsulatedError::Syntax),
        ),
        row(
            "Encapsulated unknown section",
            REQ,
            reqmod("foo-hdr=0, null-body=5", "", b""),
            enc(EncapsulatedError::UnknownSection),
        ),
        row(
            "Encapsulated names are case-sensitive",
            REQ,
            reqmod("REQ-HDR=0, null-body=5", "", b""),
            enc(EncapsulatedError::UnknownSection),
        ),
        row(
            "Encapsulated offset not a number",
            REQ,
            reqmod("req-hdr=x, null-body=5", "", b""),
            enc(EncapsulatedError::BadOffset),
        ),
        row(
            "Encapsulated negative offset",
            REQ,
            reqmod("null-body=-1", "", b""),
            enc(EncapsulatedError::BadOffset),
        ),
        row(
            "Encapsulated offset with a sign",
            REQ,
            reqmod("null-body=+0", "", b""),
            enc(EncapsulatedError::BadOffset),
        ),
        row(
            "Encapsulated offset over 64 bits",
            REQ,
            reqmod("req-hdr=0, null-body=99999999999999999999", "", b""),
            enc(EncapsulatedError::BadOffset),
        ),
        row(
            "Encapsulated first offset not 0",
            REQ,
            reqmod("req-hdr=5, null-body=10", "", b""),
            enc(EncapsulatedError::OffsetOrder),
        ),
        row(
            "Encapsulated body alone not at 0",
            REQ,
            reqmod("null-body=7", "", b""),
            enc(EncapsulatedError::OffsetOrder),
        ),
        row(
            "Encapsulated offsets equal",
            REQ,
            reqmod("req-hdr=0, null-body=0", "", b""),
            enc(EncapsulatedError::OffsetOrder),
        ),
        row(
            "Encapsulated offsets decreasing",
            REQ,
            respmod("req-hdr=0, res-hdr=50, res-body=40", "", b""),
            enc(EncapsulatedError::OffsetOrder),
        ),
        row(
            "Encapsulated without a body entry",
            REQ,
            reqmod("req-hdr=0", "", b""),
            enc(EncapsulatedError::BodyPlacement),
        ),
        row(
            "Encapsulated body not last",
            REQ,
            reqmod("req-body=0, null-body=5", "", b""),
            enc(EncapsulatedError::BodyPlacement),
        ),
        row(
            "Encapsulated sections out of order",
            REQ,
            respmod("res-hdr=0, req-hdr=50, res-body=100", "", b""),
            enc(EncapsulatedError::SectionOrder),
        ),
        row(
            "Encapsulated section repeated",
            REQ,
            reqmod("req-hdr=0, req-hdr=10, null-body=20", "", b""),
            enc(EncapsulatedError::SectionOrder),
        ),
        row(
            "res-hdr on a REQMOD request",
            REQ,
            reqmod("res-hdr=0, res-body=19", "", b""),
            enc(EncapsulatedError::NotAllowed),
        ),
        row(
            "req-body on a RESPMOD request",
            REQ,
            respmod("req-hdr=0, req-body=19", "", b""),
            enc(EncapsulatedError::NotAllowed),
        ),
        row(
            "req-hdr on an OPTIONS request",
            REQ,
            "OPTIONS icap://h/s ICAP/1.0\r\nEncapsulated: req-hdr=0, null-body=19\r\n\r\n",
            enc(EncapsulatedError::NotAllowed),
        ),
        row(
            "req-hdr in a RESPMOD response",
            RES,
            "ICAP/1.0 200 OK\r\nEncapsulated: req-hdr=0, null-body=19\r\n\r\n",
            enc(EncapsulatedError::NotAllowed),
        ),
        row(
            "res-hdr in an OPTIONS response",
            Kind::Response(Method::Options),
            "ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, null-body=19\r\n\r\n",
            enc(EncapsulatedError::NotAllowed),
        ),
        row(
            "req-hdr with res-hdr in a REQMOD response",
            Kind::Response(Method::Reqmod),
            "ICAP/1.0 200 OK\r\nEncapsulated: req-hdr=0, res-hdr=20, res-body=40\r\n\r\n",
            enc(EncapsulatedError::NotAllowed),
        ),
        // ---- offsets that lie
        row(
            "offset too short for the embedded head",
            REQ,
            respmod("res-hdr=0, res-body=10", "", &cat(&[RES_HDR, b"0\r\n\r\n"])),
            Fails(DecodeError::EncapsulatedMismatch),
        ),
        row(
            "offset one byte short",
            REQ,
            respmod("res-hdr=0, res-body=18", "", &cat(&[RES_HDR, b"0\r\n\r\n"])),
            Fails(DecodeError::EncapsulatedMismatch),
        ),
        row(
            "offset too long, into the body",
            REQ,
            respmod(
                "res-hdr=0, res-body=25",
                "",
                &cat(&[RES_HDR, b"3\r\nabc\r\n0\r\n\r\n"]),
            ),
            Fails(DecodeError::EncapsulatedMismatch),
        ),
        row(
            "offset too long, ending where the body ends",
            REQ,
            respmod(
                "res-hdr=0, res-body=32",
                "",
                &cat(&[RES_HDR, b"3\r\nabc\r\n0\r\n\r\n"]),
            ),
            Fails(DecodeError::EncapsulatedMismatch),
        ),
        row(
            "offsets swap two embedded heads",
            REQ,
            respmod(
                "req-hdr=0, res-hdr=19, res-body=35",
                "",
                &cat(&[b"GET / HTTP/1.1\r\n\r\n", RES_HDR, b"0\r\n\r\n"]),
            ),
            Fails(DecodeError::EncapsulatedMismatch),
        ),
        row(
            "offset beyond max_http_head",
            REQ,
            reqmod("req-hdr=0, null-body=18446744073709551615", "", b""),
            limit(Limit::HttpHead, 64 * 1024),
        ),
        row_with(
            "embedded head over a small max_http_head",
            REQ,
            d.with_max_http_head(16),
            with_body("", b"0\r\n\r\n"),
            limit(Limit::HttpHead, 16),
        ),
        row(
            "embedded request line malformed",
            REQ,
            reqmod("req-hdr=0, null-body=19", "", b"GET / HTTP/1.1x\r\n\r\n"),
            Fails(DecodeError::InvalidHttpHead),
        ),
        row(
            "embedded request line without version",
            REQ,
            reqmod("req-hdr=0, null-body=9", "", b"GET /\r\n\r\n"),
            Fails(DecodeError::InvalidHttpHead),
        ),
        row(
            "embedded status with four digits",
            REQ,
            respmod("res-hdr=0, null-body=20", "", b"HTTP/1.1 2000 OK\r\n\r\n"),
            Fails(DecodeError::InvalidHttpHead),
        ),
        // ---- chunked body
        row(
            "chunk size with 17 hex digits",
            REQ,
            with_body("", b"10000000000000000\r\n"),
            Fails(DecodeError::ChunkSizeOverflow),
        ),
        row(
            "chunk size with 17 leading zeros",
            REQ,
            with_body("", b"00000000000000000\r\n"),
            Fails(DecodeError::ChunkSizeOverflow),
        ),
        row(
            "chunk size not hex",
            REQ,
            with_body("", b"zz\r\n"),
            Fails(DecodeError::InvalidChunkSize),
        ),
        row(
            "empty chunk-size line",
            REQ,
            with_body("", b"\r\n"),
            Fails(DecodeError::InvalidChunkSize),
        ),
        row(
            "negative chunk size",
            REQ,
            with_body("", b"-1\r\n"),
            Fails(DecodeError::InvalidChunkSize),
        ),
        row(
            "0x prefix",
            REQ,
            with_body("", b"0x10\r\n"),
            Fails(DecodeError::InvalidChunkSize),
        ),
        row(
            "junk after chunk size",
            REQ,
            with_body("", b"3 junk\r\n"),
            Fails(DecodeError::InvalidChunkSize),
        ),
        row(
            "extension without a name",
            REQ,
            with_body("", b"3;\r\n"),
            Fails(DecodeError::InvalidChunkSize),
        ),
        row(
            "unterminated quoted extension",
            REQ,
            with_body("", b"3;a=\"x\r\n"),
            Fails(DecodeError::InvalidChunkSize),
        ),
        row(
            "use-original-body not a number",
            REQ,
            with_body("", b"0; use-original-body=x\r\n\r\n"),
            Fails(DecodeError::InvalidChunkSize),
        ),
        row(
            "chunk data longer than its size",
            REQ,
            with_body("", b"3\r\nabcd\r\n0\r\n\r\n"),
            Fails(DecodeError::InvalidChunkTerminator),
        ),
        row(
            "malformed trailer",
            REQ,
            with_body("", b"0\r\nbad trailer\r\n\r\n"),
            Fails(DecodeError::InvalidTrailer),
        ),
        // ---- preview
        row(
            "preview longer than announced",
            REQ,
            with_body("Preview: 2\r\n", b"3\r\nabc\r\n0\r\n\r\n"),
            Fails(DecodeError::PreviewExceeded),
        ),
        row(
            "preview longer than announced in a later chunk",
            REQ,
            with_body("Preview: 2\r\n", b"2\r\nab\r\n1\r\nc\r\n0\r\n\r\n"),
            Fails(DecodeError::PreviewExceeded),
        ),
        row(
            "Preview: 0 with data",
            REQ,
            with_body("Preview: 0\r\n", b"1\r\na\r\n"),
            Fails(DecodeError::PreviewExceeded),
        ),
        // ---- each limit, named
        row(
            "ICAP head over max_head",
            REQ,
            options(&"X-Big: 0123456789abcdef\r\n".repeat(3000)),
            limit(Limit::Head, 64 * 1024),
        ),
        row_with(
            "any ICAP head over a max_head of 0",
            REQ,
            d.with_max_head(0),
            options(""),
            limit(Limit::Head, 0),
        ),
        row_with(
            "ICAP head over a small max_head",
            REQ,
            d.with_max_head(32),
            options("Host: icap.example.net\r\n"),
            limit(Limit::Head, 32),
        ),
        row(
            "101 header fields",
            REQ,
            options(&many_headers(101)),
            limit(Limit::HeaderCount, 100),
        ),
        row(
            "101 embedded header fields",
            REQ,
            {
                let http = format!("GET / HTTP/1.1\r\n{}\r\n", many_headers(101));
                reqmod(
                    &format!("req-hdr=0, null-body={}", http.len()),
                    "",
                    http.as_bytes(),
                )
            },
            limit(Limit::HeaderCount, 100),
        ),
        row(
            "101 trailer fields",
            REQ,
            with_body("", format!("0\r\n{}\r\n", many_headers(101))),
            limit(Limit::HeaderCount, 100),
        ),
        row(
            "header line over max_header_line",
            REQ,
            options(&format!("X-Long: {}\r\n", "a".repeat(16 * 1024 - 9))),
            limit(Limit::HeaderLine, 16 * 1024),
        ),
        row(
            "folded header over max_header_line",
            Kind::RequestObsFold,
            options(&format!("X-Long: a{}\r\n", "\r\n\tfold-line".repeat(1500))),
            limit(Limit::HeaderLine, 16 * 1024),
        ),
        row(
            "chunk line over max_chunk_line",
            REQ,
            with_body("", format!("3;{}", "a".repeat(5000))),
            limit(Limit::ChunkLine, 4096),
        ),
        row(
            "chunk extensions over max_chunk_extensions",
            REQ,
            with_body("", format!("1;{}\r\nx\r\n", "e".repeat(3990)).repeat(5)),
            limit(Limit::ChunkExtensions, 16 * 1024),
        ),
        row(
            "trailers over max_trailers",
            REQ,
            with_body("", format!("0\r\nX-T: {}\r\n\r\n", "a".repeat(17_000))),
            limit(Limit::Trailers, 16 * 1024),
        ),
        row(
            "Preview over max_preview",
            REQ,
            with_body("Preview: 1048577\r\n", b"0\r\n\r\n"),
            limit(Limit::Preview, 1024 * 1024),
        ),
        row_with(
            "chunk over max_body",
            REQ,
            d.with_max_body(10),
            with_body("", b"b\r\n"),
            limit(Limit::Body, 10),
        ),
        row_with(
            "body over max_body across chunks",
            REQ,
            d.with_max_body(10),
            with_body("", b"6\r\nabcdef\r\n6\r\n"),
            limit(Limit::Body, 10),
        ),
        // ---- incomplete: wait for more, do not fail
        row("nothing", REQ, "", Incomplete),
        row("a lone CR", REQ, "\r", Incomplete),
        row("an empty line before a message", REQ, "\r\n", Incomplete),
        row(
            "half a request line",
            REQ,
            "OPTIONS icap://h/s IC",
            Incomplete,
        ),
        row(
            "head without the empty line",
            REQ,
            "OPTIONS icap://h/s ICAP/1.0\r\nHost: h\r\n",
            Incomplete,
        ),
        row(
            "head ending in CR",
            REQ,
            "OPTIONS icap://h/s ICAP/1.0\r\nHost: h\r\n\r",
            Incomplete,
        ),
        row(
            "head just under max_head",
            REQ,
            format!(
                "OPTIONS icap://h/s ICAP/1.0\r\n{}",
                "X-Big: 0123456789abcdef\r\n".repeat(2600)
            ),
            Incomplete,
        ),
        row(
            "embedded head not all there",
            REQ,
            respmod("res-hdr=0, res-body=19", "", b"HTTP/1.1 200"),
            Incomplete,
        ),
        row(
            "offset past the end of the embedded head: fails once the head's end is seen",
            REQ,
            respmod(
                "res-hdr=0, res-body=5000",
                "",
                &cat(&[RES_HDR, b"0\r\n\r\n"]),
            ),
            Fails(DecodeError::EncapsulatedMismatch),
        ),
        row(
            "offset past the data, embedded head not ended yet",
            REQ,
            respmod(
                "res-hdr=0, res-body=5000",
                "",
                b"HTTP/1.1 200 OK\r\nX: 1\r\n",
            ),
            Incomplete,
        ),
        row(
            "two embedded heads at the limit",
            REQ,
            respmod("req-hdr=0, res-hdr=65536, res-body=131072", "", b""),
            Incomplete,
        ),
        row("half a chunk size", REQ, with_body("", b"1"), Incomplete),
        row(
            "chunk size without LF",
            REQ,
            with_body("", b"3\r"),
            Incomplete,
        ),
        row(
            "chunk line just under max_chunk_line",
            REQ,
            with_body("", format!("3;{}", "a".repeat(4000))),
            Incomplete,
        ),
        row(
            "part of the chunk data",
            REQ,
            with_body("", b"3\r\nab"),
            Incomplete,
        ),
        row(
            "chunk data without CRLF",
            REQ,
            with_body("", b"3\r\nabc"),
            Incomplete,
        ),
        row(
            "chunk data with CR only",
            REQ,
            with_body("", b"3\r\nabc\r"),
            Incomplete,
        ),
        row(
            "last chunk without the empty line",
            REQ,
            with_body("", b"3\r\nabc\r\n0\r\n"),
            Incomplete,
        ),
        row(
            "last chunk with CR only",
            REQ,
            with_body("", b"0\r\n\r"),
            Incomplete,
        ),
        row(
            "trailer without the empty line",
            REQ,
            with_body("", b"0\r\nX-T: 1\r\n"),
            Incomplete,
        ),
        row(
            "largest chunk size: data pending, nothing allocated",
            REQ,
            with_body("", b"ffffffffffffffff\r\nabc"),
            Incomplete,
        ),
        row(
            "preview done without ieof: the rest is pending",
            REQ,
            with_body("Preview: 3\r\n", b"3\r\nabc\r\n0\r\n\r\n"),
            Incomplete,
        ),
        row(
            "response body pending",
            RES,
            cat(&[
                b"ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=19\r\n\r\n",
                RES_HDR,
                b"5\r\nab",
            ]),
            Incomplete,
        ),
    ]
}

fn check(r: &Row, out: &Outcome, how: &str) {
    match r.want {
        Fails(e) => assert_eq!(out.error, Some(e), "{}: {how}", r.what),
        Incomplete => {
            assert_eq!(out.error, None, "{}: {how}", r.what);
            let ended = matches!(out.events.last(), Some(Ev::End(_))) && out.idle;
            assert!(!ended, "{}: {how}: the message completed", r.what);
        }
    }
}

#[test]
fn malformed_and_incomplete_table() {
    let rows = rows();
    let (mut fails, mut incomplete) = (0, 0);
    for r in &rows {
        let whole = feed(r.kind, r.limits, [&r.input[..]]);
        check(r, &whole, "whole");
        // Fed in small pieces, the verdict is the same.
        let pieces = feed(r.kind, r.limits, r.input.chunks(7));
        check(r, &pieces, "in 7-byte pieces");
        match r.want {
            Fails(_) => fails += 1,
            Incomplete => incomplete += 1,
        }
    }
    assert!(fails >= 90 && incomplete >= 20, "{fails} {incomplete}");
}

#[test]
fn a_complete_row_of_each_limit_just_inside() {
    // The rows above fail one past each limit; one inside it must pass.
    let ok = |kind, limits, input: Vec<u8>| {
        let out = feed(kind, limits, [&input[..]]);
        assert_eq!(out.error, None);
        assert!(out.idle && out.left == 0, "{out:?}");
    };
    let d = Limits::default();
    ok(REQ, d, options(&many_headers(100)));
    ok(
        REQ,
        d,
        options(&format!("X-Long: {}\r\n", "a".repeat(16 * 1024 - 10))),
    );
    ok(
        REQ,
        d.with_max_body(10),
        with_body("", b"a\r\n0123456789\r\n0\r\n\r\n"),
    );
    ok(
        REQ,
        d,
        with_body("Preview: 1048576\r\n", b"0; ieof\r\n\r\n"),
    );
    ok(
        REQ,
        d,
        with_body("", format!("1;{}\r\nx\r\n0\r\n\r\n", "e".repeat(4000))),
    );
    ok(REQ, d.with_max_http_head(19), with_body("", b"0\r\n\r\n"));
}

#[test]
fn status_codes_for_errors() {
    assert_eq!(DecodeError::UnknownMethod.status_code(), 501);
    assert_eq!(DecodeError::UnsupportedVersion.status_code(), 505);
    assert_eq!(DecodeError::BareLineFeed.status_code(), 400);
    assert_eq!(
        DecodeError::LimitExceeded {
            limit: Limit::Head,
            max: 1
        }
        .status_code(),
        400
    );
    assert!(
        DecodeError::LimitExceeded {
            limit: Limit::Body,
            max: 1
        }
        .is_limit()
    );
    assert!(!DecodeError::InvalidHeader.is_limit());
    assert_eq!(
        DecodeError::LimitExceeded {
            limit: Limit::HeaderCount,
            max: 100
        }
        .to_string(),
        "limit max_headers exceeded (max 100)"
    );
}

#[test]
fn tolerated_shapes() {
    // Real servers send these; they are accepted, not errors.
    let ok = |kind, input: &[u8], events: usize| {
        let out = feed(kind, Limits::default(), [input]);
        assert_eq!(out.error, None, "{}", String::from_utf8_lossy(input));
        assert_eq!(
            out.events.len(),
            events,
            "{}",
            String::from_utf8_lossy(input)
        );
        assert!(out.idle && out.left == 0);
    };
    ok(RES, b"ICAP/1.0 100 Continue\r\n\r\n", 2);
    ok(RES, b"ICAP/1.0 204 No Content\r\nISTag: x\r\n\r\n", 2);
    ok(RES, b"ICAP/1.0 200 OK\r\nISTag: x\r\n\r\n", 2);
    ok(RES, b"ICAP/1.0 418\r\n\r\n", 2);
    ok(RES, b"ICAP/1.0 539 \r\n\r\n", 2);
    ok(RES, b"ICAP/1.0 202 Accepted\r\n\r\n", 2);
    ok(
        RES,
        b"ICAP/1.0 200 OK\r\nEncapsulated:null-body=0\r\n\r\n",
        2,
    );
    ok(RES, b"\r\n\r\nICAP/1.0 204 No Content\r\n\r\n", 2);
    ok(
        REQ,
        b"OPTIONS icap://[::1]:1344/avscan ICAP/1.0\r\nHost: [::1]\r\n\r\n",
        2,
    );
    ok(REQ, b"OPTIONS ICAPS://H/s ICAP/1.0\r\n\r\n", 2);
    ok(
        REQ,
        b"OPTIONS icap://h/s ICAP/1.0\r\nX-Empty:\r\nX-Tab:\t v \t\r\n\r\n",
        2,
    );
    // Unknown chunk extensions are ignored (ieof on a non-zero chunk is an error now:
    // see `request_strictness`).
    let body = with_body(
        "",
        b"3; foo=\"a;b\" ; bar\r\nabc\r\n2\r\nde\r\n0;IEOF\r\n\r\n",
    );
    let out = feed(REQ, Limits::default(), [&body[..]]);
    assert_eq!(out.error, None);
    let Some(Ev::End(end)) = out.events.last() else {
        panic!("{out:?}")
    };
    assert!(end.ieof);
}
