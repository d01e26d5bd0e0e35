//! Latency histograms and the `--hdr-out` file.
//!
//! The file is an `HdrHistogram` interval log (the text format of `HdrHistogram`'s
//! `HistogramLogWriter`): header comments, then one interval line whose last column is the
//! whole measured run's histogram, V2 compressed (V2 + DEFLATE) and base64-encoded. Values
//! are latencies in microseconds; the `Interval_Max` column is in milliseconds
//! (`MaxValueDivisor: 1000`). One comment line `#icap-client-bench: {JSON}` carries this
//! run's counts (scans, bytes, verdicts, errors, per-second series), so that
//! `bench merge` rebuilds a whole report; other `HdrHistogram` tools ignore it.

use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry,
};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};

use super::report::Summary;

/// Highest latency tracked: one hour in microseconds (longer ones are counted as one hour).
pub(crate) const MAX_US: u64 = 3_600_000_000;

/// The prefix of the comment line holding the counts.
const SUMMARY_TAG: &str = "icap-client-bench: ";

/// Largest `--hdr-out` file `bench merge` reads (a run's file is a few kilobytes).
const MAX_FILE: u64 = 64 * 1024 * 1024;

/// An empty latency histogram (1 µs to one hour, 3 significant digits).
pub(crate) fn new_histogram() -> Histogram<u64> {
    let mut h = Histogram::new_with_bounds(1, MAX_US, 3).expect("static bounds are valid");
    // Histograms read from files may have other bounds; adding them must not fail.
    h.auto(true);
    h
}

/// Records one latency, clamped to 1 µs ..= [`MAX_US`].
pub(crate) fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    h.saturating_record(us.clamp(1, MAX_US));
}

/// The interval log text of a run.
pub(crate) fn encode(summary: &Summary, h: &Histogram<u64>) -> Result<Vec<u8>> {
    let start = SystemTime::UNIX_EPOCH + Duration::from_millis(summary.start_unix_ms);
    let mut buf = Vec::new();
    let mut ser = V2DeflateSerializer::new();
    let mut w = IntervalLogWriterBuilder::new()
        .add_comment("icap-client bench: scan latencies in microseconds (V2 compressed, base64)")
        .with_start_time(start)
        .with_base_time(start)
        .with_max_value_divisor(1000.0)
        .begin_log_with(&mut buf, &mut ser)
        .context("write the histogram log")?;
    let json = serde_json::to_string(summary)?;
    w.write_comment(&format!("{SUMMARY_TAG}{json}"))?;
    w.write_histogram(
        h,
        Duration::ZERO,
        Duration::from_millis(summary.duration_ms),
        None,
    )
    .map_err(|e| anyhow::anyhow!("write the histogram log: {e:?}"))?;
    Ok(buf)
}

/// Reads a file written by [`encode`] (or any interval log of microsecond latencies: then
/// without counts): the sum of its interval histograms and its counts, if present.
pub(crate) fn read_file(path: &std::path::Path) -> Result<(Option<Summary>, Histogram<u64>)> {
    let shown = path.display();
    let len = std::fs::metadata(path)
        .with_context(|| format!("{shown}"))?
        .len();
    if len > MAX_FILE {
        bail!("{shown}: {len} bytes, larger than any histogram log this tool writes");
    }
    let bytes = std::fs::read(path).with_context(|| format!("{shown}"))?;
    decode(&bytes).with_context(|| format!("{shown}"))
}

/// See [`read_file`].
pub(crate) fn decode(bytes: &[u8]) -> Result<(Option<Summary>, Histogram<u64>)> {
    let mut summary = None;
    for line in bytes.split(|&b| b == b'\n') {
        if let Some(rest) = line
            .strip_prefix(b"#")
            .and_then(|l| l.strip_prefix(SUMMARY_TAG.as_bytes()))
        {
            summary = Some(serde_json::from_slice(rest).context("the counts line")?);
        }
    }
    let mut total = new_histogram();
    let mut intervals = 0usize;
    for entry in IntervalLogIterator::new(bytes) {
        let entry = entry.map_err(|e| anyhow::anyhow!("not an HdrHistogram log: {e:?}"))?;
        if let LogEntry::Interval(i) = entry {
            let raw = base64_decode(i.encoded_histogram().as_bytes())
                .context("an interval's histogram is not base64")?;
            let h: Histogram<u64> = Deserializer::new()
                .deserialize(&mut raw.as_slice())
                .map_err(|e| anyhow::anyhow!("an interval's histogram: {e:?}"))?;
            total
                .add(&h)
                .map_err(|e| anyhow::anyhow!("an interval's histogram: {e:?}"))?;
            intervals += 1;
        }
    }
    if intervals == 0 {
        bail!("no histogram in the file");
    }
    Ok((summary, total))
}

/// Standard base64 (with or without padding); `None` on any other byte.
///
/// Hand-written on purpose: `bench merge` is its only user (the `HdrHistogram` interval log
/// holds base64), it is 30 lines with known-answer tests, and a crate for it would be
/// compiled by every build of the binary for this one file format.
fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    }
    let text = text
        .strip_suffix(b"==")
        .or_else(|| text.strip_suffix(b"="))
        .unwrap_or(text);
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 3);
    for group in text.chunks(4) {
        let mut acc = 0u32;
        for &c in group {
            acc = (acc << 6) | value(c)?;
        }
        let bits = group.len() * 6;
        acc <<= 24 - bits;
        let bytes = acc.to_be_bytes();
        match group.len() {
            4 => out.extend_from_slice(&bytes[1..4]),
            3 => out.extend_from_slice(&bytes[1..3]),
            2 => out.push(bytes[1]),
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_known_answers() {
        for (text, bytes) in [
            (&b""[..], &b""[..]),
            (b"Zg==", b"f"),
            (b"Zm8=", b"fo"),
            (b"Zm9v", b"foo"),
            (b"Zm9vYg", b"foob"),
            (b"+/+/", &[0xfb, 0xff, 0xbf]),
        ] {
            assert_eq!(base64_decode(text).as_deref(), Some(bytes), "{text:?}");
        }
        for bad in [&b"Z"[..], b"Zm9v!", b"Zm 9"] {
            assert_eq!(base64_decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn log_round_trip_keeps_every_count() {
        let mut h = new_histogram();
        for v in [1u64, 17, 250, 1_000, 99_999, 2_500_000] {
            h.saturating_record_n(v, v % 7 + 1);
        }
        let s = Summary::default();
        let text = encode(&s, &h).unwrap();
        let (back, g) = decode(&text).unwrap();
        assert!(back.is_some());
        assert_eq!(g.len(), h.len());
        for v in h.iter_recorded() {
            assert_eq!(g.count_at(v.value_iterated_to()), v.count_at_value());
        }
        assert!(decode(b"#nothing here\n").is_err());
    }
}
