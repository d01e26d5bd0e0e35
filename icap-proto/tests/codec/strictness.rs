//! What the decoders reject on requests (the server side) and accept on responses: early
//! `Encapsulated` mismatches, `ieof` on a data chunk, obs-fold, versions. Each row names the
//! error, and where it matters the byte at which it must come (no waiting for bytes that an
//! offset promised but that never come).

use bytes::BytesMut;
use icap_proto::{DecodeError, Event, Limits, Method, RequestDecoder, ResponseDecoder};

use crate::common::{Ev, Kind, feed};

const REQ: Kind = Kind::Request;
const RES: Kind = Kind::Response(Method::Respmod);

/// Feeds `input` one byte at a time and returns the first error and how many bytes had
/// been fed when it came, or `None` if the input ran out first.
fn error_at(kind: Kind, input: &[u8]) -> Option<(DecodeError, usize)> {
    (1..=input.len()).find_map(|n| {
        feed(kind, Limits::default(), input[..n].chunks(1))
            .error
            .map(|e| (e, n))
    })
}

#[test]
fn encapsulated_offset_past_the_head_fails_when_the_head_ends() {
    // The embedded head ends at byte 19 of the sections, the offset says 500.
    let http = b"HTTP/1.1 200 OK\r\n\r\n";
    let icap_req =
        b"RESPMOD icap://h/s ICAP/1.0\r\nHost: h\r\nEncapsulated: res-hdr=0, res-body=500\r\n\r\n";
    let icap_res = b"ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=500\r\n\r\n";
    for (kind, icap) in [(REQ, &icap_req[..]), (RES, &icap_res[..])] {
        // Only the head and a little body arrive: the decoder must not wait for 500 bytes.
        let input = [icap, http, b"5\r\nhello\r\n"].concat();
        let out = feed(kind, Limits::default(), [&input[..]]);
        assert_eq!(
            out.error,
            Some(DecodeError::EncapsulatedMismatch),
            "{kind:?}"
        );
        assert_eq!(
            DecodeError::EncapsulatedMismatch.status_code(),
            400,
            "a server answers 400"
        );
        // Fed byte by byte, the error comes with the last byte of the CRLF CRLF.
        let exact = [icap, http].concat();
        assert_eq!(
            error_at(kind, &exact),
            Some((DecodeError::EncapsulatedMismatch, exact.len())),
            "{kind:?}"
        );
        // One byte short of the CRLF CRLF: still waiting, no error.
        let short = feed(kind, Limits::default(), [&exact[..exact.len() - 1]]);
        assert_eq!(short.error, None, "{kind:?}");
    }
}

#[test]
fn early_end_of_the_first_of_two_heads() {
    let input = b"RESPMOD icap://h/s ICAP/1.0\r\nHost: h\r\n\
        Encapsulated: req-hdr=0, res-hdr=400, res-body=419\r\n\r\n\
        GET / HTTP/1.1\r\nHost: a\r\n\r\nHTTP/1.1 200 OK\r\n\r\n";
    let out = feed(REQ, Limits::default(), [&input[..]]);
    assert_eq!(out.error, Some(DecodeError::EncapsulatedMismatch));
}

#[test]
fn a_second_head_that_starts_with_an_empty_line_is_a_mismatch() {
    // The request head ends at 27 as announced, but the CRLF that starts the response
    // section makes a second CRLF CRLF overlapping the first one (bytes 25..29), which ends
    // past the offset: the scan for head ends must see overlapping matches too.
    let input = b"RESPMOD icap://h/s ICAP/1.0\r\nHost: h\r\n\
        Encapsulated: req-hdr=0, res-hdr=27, res-body=48\r\n\r\n\
        GET / HTTP/1.1\r\nHost: a\r\n\r\n\r\nHTTP/1.1 200 OK\r\n\r\n";
    let out = feed(REQ, Limits::default(), [&input[..]]);
    assert_eq!(out.error, Some(DecodeError::EncapsulatedMismatch));
    let icap_len = input.len() - 48;
    assert_eq!(
        error_at(REQ, input),
        Some((DecodeError::EncapsulatedMismatch, icap_len + 29)),
        "the error comes with the last byte of the overlapping CRLF CRLF"
    );
}

