//! Requests and chunked bodies written by hand, byte for byte: the test is the referee,
//! not the codec, so none of this goes through icap-proto's encoders.

use std::fmt::Write as _;

/// An HTTP response head as embedded in RESPMOD requests.
pub const RES_HDR: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n";

/// Chunked encoding of `pieces` (empty ones skipped, since an empty chunk would end the
/// body), then `last` as given: `"0\r\n\r\n"`, `"0; ieof\r\n\r\n"`, or nothing at all.
pub fn chunks(pieces: &[&[u8]], last: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for p in pieces {
        if !p.is_empty() {
            let mut size = String::new();
            let _ = write!(size, "{:x}\r\n", p.len());
            out.extend_from_slice(size.as_bytes());
            out.extend_from_slice(p);
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(last.as_bytes());
    out
}

/// `body` in one chunk, then the last chunk.
pub fn one_chunk(body: &[u8]) -> Vec<u8> {
    chunks(&[body], "0\r\n\r\n")
}

/// `len` bytes of filler text (`abc...zabc...`).
pub fn filler(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

/// Where `needle` first occurs in `hay` (`None` for an empty needle).
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A RESPMOD request to `service` with `extra` ICAP header lines (each ending in CRLF),
/// the response head `res_hdr`, and `body` already chunk-encoded.
pub fn respmod(service: &str, extra: &str, res_hdr: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "RESPMOD icap://127.0.0.1/{service} ICAP/1.0\r\nHost: 127.0.0.1\r\n{extra}Encapsulated: res-hdr=0, res-body={}\r\n\r\n",
        res_hdr.len()
    )
    .into_bytes();
    out.extend_from_slice(res_hdr);
    out.extend_from_slice(body);
    out
}

/// A RESPMOD with a request head for `GET path` (so a file name is known) and
/// [`RES_HDR`].
pub fn respmod_with_url(service: &str, extra: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let req_hdr = format!("GET {path} HTTP/1.1\r\nHost: files.example\r\n\r\n");
    let mut out = format!(
        "RESPMOD icap://127.0.0.1/{service} ICAP/1.0\r\nHost: 127.0.0.1\r\n{extra}Encapsulated: req-hdr=0, res-hdr={}, res-body={}\r\n\r\n",
        req_hdr.len(),
        req_hdr.len() + RES_HDR.len()
    )
    .into_bytes();
    out.extend_from_slice(req_hdr.as_bytes());
    out.extend_from_slice(RES_HDR);
    out.extend_from_slice(body);
    out
}

/// A REQMOD (upload of `POST path`) with `body` already chunk-encoded.
pub fn reqmod(service: &str, extra: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let req_hdr = format!(
        "POST {path} HTTP/1.1\r\nHost: upload.example\r\nContent-Type: application/octet-stream\r\n\r\n"
    );
    let mut out = format!(
        "REQMOD icap://127.0.0.1/{service} ICAP/1.0\r\nHost: 127.0.0.1\r\n{extra}Encapsulated: req-hdr=0, req-body={}\r\n\r\n",
        req_hdr.len()
    )
    .into_bytes();
    out.extend_from_slice(req_hdr.as_bytes());
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::{RES_HDR, chunks, filler, find, reqmod, respmod, respmod_with_url};

    #[test]
    fn the_encapsulated_offsets_point_at_each_section() {
        let r = respmod("avscan", "Allow: 204\r\n", RES_HDR, b"0\r\n\r\n");
        let text = String::from_utf8(r).unwrap();
        let head_end = text.find("\r\n\r\n").unwrap() + 4;
        assert!(text.contains(&format!("res-body={}", RES_HDR.len())));
        assert_eq!(
            &text[head_end..head_end + RES_HDR.len()],
            std::str::from_utf8(RES_HDR).unwrap()
        );

        let r = String::from_utf8(respmod_with_url("a", "", "/x.zip", b"")).unwrap();
        let head_end = r.find("\r\n\r\n").unwrap() + 4;
        let req_len = "GET /x.zip HTTP/1.1\r\nHost: files.example\r\n\r\n".len();
        assert!(r.contains(&format!(
            "res-hdr={req_len}, res-body={}",
            req_len + RES_HDR.len()
        )));
        assert!(r[head_end..].starts_with("GET /x.zip "));

        let r = String::from_utf8(reqmod("a", "", "/up", b"")).unwrap();
        assert!(r.starts_with("REQMOD icap://127.0.0.1/a ICAP/1.0\r\n"));
        assert!(r.contains("Encapsulated: req-hdr=0, req-body="));
    }

    #[test]
    fn chunks_filler_and_find() {
        assert_eq!(
            chunks(&[&[b'x'; 17]], ""),
            [b"11\r\n".as_slice(), &[b'x'; 17], b"\r\n"].concat()
        );
        assert_eq!(filler(28), b"abcdefghijklmnopqrstuvwxyzab");
        assert_eq!(find(b"abcabc", b"ca"), Some(2));
        assert_eq!(find(b"abc", b""), None);
        assert_eq!(find(b"ab", b"abc"), None);
    }
}
