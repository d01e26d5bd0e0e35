//! The fault injectors that break an answer's bytes, as pure functions: each takes the
//! encoded answer (head bytes, chunked body bytes) and returns what goes out instead. The
//! connection writes the result and closes, resets or stays silent as the fault says.

use bytes::BytesMut;

use crate::reply::FaultKind;
use crate::rng::splitmix64;

/// Faults that need a response body to break: a clean answer without one becomes a
/// block page so they have something to break.
pub(super) fn breaks_body(f: Option<FaultKind>) -> bool {
    matches!(
        f,
        Some(
            FaultKind::BadChunkSize
                | FaultKind::MissingTerminalChunk
                | FaultKind::WrongEncapsulated
                | FaultKind::CloseMidResponse
        )
    )
}

/// `garbage`: 64 bytes that are not ICAP, the same for the same transaction id.
pub(super) fn garbage(tx_id: u64) -> Vec<u8> {
    let mut state = tx_id ^ 0x1CA9_0000_0000_0000;
    let mut junk = Vec::with_capacity(72);
    junk.extend_from_slice(b"\x00\xffNOT-ICAP ");
    while junk.len() < 64 {
        junk.extend_from_slice(&splitmix64(&mut state).to_le_bytes());
    }
    junk.truncate(64);
    junk
}

/// `truncated_response`: the first half of the head, nothing after it.
pub(super) fn truncated_response(head: &[u8]) -> &[u8] {
    &head[..head.len() / 2]
}

/// `close_mid_response`: the head and the first half of the body.
pub(super) fn close_mid_response(mut head: BytesMut, body: &[u8]) -> BytesMut {
    head.extend_from_slice(&body[..body.len() / 2]);
    head
}

/// `bad_chunk_size`: the head, then the body with its first chunk size replaced by
/// something that is not hex.
pub(super) fn bad_chunk_size(mut head: BytesMut, body: &[u8]) -> BytesMut {
    let line_end = memchr::memmem::find(body, b"\r\n").unwrap_or(0);
    head.extend_from_slice(b"zz");
    head.extend_from_slice(&body[line_end..]);
    head
}

/// `missing_terminal_chunk`: the head and the body without its last chunk (the
/// connection then stays silent).
pub(super) fn missing_terminal_chunk(mut head: BytesMut, body: &[u8]) -> BytesMut {
    let cut = memchr::memmem::rfind(body, b"0\r\n\r\n").unwrap_or(body.len());
    head.extend_from_slice(&body[..cut]);
    head
}

/// `wrong_encapsulated`: the head with its last `Encapsulated` offset wrong, then the body.
pub(super) fn wrong_encapsulated(head: &[u8], body: &[u8]) -> BytesMut {
    let mut out = BytesMut::from(&shift_encapsulated(head)[..]);
    out.extend_from_slice(body);
    out
}

