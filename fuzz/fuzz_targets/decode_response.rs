//! Response decoding for the answer to each method: any bytes, fed whole and in pieces the
//! input chooses. Must not panic; both runs give the same events; events follow the message
//! grammar; every decoded head satisfies the verdict invariants.
#![no_main]

use icap_proto::{Method, ResponseDecoder};
use icap_proto_fuzz::{Plan, Seen, assert_grammar, assert_same, check_response_head, run};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(plan) = Plan::parse(data) else {
        return;
    };
    for method in [Method::Options, Method::Reqmod, Method::Respmod] {
        let whole = run(
            &mut ResponseDecoder::new(method, plan.limits),
            plan.message,
            &[],
        );
        let pieces = run(
            &mut ResponseDecoder::new(method, plan.limits),
            plan.message,
            &plan.pieces,
        );
        assert_same(&whole, &pieces);
        assert_grammar(&whole.events);
        for e in &whole.events {
            if let Seen::Head(h) = e {
                check_response_head(h, method);
            }
        }
    }
});
