//! Hostile bytes: mutated fixtures never panic the decoder, never produce more body bytes
//! than were fed, and an error leaves it usable after `reset`.

use bytes::BytesMut;
use icap_proto::{Event, Limits, Method, RequestDecoder, ResponseDecoder};
use proptest::prelude::*;

use crate::common::{
    Decoder, FIXTURES, encode_events, feed, fixture, merge_data, method_of, without_encapsulated,
};

#[derive(Debug, Clone)]
enum Edit {
    Flip(prop::sample::Index, u8),
    Insert(prop::sample::Index, u8),
    Delete(prop::sample::Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    let byte = prop_oneof![
        any::<u8>(),
        prop::sample::select(b"\r\n\t :;=,0f\"\0".to_vec()),
    ];
    prop_oneof![
        (any::<prop::sample::Index>(), byte.clone()).prop_map(|(i, b)| Edit::Flip(i, b)),
        (any::<prop::sample::Index>(), byte).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<prop::sample::Index>().prop_map(Edit::Delete),
    ]
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        match e {
            Edit::Flip(i, b) if !bytes.is_empty() => {
                let at = i.index(bytes.len());
                bytes[at] = *b;
            }
            Edit::Insert(i, b) => {
                let at = i.index(bytes.len() + 1);
                bytes.insert(at, *b);
            }
            Edit::Delete(i) if !bytes.is_empty() => {
                let at = i.index(bytes.len());
                bytes.remove(at);
            }
            _ => {}
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn mutated_fixtures_never_panic(
        which in 0..FIXTURES.len(),
        edits in prop::collection::vec(edit(), 1..6),
        piece in 1usize..40,
        small in any::<bool>(),
    ) {
        let (name, kind, _) = FIXTURES[which];
        let input = apply(fixture(name), &edits);
        let limits = if small {
            Limits::default()
                .with_max_head(300)
                .with_max_headers(8)
                .with_max_header_line(100)
                .with_max_http_head(120)
                .with_max_chunk_line(16)
                .with_max_chunk_extensions(24)
                .with_max_trailers(32)
                .with_max_preview(64)
                .with_max_body(200)
        } else {
            Limits::default()
        };
        let mut dec = Decoder::new(kind, limits);
        let mut buf = BytesMut::new();
        let mut data = 0usize;
        let mut errors = 0;
        for p in input.chunks(piece) {
            buf.extend_from_slice(p);
            loop {
                match dec.decode(&mut buf) {
                    Ok(Some(crate::common::Ev::Data(d))) => {
                        prop_assert!(!d.is_empty());
                        data += d.len();
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => {
                        // The connection would close; the decoder must still be safe to
                        // call, and usable again after reset.
                        errors += 1;
                        let _ = dec.decode(&mut buf);
                        match &mut dec {
                            Decoder::Request(d) => d.reset(),
                            Decoder::Response(d) => d.reset(),
                        }
                        buf.clear();
                        break;
                    }
                }
            }
        }
        prop_assert!(data <= input.len());
        prop_assert!(errors <= input.len());
        if small {
            prop_assert!(data <= 200 * (errors + 2));
        }
    }

    /// Whatever decodes, re-encodes to bytes that decode to the same values: the
    /// decode-encode-decode round trip, on fixtures with random edits.
    #[test]
    fn decode_encode_decode_on_mutated_fixtures(
        which in 0..FIXTURES.len(),
        edits in prop::collection::vec(edit(), 1..4),
    ) {
        let (name, kind, _) = FIXTURES[which];
        let input = apply(fixture(name), &edits);
        let first = feed(kind, Limits::default(), [&input[..]]);
        // Only complete, valid input is re-encoded (most edits break the message).
        if first.error.is_some() || !first.idle || first.events.is_empty() {
            return Ok(());
        }
        let encoded = encode_events(&first.events, method_of(kind));
        let second = feed(kind, Limits::default(), [&encoded[..]]);
        prop_assert_eq!(second.error, None);
        prop_assert!(second.idle && second.left == 0);
        prop_assert_eq!(
            merge_data(&without_encapsulated(&second.events)),
            merge_data(&without_encapsulated(&first.events))
        );
    }

    /// Random bytes (not fixtures) behind a valid request line.
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let mut req = RequestDecoder::new(Limits::default());
        let mut res = ResponseDecoder::new(Method::Respmod, Limits::default());
        for prefix in [&b""[..], b"RESPMOD icap://h/s ICAP/1.0\r\n", b"ICAP/1.0 200 OK\r\n"] {
            let input = [prefix, &bytes[..]].concat();
            let mut a = BytesMut::from(&input[..]);
            while let Ok(Some(_)) = req.decode(&mut a) {}
            let mut b = BytesMut::from(&input[..]);
            while let Ok(Some(_)) = res.decode(&mut b) {}
            req.reset();
            res.reset();
        }
    }
}

#[test]
fn reset_after_a_preview_answered_with_a_final_response() {
    // The server reads the preview, answers 204 instead of 100 Continue, and the client
    // sends its next request on the same connection.
    let preview = fixture("respmod-preview-continue.icap");
    let cut = preview
        .windows(5)
        .position(|w| w == b"0\r\n\r\n")
        .expect("the preview's last chunk")
        + 5;
    let next = fixture("rfc3507-ex5-options-request.icap");
    let mut dec = RequestDecoder::new(Limits::default());
    let mut buf = BytesMut::from(&preview[..cut]);
    let mut saw_preview_end = false;
    while let Some(e) = dec.decode(&mut buf).unwrap() {
        saw_preview_end |= e == Event::PreviewEnd { ieof: false };
    }
    assert!(saw_preview_end && buf.is_empty() && !dec.is_idle());
    dec.reset();
    assert!(dec.is_idle());
    buf.extend_from_slice(&next);
    let Some(Event::Head(h)) = dec.decode(&mut buf).unwrap() else {
        panic!()
    };
    assert_eq!(h.method, Method::Options);
    assert!(matches!(dec.decode(&mut buf).unwrap(), Some(Event::End(_))));
    assert!(dec.is_idle());
}

#[test]
fn response_decoder_follows_set_method() {
    // The same bytes are a valid REQMOD answer and an invalid RESPMOD answer.
    let input = b"ICAP/1.0 200 OK\r\nEncapsulated: req-hdr=0, null-body=18\r\n\r\n\
        GET / HTTP/1.1\r\n\r\n";
    let mut dec = ResponseDecoder::new(Method::Respmod, Limits::default());
    let mut buf = BytesMut::from(&input[..]);
    assert!(dec.decode(&mut buf).is_err());
    dec.reset();
    dec.set_method(Method::Reqmod);
    let mut buf = BytesMut::from(&input[..]);
    let Some(Event::Head(h)) = dec.decode(&mut buf).unwrap() else {
        panic!()
    };
    assert_eq!(h.http_request.unwrap().target(), b"/");
}