/// Rewrites the last `Encapsulated` offset 7 bytes too far (or adds a bogus
/// `Encapsulated` when the head has none). Works on the bytes, so the rest of the head
/// (non-ASCII reasons or threat names included) goes out unchanged.
pub(super) fn shift_encapsulated(head: &[u8]) -> Vec<u8> {
    const FIELD: &[u8] = b"\r\nEncapsulated: ";
    let Some(start) = memchr::memmem::find(head, FIELD) else {
        let mut out = head.strip_suffix(b"\r\n\r\n").unwrap_or(head).to_vec();
        out.extend_from_slice(b"\r\nEncapsulated: res-hdr=0, res-body=64\r\n\r\n");
        return out;
    };
    let vstart = start.saturating_add(FIELD.len());
    let vend = vstart.saturating_add(memchr::memmem::find(&head[vstart..], b"\r\n").unwrap_or(0));
    let Ok(enc) = icap_proto::Encapsulated::parse(&head[vstart..vend]) else {
        return head.to_vec();
    };
    let Some(last) = enc.entries().len().checked_sub(1) else {
        return head.to_vec();
    };
    let value: Vec<String> = enc
        .entries()
        .iter()
        .enumerate()
        .map(|(i, (section, at))| {
            // An offset already at the top cannot go 7 further: it goes 7 back instead,
            // still wrong, which is the point.
            let at = if i == last {
                at.checked_add(7).unwrap_or(at - 7)
            } else {
                *at
            };
            format!("{}={at}", section.as_str())
        })
        .collect();
    let mut out = head[..vstart].to_vec();
    out.extend_from_slice(value.join(", ").as_bytes());
    out.extend_from_slice(&head[vend..]);
    out
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::{
        bad_chunk_size, breaks_body, close_mid_response, garbage, missing_terminal_chunk,
        shift_encapsulated, truncated_response, wrong_encapsulated,
    };
    use crate::reply::FaultKind;

    const HEAD: &[u8] =
        b"ICAP/1.0 200 OK\r\nISTag: \"x\"\r\nEncapsulated: res-hdr=0, res-body=19\r\n\r\nHTTP/1.1 200 OK\r\n\r\n";
    const BODY: &[u8] = b"5\r\nhello\r\n0\r\n\r\n";

    fn encapsulated_of(head: &[u8]) -> String {
        let text = String::from_utf8_lossy(head).into_owned();
        text.lines()
            .find_map(|l| l.strip_prefix("Encapsulated: "))
            .expect("an Encapsulated line")
            .to_owned()
    }

    #[test]
    fn wrong_encapsulated_shifts_the_last_offset_and_never_overflows() {
        let rows: [(&[u8], &str); 3] = [
            (
                b"ICAP/1.0 200 OK\r\nISTag: \"x\"\r\nEncapsulated: res-hdr=0, res-body=60\r\n\r\n",
                "res-hdr=0, res-body=67",
            ),
            // The largest offset a u64 holds cannot go 7 further; it goes 7 back.
            (
                b"ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=18446744073709551615\r\n\r\n",
                "res-hdr=0, res-body=18446744073709551608",
            ),
            (
                b"ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, null-body=18446744073709551610\r\n\r\n",
                "res-hdr=0, null-body=18446744073709551603",
            ),
        ];
        for (head, want) in rows {
            assert_eq!(encapsulated_of(&shift_encapsulated(head)), want);
        }
        // No Encapsulated: one is added. A value that does not parse is left alone.
        let added = shift_encapsulated(b"ICAP/1.0 204 No Content\r\nISTag: \"x\"\r\n\r\n");
        assert_eq!(encapsulated_of(&added), "res-hdr=0, res-body=64");
        let odd: &[u8] = b"ICAP/1.0 200 OK\r\nEncapsulated: \r\n\r\n";
        assert_eq!(shift_encapsulated(odd), odd);
    }

    #[test]
    fn each_body_fault_breaks_exactly_its_part() {
        let head = || BytesMut::from(HEAD);
        let cut = close_mid_response(head(), BODY);
        assert_eq!(&cut[..HEAD.len()], HEAD);
        assert_eq!(&cut[HEAD.len()..], &BODY[..BODY.len() / 2]);

        let bad = bad_chunk_size(head(), BODY);
        assert_eq!(&bad[HEAD.len()..], b"zz\r\nhello\r\n0\r\n\r\n");

        let open = missing_terminal_chunk(head(), BODY);
        assert_eq!(&open[HEAD.len()..], b"5\r\nhello\r\n");
        // A body without a last chunk is sent whole.
        assert_eq!(
            &missing_terminal_chunk(head(), b"5\r\nhello\r\n")[HEAD.len()..],
            b"5\r\nhello\r\n"
        );

        assert_eq!(truncated_response(HEAD), &HEAD[..HEAD.len() / 2]);
        assert!(truncated_response(b"").is_empty());

        let wrong = wrong_encapsulated(HEAD, BODY);
        let text = String::from_utf8_lossy(&wrong);
        assert!(
            text.contains("Encapsulated: res-hdr=0, res-body=26\r\n"),
            "{text}"
        );
        assert!(wrong.ends_with(BODY));
        // Nothing to break: empty bodies go through without a panic.
        assert_eq!(&close_mid_response(head(), b"")[..], HEAD);
        assert_eq!(&bad_chunk_size(head(), b"")[HEAD.len()..], b"zz");
    }

    #[test]
    fn garbage_is_64_bytes_of_not_icap_and_reproducible() {
        let g = garbage(7);
        assert_eq!(g.len(), 64);
        assert!(g.starts_with(b"\x00\xffNOT-ICAP "));
        assert_eq!(g, garbage(7));
        assert_ne!(g, garbage(8));
    }

    #[test]
    fn only_the_faults_that_break_a_body_need_one() {
        for f in [
            FaultKind::BadChunkSize,
            FaultKind::MissingTerminalChunk,
            FaultKind::WrongEncapsulated,
            FaultKind::CloseMidResponse,
        ] {
            assert!(breaks_body(Some(f)), "{f:?}");
        }
        for f in [
            None,
            Some(FaultKind::Garbage),
            Some(FaultKind::Reset),
            Some(FaultKind::TruncatedResponse),
        ] {
            assert!(!breaks_body(f), "{f:?}");
        }
    }
}
