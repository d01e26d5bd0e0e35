//! Decode, encode, decode: whatever decodes (byte 0 picks requests or the answer to which
//! method) is written again with the public encoders and must decode to the same value;
//! writing that value again gives the same bytes. Heads are compared without
//! `Encapsulated`, which the encoder recomputes; bodies keep their data, preview split,
//! `ieof` and trailers.
#![no_main]

use std::fmt::Debug;

use bytes::BytesMut;
use icap_proto::verdict;
use icap_proto::{Limits, Method, RequestDecoder, RequestHead, ResponseDecoder, ResponseHead};
use icap_proto_fuzz::{
    Decode, HeadInfo, Seen, assert_grammar, encode_body, messages, run, without_encapsulated,
};
use libfuzzer_sys::fuzz_target;

fn check<H, D>(
    events: Vec<Seen<H>>,
    encode: impl Fn(&H, &mut BytesMut),
    new_decoder: impl Fn() -> D,
    same: impl Fn(&H, &H),
) where
    H: HeadInfo + Clone + PartialEq + Debug,
    D: Decode<Head = H>,
{
    assert_grammar(&events);
    for m in messages(events) {
        let mut first = BytesMut::new();
        encode(&m.head, &mut first);
        let mut bytes = first.clone();
        let mut want = Vec::new();
        if let Some(end) = &m.end {
            let preview = m.preview_end.map(|ieof| (&m.preview_data[..], ieof));
            let data = if preview.is_some() {
                &m.rest_data
            } else {
                &m.preview_data
            };
            let want_end = if m.head.has_body() {
                encode_body(preview, data, end, &mut bytes)
            } else {
                end.clone()
            };
            if let Some((p, ieof)) = preview {
                if !p.is_empty() {
                    want.push(Seen::Data(p.to_vec()));
                }
                want.push(Seen::PreviewEnd(ieof));
            }
            if !data.is_empty() {
                want.push(Seen::Data(data.clone()));
            }
            want.push(Seen::End(want_end));
        }
        let again = run(&mut new_decoder(), &bytes, &[]);
        assert_eq!(again.result, Ok(()), "re-encoded: {bytes:?}");
        assert!(again.leftover.is_empty(), "re-encoded: {bytes:?}");
        let Some(Seen::Head(head)) = again.events.first() else {
            panic!(
                "re-encoded head does not decode: {bytes:?} -> {:?}",
                again.events
            )
        };
        same(&m.head, head);
        let mut second = BytesMut::new();
        encode(head, &mut second);
        assert_eq!(first, second, "encode(decode(encode(x))) != encode(x)");
        if m.end.is_some() {
            assert_eq!(again.events[1..], want[..], "re-encoded: {bytes:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, message)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            let r = run(&mut RequestDecoder::new(Limits::default()), message, &[]);
            check(
                r.events,
                |h: &RequestHead, out| h.encode(out).expect("a decoded head encodes"),
                || RequestDecoder::new(Limits::default()),
                |a, b| {
                    let mut a = a.clone();
                    let mut b = b.clone();
                    a.headers = without_encapsulated(&a.headers);
                    b.headers = without_encapsulated(&b.headers);
                    assert_eq!(a, b, "request head changed in the round trip");
                },
            );
        }
        m => {
            let method = [Method::Options, Method::Reqmod, Method::Respmod][usize::from(m - 1)];
            let r = run(
                &mut ResponseDecoder::new(method, Limits::default()),
                message,
                &[],
            );
            check(
                r.events,
                |h: &ResponseHead, out| h.encode(method, out).expect("a decoded head encodes"),
                || ResponseDecoder::new(method, Limits::default()),
                |a, b| {
                    assert_eq!(verdict::threats(a), verdict::threats(b));
                    let mut a = a.clone();
                    let mut b = b.clone();
                    a.headers = without_encapsulated(&a.headers);
                    b.headers = without_encapsulated(&b.headers);
                    assert_eq!(a, b, "response head changed in the round trip");
                },
            );
        }
    }
});
