//! Request decoding: any bytes, fed whole and in pieces the input chooses. Must not panic;
//! both runs give the same events; events follow the message grammar.
#![no_main]

use icap_proto::RequestDecoder;
use icap_proto_fuzz::{Plan, Seen, assert_grammar, assert_same, check_request_head, run};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(plan) = Plan::parse(data) else {
        return;
    };
    let whole = run(&mut RequestDecoder::new(plan.limits), plan.message, &[]);
    let pieces = run(
        &mut RequestDecoder::new(plan.limits),
        plan.message,
        &plan.pieces,
    );
    assert_same(&whole, &pieces);
    assert_grammar(&whole.events);
    for e in &whole.events {
        if let Seen::Head(h) = e {
            check_request_head(h);
        }
    }
});