#[test]
fn exact_offsets_still_decode_in_any_split() {
    let input = b"RESPMOD icap://h/s ICAP/1.0\r\nHost: h\r\n\
        Encapsulated: req-hdr=0, res-hdr=27, res-body=46\r\n\r\n\
        GET / HTTP/1.1\r\nHost: a\r\n\r\nHTTP/1.1 200 OK\r\n\r\n0\r\n\r\n";
    for piece in 1..input.len() {
        let out = feed(REQ, Limits::default(), input.chunks(piece));
        assert_eq!(out.error, None, "piece {piece}");
        assert!(out.idle && out.left == 0, "piece {piece}");
        assert_eq!(out.events.len(), 2, "piece {piece}");
    }
}

#[test]
fn offset_short_of_the_head_is_still_a_mismatch() {
    // The offset ends the section inside the head: the CRLF CRLF is not at its end.
    let input = b"RESPMOD icap://h/s ICAP/1.0\r\nHost: h\r\n\
        Encapsulated: res-hdr=0, res-body=10\r\n\r\nHTTP/1.1 200 OK\r\n\r\n0\r\n\r\n";
    let out = feed(REQ, Limits::default(), [&input[..]]);
    assert_eq!(out.error, Some(DecodeError::EncapsulatedMismatch));
}

#[test]
fn ieof_on_a_data_chunk_is_an_error_both_ways() {
    let req = b"RESPMOD icap://h/s ICAP/1.0\r\nHost: h\r\nPreview: 10\r\n\
        Encapsulated: res-hdr=0, res-body=19\r\n\r\nHTTP/1.1 200 OK\r\n\r\n5; ieof\r\nhello\r\n0; ieof\r\n\r\n";
    let res = b"ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=19\r\n\r\n\
        HTTP/1.1 200 OK\r\n\r\n5;IEOF\r\nhello\r\n0\r\n\r\n";
    for (kind, input) in [(REQ, &req[..]), (RES, &res[..])] {
        let out = feed(kind, Limits::default(), [input]);
        assert_eq!(out.error, Some(DecodeError::IeofOnDataChunk), "{kind:?}");
        // No data of that chunk was handed out: the error comes on its size line.
        assert!(
            !out.events.iter().any(|e| matches!(e, Ev::Data(_))),
            "{kind:?}"
        );
    }
    assert_eq!(DecodeError::IeofOnDataChunk.status_code(), 400);
    // ieof on the last chunk is the ordinary preview end.
    let ok = b"RESPMOD icap://h/s ICAP/1.0\r\nHost: h\r\nPreview: 10\r\n\
        Encapsulated: res-hdr=0, res-body=19\r\n\r\nHTTP/1.1 200 OK\r\n\r\n5\r\nhello\r\n0; ieof\r\n\r\n";
    assert_eq!(feed(REQ, Limits::default(), [&ok[..]]).error, None);
}

#[test]
fn obs_fold_is_refused_in_requests() {
    let rows: &[(&str, &[u8])] = &[
        (
            "ICAP head",
            b"OPTIONS icap://h/s ICAP/1.0\r\nHost: h\r\nX-A: 1\r\n 2\r\n\r\n",
        ),
        (
            "ICAP head, tab",
            b"OPTIONS icap://h/s ICAP/1.0\r\nHost: h\r\nX-A: 1\r\n\t2\r\n\r\n",
        ),
        (
            "embedded HTTP head",
            b"REQMOD icap://h/s ICAP/1.0\r\nHost: h\r\nEncapsulated: req-hdr=0, null-body=28\r\n\r\n\
              GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
        ),
        (
            "trailers",
            b"REQMOD icap://h/s ICAP/1.0\r\nHost: h\r\nEncapsulated: req-hdr=0, req-body=24\r\n\r\n\
              GET / HTTP/1.1\r\nX: a\r\n\r\n0\r\nX-T: 1\r\n 2\r\n\r\n",
        ),
    ];
    for (what, input) in rows {
        let out = feed(REQ, Limits::default(), [*input]);
        assert_eq!(out.error, Some(DecodeError::ObsFold), "{what}");
        // The lenient switch reads the same bytes.
        let out = feed(Kind::RequestObsFold, Limits::default(), [*input]);
        assert_eq!(out.error, None, "{what} with obs-fold allowed");
        assert!(out.idle && out.left == 0, "{what} with obs-fold allowed");
    }
    assert_eq!(DecodeError::ObsFold.status_code(), 400);
}

