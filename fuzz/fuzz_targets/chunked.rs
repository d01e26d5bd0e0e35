//! The chunked body decoder alone: any bytes, fed whole and in pieces the input chooses.
//! Must not panic; both runs agree; after `End` it leaves the buffer alone; the body it
//! returns, written again with the chunk encoders (in the input's piece sizes), decodes to
//! the same data and end.
#![no_main]

use bytes::BytesMut;
use icap_proto::ChunkedDecoder;
use icap_proto::chunked;
use icap_proto_fuzz::{Plan, Seen, assert_same, encode_body, no_limits, run};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(plan) = Plan::parse(data) else {
        return;
    };
    let mut dec = ChunkedDecoder::new(plan.limits);
    let whole = run(&mut dec, plan.message, &[]);
    let pieces = run(
        &mut ChunkedDecoder::new(plan.limits),
        plan.message,
        &plan.pieces,
    );
    assert_same(&whole, &pieces);

    let body: Vec<u8> = whole
        .events
        .iter()
        .filter_map(|e| match e {
            Seen::Data(d) => Some(&d[..]),
            _ => None,
        })
        .flatten()
        .copied()
        .collect();
    assert_eq!(dec.body_len(), body.len() as u64);
    let Some(Seen::End(end)) = whole.events.last() else {
        assert!(!dec.is_done());
        return;
    };
    assert!(whole.result.is_ok());
    assert!(dec.is_done());
    let mut rest = BytesMut::from(&whole.leftover[..]);
    assert_eq!(dec.decode(&mut rest), Ok(None), "decode after End");
    assert_eq!(rest, whole.leftover, "decode after End must not consume");

    // Re-encode in the input's piece sizes (one chunk when there are none).
    let mut out = BytesMut::new();
    let sizes = if plan.pieces.is_empty() {
        vec![usize::MAX]
    } else {
        plan.pieces.clone()
    };
    let mut at = 0;
    for &n in sizes.iter().cycle() {
        if at == body.len() {
            break;
        }
        let n = n.min(body.len() - at);
        chunked::encode_chunk(&body[at..at + n], &mut out);
        at += n;
    }
    let want_end = encode_body(None, &[], end, &mut out);
    // Without limits: this checks that the values survive. The first decode may have run
    // with no limits (104 trailers, say), so the defaults would refuse what the codec wrote
    // correctly; that limits agree with themselves is `icap-proto`'s own tests.
    let again = run(&mut ChunkedDecoder::new(no_limits()), &out, &[]);
    assert_eq!(again.result, Ok(()), "re-encoded body: {out:?}");
    let mut want = Vec::new();
    if !body.is_empty() {
        want.push(Seen::Data(body));
    }
    want.push(Seen::End(want_end));
    assert_eq!(again.events, want, "re-encoded body: {out:?}");
    assert!(again.leftover.is_empty());
});
