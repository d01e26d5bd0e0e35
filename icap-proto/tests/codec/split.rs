//! Feeding a fixture in any pieces gives the same events as feeding it whole.

use icap_proto::Limits;
use proptest::prelude::*;

use crate::common::{FIXTURES, Outcome, feed, feed_whole, fixture, merge_data};

fn same(name: &str, whole: &Outcome, got: &Outcome, how: &str) {
    assert_eq!(got.error, None, "{name} {how}");
    assert!(
        got.idle && got.left == 0,
        "{name} {how}: not at a message boundary"
    );
    assert_eq!(
        merge_data(&got.events),
        merge_data(&whole.events),
        "{name} {how}"
    );
}

#[test]
fn every_two_way_split_of_every_fixture() {
    let mut runs = 0;
    for &(name, kind, _) in FIXTURES {
        let bytes = fixture(name);
        let whole = feed_whole(kind, &bytes);
        assert_eq!(whole.error, None, "{name}");
        for at in 0..=bytes.len() {
            let got = feed(kind, Limits::default(), [&bytes[..at], &bytes[at..]]);
            same(name, &whole, &got, &format!("split at {at}"));
            runs += 1;
        }
    }
    assert!(runs > 8000, "{runs}");
}

#[test]
fn every_fixture_byte_by_byte() {
    for &(name, kind, _) in FIXTURES {
        let bytes = fixture(name);
        let whole = feed_whole(kind, &bytes);
        let got = feed(kind, Limits::default(), bytes.chunks(1));
        same(name, &whole, &got, "byte by byte");
        // Byte by byte, every body byte comes out as its own Data event or in order.
        let events_bytes: usize = got
            .events
            .iter()
            .map(|e| match e {
                crate::common::Ev::Data(d) => d.len(),
                _ => 0,
            })
            .sum();
        let whole_bytes: usize = whole
            .events
            .iter()
            .map(|e| match e {
                crate::common::Ev::Data(d) => d.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(events_bytes, whole_bytes, "{name}");
    }
}

#[test]
fn every_fixture_twice_on_one_stream() {
    // A reused connection: the decoder must come back to a clean state after each message.
    for &(name, kind, _) in FIXTURES {
        let bytes = fixture(name);
        let whole = feed_whole(kind, &bytes);
        let mut twice = bytes.clone();
        twice.extend_from_slice(&bytes);
        let got = feed(kind, Limits::default(), [&twice[..]]);
        assert_eq!(got.error, None, "{name}");
        let mut want = merge_data(&whole.events);
        want.extend(merge_data(&whole.events));
        assert_eq!(merge_data(&got.events), want, "{name}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any number of cuts anywhere, in any fixture.
    #[test]
    fn any_split_of_any_fixture(
        which in 0..FIXTURES.len(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let (name, kind, _) = FIXTURES[which];
        let bytes = fixture(name);
        let whole = feed_whole(kind, &bytes);
        let mut at: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        at.push(0);
        at.push(bytes.len());
        at.sort_unstable();
        let pieces: Vec<&[u8]> = at.windows(2).map(|w| &bytes[w[0]..w[1]]).collect();
        let got = feed(kind, Limits::default(), pieces);
        prop_assert_eq!(got.error, None);
        prop_assert!(got.idle && got.left == 0);
        prop_assert_eq!(merge_data(&got.events), merge_data(&whole.events));
    }
}