#[test]
fn obs_fold_is_accepted_in_responses_unless_turned_off() {
    let input = b"ICAP/1.0 200 OK\r\nISTag: \"x\"\r\nX-Violations-Found: 1\r\n\tf\r\n\tW32/Test\r\n\t7\r\n\t2\r\n\
        Encapsulated: null-body=0\r\n\r\n";
    let out = feed(RES, Limits::default(), [&input[..]]);
    assert_eq!(out.error, None);
    let mut strict = ResponseDecoder::new(Method::Respmod, Limits::default()).with_obs_fold(false);
    assert_eq!(
        strict.decode(&mut BytesMut::from(&input[..])),
        Err(DecodeError::ObsFold)
    );
}

#[test]
fn versions() {
    let rows: &[(Kind, &[u8], DecodeError, u16)] = &[
        (
            REQ,
            b"OPTIONS icap://h/s HTTP/1.1\r\n\r\n",
            DecodeError::InvalidRequestLine,
            400,
        ),
        (
            REQ,
            b"OPTIONS icap://h/s HTTP/1.0\r\n\r\n",
            DecodeError::InvalidRequestLine,
            400,
        ),
        (
            REQ,
            b"OPTIONS icap://h/s ICAP/1.1\r\n\r\n",
            DecodeError::UnsupportedVersion,
            505,
        ),
        (
            REQ,
            b"OPTIONS icap://h/s ICAP/2.0\r\n\r\n",
            DecodeError::UnsupportedVersion,
            505,
        ),
        (
            REQ,
            b"OPTIONS icap://h/s ICAP/x\r\n\r\n",
            DecodeError::InvalidRequestLine,
            400,
        ),
        (
            REQ,
            b"OPTIONS icap://h/s ICAP/1.\r\n\r\n",
            DecodeError::InvalidRequestLine,
            400,
        ),
        (
            RES,
            b"HTTP/1.1 200 OK\r\n\r\n",
            DecodeError::InvalidStatusLine,
            400,
        ),
        (
            RES,
            b"ICAP/2.0 200 OK\r\n\r\n",
            DecodeError::UnsupportedVersion,
            505,
        ),
        (
            RES,
            b"ICAP/1.1 204 No Content\r\n\r\n",
            DecodeError::UnsupportedVersion,
            505,
        ),
        (
            RES,
            b"ICAP/one 200 OK\r\n\r\n",
            DecodeError::InvalidStatusLine,
            400,
        ),
    ];
    for (kind, input, want, status) in rows {
        let out = feed(*kind, Limits::default(), [*input]);
        assert_eq!(out.error, Some(*want), "{}", String::from_utf8_lossy(input));
        assert_eq!(want.status_code(), *status);
    }
}

#[test]
fn request_decoder_defaults_are_strict_and_switchable() {
    let folded = b"OPTIONS icap://h/s ICAP/1.0\r\nX: 1\r\n 2\r\n\r\n";
    let mut d = RequestDecoder::new(Limits::default());
    assert_eq!(
        d.decode(&mut BytesMut::from(&folded[..])),
        Err(DecodeError::ObsFold)
    );
    let mut d = RequestDecoder::new(Limits::default()).with_obs_fold(true);
    let Ok(Some(Event::Head(h))) = d.decode(&mut BytesMut::from(&folded[..])) else {
        panic!()
    };
    assert_eq!(h.headers.get("X").unwrap().as_bytes(), b"1\r\n 2");
}

#[test]
fn preview_given_twice_in_a_request() {
    let req = |previews: &str| {
        format!(
            "RESPMOD icap://h/s ICAP/1.0\r\nHost: h\r\n{previews}\
             Encapsulated: res-hdr=0, res-body=19\r\n\r\nHTTP/1.1 200 OK\r\n\r\n0; ieof\r\n\r\n"
        )
    };
    // Copies that differ: client and server would disagree on where the preview ends.
    let out = feed(
        REQ,
        Limits::default(),
        [req("Preview: 4\r\nPreview: 0\r\n").as_bytes()],
    );
    assert_eq!(out.error, Some(DecodeError::InvalidHeaderValue("Preview")));
    // Equal copies (spaces aside) are one value.
    let out = feed(
        REQ,
        Limits::default(),
        [req("Preview: 4\r\npreview:  4 \r\n").as_bytes()],
    );
    assert_eq!(out.error, None);
    assert!(out.events.contains(&Ev::PreviewEnd { ieof: true }));
}

#[test]
fn encapsulated_twice_stays_an_error_even_when_equal() {
    let input = b"OPTIONS icap://h/s ICAP/1.0\r\nEncapsulated: null-body=0\r\nEncapsulated: null-body=0\r\n\r\n";
    let out = feed(REQ, Limits::default(), [&input[..]]);
    assert_eq!(out.error, Some(DecodeError::DuplicateEncapsulated));
}

#[test]
fn the_first_encapsulated_is_not_counted_against_max_headers() {
    let limits = Limits::default().with_max_headers(2);
    let ok = b"ICAP/1.0 200 OK\r\nA: 1\r\nEncapsulated: null-body=0\r\nB: 2\r\n\r\n";
    assert_eq!(feed(RES, limits, [&ok[..]]).error, None);
    let over = b"ICAP/1.0 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    assert_eq!(
        feed(RES, limits, [&over[..]]).error,
        Some(DecodeError::LimitExceeded {
            limit: icap_proto::Limit::HeaderCount,
            max: 2
        })
    );
    // A second Encapsulated counts (and is refused as a duplicate once the head is read).
    let two = b"ICAP/1.0 200 OK\r\nA: 1\r\nEncapsulated: null-body=0\r\nEncapsulated: null-body=0\r\n\r\n";
    assert_eq!(
        feed(RES, limits, [&two[..]]).error,
        Some(DecodeError::DuplicateEncapsulated)
    );
    // Embedded HTTP heads have no such exemption: Encapsulated means nothing there.
    let http = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nEncapsulated: x\r\n\r\n";
    let input = [
        format!(
            "REQMOD icap://h/s ICAP/1.0\r\nEncapsulated: req-hdr=0, null-body={}\r\n\r\n",
            http.len()
        )
        .as_bytes(),
        &http[..],
    ]
    .concat();
    assert_eq!(
        feed(REQ, limits, [&input[..]]).error,
        Some(DecodeError::LimitExceeded {
            limit: icap_proto::Limit::HeaderCount,
            max: 2
        })
    );
}

proptest::proptest! {
    /// The decoder reads `Preview` with the head's fields, and the server exchange reads
    /// `Allow` and `Connection` in one pass: both agree with the lookups on the decoded
    /// head (`RequestHead::preview`, `allows_204`, ...) over repeated, differently cased,
    /// padded, bad and absent fields, and a head whose `Preview` the lookup refuses is
    /// refused by the decoder with the same error.
    #[test]
    fn fields_read_in_the_loop_agree_with_lookups(
        fields in proptest::collection::vec((0usize..6, 0usize..8), 0..5),
    ) {
        use icap_proto::exchange::{RequestPlan, ServerExchange};
        let names = ["Preview", "preview", "PREVIEW", "Allow", "allow", "Connection"];
        let values = ["4", " 4 ", "0", "abc", "204", "204, 206", "close", "18446744073709551616"];
        let mut text = String::from("RESPMOD icap://h/s ICAP/1.0\r\nHost: h\r\n");
        let mut built = icap_proto::Headers::new();
        for &(n, v) in &fields {
            text.extend([names[n], ": ", values[v], "\r\n"]);
            built.append(names[n], values[v].trim()).expect("valid field");
        }
        text.push_str("Encapsulated: res-hdr=0, res-body=19\r\n\r\nHTTP/1.1 200 OK\r\n\r\n0; ieof\r\n\r\n");
        let mut lookup = icap_proto::RequestHead::new(Method::Respmod, "icap://h/s".parse().unwrap());
        lookup.headers = built;
        lookup.body = Some(icap_proto::BodyKind::Response);
        let mut ex = ServerExchange::new(Limits::default());
        let got = ex.poll_event(&mut BytesMut::from(text.as_bytes()));
        match (lookup.preview(), got) {
            (Err(want), Err(e)) => proptest::prop_assert_eq!(e, want.into()),
            (Ok(preview), Ok(Some(Event::Head(head)))) => {
                proptest::prop_assert_eq!(head.preview(), Ok(preview));
                let plan = ex.plan().copied().expect("a plan after the head");
                let want = RequestPlan::from_head(&head, false).expect("a valid head");
                proptest::prop_assert_eq!(plan, want);
                proptest::prop_assert_eq!(plan.preview.map(|p| p.size), preview);
                proptest::prop_assert_eq!(plan.allow_204, lookup.allows_204());
            }
            (want, got) => proptest::prop_assert!(false, "lookup {want:?}, decoder {got:?}"),
        }
    }
}
