//! Chunked bodies (RFC 7230 section 4.1 as used by RFC 3507 section 4.5): a streaming
//! decoder and the encoders, including the ICAP `ieof` extension.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use nom::Parser;
use nom::bytes::complete::{tag, take_while, take_while_m_n, take_while1};

use crate::error::{DecodeError, Limit};
use crate::header::{Headers, is_tchar};
use crate::limits::Limits;
use crate::parse;

/// How a chunked body ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BodyEnd {
    /// The last chunk carried `ieof`: the preview held the whole body.
    pub ieof: bool,
    /// `use-original-body=N` on the last chunk: the client should append its own body from
    /// byte `N` (RFC 3507 section 4.5, used with 206 responses).
    pub use_original_body: Option<u64>,
    /// Trailer fields after the last chunk.
    pub trailers: Headers,
}

/// What [`ChunkedDecoder::decode`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkEvent {
    /// Body bytes, split off the input buffer without copying.
    Data(Bytes),
    /// The last chunk and trailers were read.
    End(BodyEnd),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size,
    Data(u64),
    DataCrlf,
    Trailers {
        ieof: bool,
        use_original_body: Option<u64>,
    },
    Done,
}

/// A resumable decoder of one chunked body.
///
/// ```
/// use bytes::BytesMut;
/// use icap_proto::{ChunkEvent, ChunkedDecoder, Limits};
/// let mut dec = ChunkedDecoder::new(Limits::default());
/// let mut buf = BytesMut::from(&b"5\r\nhello\r\n0; ieof\r\n\r\n"[..]);
/// assert_eq!(dec.decode(&mut buf).unwrap(), Some(ChunkEvent::Data("hello".into())));
/// match dec.decode(&mut buf).unwrap() {
///     Some(ChunkEvent::End(end)) => assert!(end.ieof),
///     other => panic!("{other:?}"),
/// }
/// assert!(buf.is_empty());
/// ```
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    limits: Limits,
    scanned: usize,
    ext_used: usize,
    body_seen: u64,
    obs_fold: bool,
}

impl ChunkedDecoder {
    /// A decoder at the start of a body.
    pub fn new(limits: Limits) -> Self {
        ChunkedDecoder {
            state: State::Size,
            limits,
            scanned: 0,
            ext_used: 0,
            body_seen: 0,
            obs_fold: true,
        }
    }

    /// Whether trailer fields may be folded (obs-fold). Default `true`; the
    /// [`RequestDecoder`](crate::RequestDecoder) turns it off with its own setting.
    #[must_use]
    pub fn with_obs_fold(mut self, allow: bool) -> Self {
        self.obs_fold = allow;
        self
    }

    /// Starts a further chunked stream in the same message (the part after a preview),
    /// keeping the per-message extension and body budgets.
    pub fn restart(&mut self) {
        self.state = State::Size;
        self.scanned = 0;
    }

    /// Whether the body has ended.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Body bytes handed out so far.
    pub fn body_len(&self) -> u64 {
        self.body_seen
    }

    /// Decodes the next event from `buf`, or `Ok(None)` if more bytes are needed.
    /// After [`ChunkEvent::End`] it returns `Ok(None)` and leaves `buf` alone.
    #[allow(clippy::too_many_lines)] // one state machine over the chunk grammar: one match shows every transition
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<ChunkEvent>, DecodeError> {
        loop {
            match self.state {
                State::Size => {
                    let Some(line_len) =
                        self.find_line(buf, self.limits.max_chunk_line, Limit::ChunkLine)?
                    else {
                        return Ok(None);
                    };
                    let line = parse_chunk_line(&buf[..line_len])?;
                    // The line is the digits, extensions and CRLF; saturating all the same,
                    // as with every count of peer bytes here.
                    self.ext_used = self
                        .ext_used
                        .saturating_add(line_len.saturating_sub(line.digits + 2));
                    if self.ext_used > self.limits.max_chunk_extensions {
                        return Err(DecodeError::limit(
                            Limit::ChunkExtensions,
                            self.limits.max_chunk_extensions,
                        ));
                    }
                    buf.advance(line_len);
                    self.scanned = 0;
                    if line.size == 0 {
                        self.state = State::Trailers {
                            ieof: line.ieof,
                            use_original_body: line.use_original_body,
                        };
                    } else {
                        if self.limits.max_body.saturating_sub(self.body_seen) < line.size {
                            return Err(DecodeError::LimitExceeded {
                                limit: Limit::Body,
                                max: self.limits.max_body,
                            });
                        }
                        self.state = State::Data(line.size);
                    }
                }
                State::Data(remaining) => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let n = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(buf.len());
                    let data = buf.split_to(n).freeze();
                    self.body_seen = self.body_seen.saturating_add(n as u64);
                    // `n` is at most `remaining`.
                    let left = remaining.saturating_sub(n as u64);
                    self.state = if left == 0 {
                        State::DataCrlf
                    } else {
                        State::Data(left)
                    };
                    return Ok(Some(ChunkEvent::Data(data)));
                }
                State::DataCrlf => {
                    match buf.len() {
                        0 => return Ok(None),
                        1 if buf[0] == b'\r' => return Ok(None),
                        _ => {}
                    }
                    if !buf.starts_with(b"\r\n") {
                        return Err(if buf[0] == b'\n' {
                            DecodeError::BareLineFeed
                        } else {
                            DecodeError::InvalidChunkTerminator
                        });
                    }
                    buf.advance(2);
                    self.state = State::Size;
                }
                State::Trailers {
                    ieof,
                    use_original_body,
                } => {
                    let trailers = if buf.starts_with(b"\r\n") {
                        buf.advance(2);
                        Headers::new()
                    } else {
                        if buf.len() < 2 {
                            return Ok(None);
                        }
                        let mut scanned = self.scanned;
                        // Its only error is a bare LF, reported as such like in heads.
                        let found = parse::find_head_end(
                            &buf[..buf.len().min(self.limits.max_trailers.saturating_add(1))],
                            &mut scanned,
                        )?;
                        self.scanned = scanned;
                        let Some(end) = found else {
                            if buf.len() > self.limits.max_trailers {
                                return Err(DecodeError::limit(
                                    Limit::Trailers,
                                    self.limits.max_trailers,
                                ));
                            }
                            return Ok(None);
                        };
                        if end > self.limits.max_trailers {
                            return Err(DecodeError::limit(
                                Limit::Trailers,
                                self.limits.max_trailers,
                            ));
                        }
                        let section = buf.split_to(end).freeze();
                        let (headers, rest, _) = parse::parse_fields(
                            section,
                            0,
                            &self.limits,
                            parse::FieldRules {
                                obs_fold: self.obs_fold,
                                icap: false,
                            },
                        )
                        .map_err(|e| {
                            if e.is_limit() || e == DecodeError::ObsFold {
                                e
                            } else {
                                DecodeError::InvalidTrailer
                            }
                        })?;
                        debug_assert_eq!(rest, 2);
                        // Measured as written again too (`name: value` per field, then the
                        // empty line), so that what decodes here re-encodes within the limit.
                        if headers.encoded_len().saturating_add(2) > self.limits.max_trailers {
                            return Err(DecodeError::limit(
                                Limit::Trailers,
                                self.limits.max_trailers,
                            ));
                        }
                        headers
                    };
                    self.state = State::Done;
                    self.scanned = 0;
                    return Ok(Some(ChunkEvent::End(BodyEnd {
                        ieof,
                        use_original_body,
                        trailers,
                    })));
                }
                State::Done => return Ok(None),
            }
        }
    }

    /// Finds the LF ending the line at the start of `buf`, within `max` bytes.
    fn find_line(
        &mut self,
        buf: &[u8],
        max: usize,
        limit: Limit,
    ) -> Result<Option<usize>, DecodeError> {
        let window = &buf[..buf.len().min(max)];
        if let Some(i) = memchr::memchr(b'\n', &window[self.scanned.min(window.len())..]) {
            let lf = self.scanned + i;
            return Ok(Some(lf + 1));
        }
        if buf.len() >= max {
            return Err(DecodeError::limit(limit, max));
        }
        self.scanned = buf.len();
        Ok(None)
    }
}

struct ChunkLine {
    size: u64,
    digits: usize,
    ieof: bool,
    use_original_body: Option<u64>,
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `chunk-size = 1*16HEXDIG`, then `*( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )`
/// and CRLF. `ext-val = token / quoted-string`. Recognises `ieof` and
/// `use-original-body=N`; other extensions are ignored.
fn parse_chunk_line(line: &[u8]) -> Result<ChunkLine, DecodeError> {
    let Some(body) = line.strip_suffix(b"\r\n") else {
        return Err(DecodeError::BareLineFeed);
    };
    let (mut i, hex) = take_while_m_n::<_, _, ()>(1, 16, |b: u8| b.is_ascii_hexdigit())
        .parse(body)
        .map_err(|_| DecodeError::InvalidChunkSize)?;
    if i.first().is_some_and(u8::is_ascii_hexdigit) {
        return Err(DecodeError::ChunkSizeOverflow);
    }
    let size = hex
        .iter()
        .fold(0u64, |n, &d| (n << 4) | u64::from(hex_val(d)));
    let mut out = ChunkLine {
        size,
        digits: hex.len(),
        ieof: false,
        use_original_body: None,
    };
    let bws = |i| take_while::<_, _, ()>(is_ws).parse(i).map_or(i, |(i, _)| i);
    loop {
        i = bws(i);
        if i.is_empty() {
            return Ok(out);
        }
        let (rest, _) = tag::<_, _, ()>(&b";"[..])
            .parse(i)
            .map_err(|_| DecodeError::InvalidChunkSize)?;
        let rest = bws(rest);
        let (rest, name) = take_while1::<_, _, ()>(is_tchar)
            .parse(rest)
            .map_err(|_| DecodeError::InvalidChunkSize)?;
        let after_ws = bws(rest);
        let (rest, value) = if let Some(v) = after_ws.strip_prefix(b"=") {
            let v = bws(v);
            let (rest, value) = parse_ext_value(v).ok_or(DecodeError::InvalidChunkSize)?;
            (rest, Some(value))
        } else {
            (rest, None)
        };
        if name.eq_ignore_ascii_case(b"ieof") {
            // Only the last chunk of a preview can say the body ends there; on a data
            // chunk the peer and we would disagree on where the body ends.
            if size != 0 {
                return Err(DecodeError::IeofOnDataChunk);
            }
            out.ieof = true;
        } else if name.eq_ignore_ascii_case(b"use-original-body") && size == 0 {
            let v = value
                .and_then(crate::header::parse_u64)
                .ok_or(DecodeError::InvalidChunkSize)?;
            out.use_original_body = Some(v);
        }
        i = rest;
    }
}

fn parse_ext_value(v: &[u8]) -> Option<(&[u8], &[u8])> {
    if let Some(q) = v.strip_prefix(b"\"") {
        let mut k = 0;
        while k < q.len() {
            match q[k] {
                b'"' => return Some((&q[k + 1..], &q[..k])),
                b'\\' => k += 2,
                b'\r' | b'\n' | 0 => return None,
                _ => k += 1,
            }
        }
        None
    } else {
        take_while1::<_, _, ()>(is_tchar).parse(v).ok()
    }
}

fn hex_val(d: u8) -> u8 {
    match d {
        b'0'..=b'9' => d - b'0',
        b'a'..=b'f' => d - b'a' + 10,
        _ => d - b'A' + 10,
    }
}

/// Writes one chunk: size line, data, CRLF. Empty data writes nothing (an empty chunk
/// would end the body).
pub fn encode_chunk(data: &[u8], out: &mut BytesMut) {
    if data.is_empty() {
        return;
    }
    encode_chunk_header(data.len() as u64, out);
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

/// Writes just the size line of a chunk of `len` bytes, for callers that send the data
/// from their own buffer (then they must send CRLF after it). `len` must not be 0: a
/// zero-size chunk is the last chunk and would end the body.
pub fn encode_chunk_header(len: u64, out: &mut BytesMut) {
    let mut digits = [0u8; 16];
    let mut n = len;
    let mut k = 16;
    loop {
        k -= 1;
        digits[k] = b"0123456789abcdef"[(n & 0xf) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.reserve(18 + 16);
    out.put_slice(&digits[k..]);
    out.put_slice(b"\r\n");
}

/// Writes the last chunk: `0`, `; ieof` when asked, then trailers and the empty line.
pub fn encode_last_chunk(ieof: bool, trailers: &Headers, out: &mut BytesMut) {
    out.put_slice(if ieof {
        b"0; ieof\r\n".as_slice()
    } else {
        b"0\r\n".as_slice()
    });
    trailers.encode(out);
    out.put_slice(b"\r\n");
}

/// Writes the last chunk of a `206` response: `0; use-original-body=N`.
pub fn encode_last_chunk_use_original(offset: u64, out: &mut BytesMut) {
    out.put_slice(format!("0; use-original-body={offset}\r\n\r\n").as_bytes());
}

/// Writes a whole body as one chunk and the last chunk.
pub fn encode_body(body: &[u8], out: &mut BytesMut) {
    encode_chunk(body, out);
    encode_last_chunk(false, &Headers::new(), out);
}

/// Writes the preview part of `body` for `Preview: preview`: up to `preview` bytes as a
/// chunk, then `0; ieof` if that was the whole body or `0` if more follows. Returns the
/// remainder to send (with [`encode_body`]) after `100 Continue`.
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// let mut out = BytesMut::new();
/// let rest = icap_proto::chunked::encode_preview(&Bytes::from_static(b"abcdef"), 4, &mut out);
/// assert_eq!(&out[..], b"4\r\nabcd\r\n0\r\n\r\n");
/// assert_eq!(&rest[..], b"ef");
/// ```
pub fn encode_preview(body: &Bytes, preview: usize, out: &mut BytesMut) -> Bytes {
    let n = preview.min(body.len());
    encode_chunk(&body[..n], out);
    let complete = n == body.len();
    encode_last_chunk(complete, &Headers::new(), out);
    body.slice(n..)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8]) -> Result<(Vec<u8>, BodyEnd), DecodeError> {
        let mut dec = ChunkedDecoder::new(Limits::default());
        let mut buf = BytesMut::from(input);
        let mut data = Vec::new();
        loop {
            match dec.decode(&mut buf)? {
                Some(ChunkEvent::Data(d)) => data.extend_from_slice(&d),
                Some(ChunkEvent::End(end)) => return Ok((data, end)),
                None => return Err(DecodeError::InvalidChunkSize),
            }
        }
    }

    #[test]
    fn table() {
        type Row = (
            &'static [u8],
            Result<(&'static [u8], bool, Option<u64>), DecodeError>,
        );
        let rows: &[Row] = &[
            (b"0\r\n\r\n", Ok((b"", false, None))),
            (b"3\r\nabc\r\n0\r\n\r\n", Ok((b"abc", false, None))),
            (
                b"A\r\n0123456789\r\n0\r\n\r\n",
                Ok((b"0123456789", false, None)),
            ),
            (
                b"3;name=val;x=\"q;\\\"\"\r\nabc\r\n0 ; ieof\r\n\r\n",
                Ok((b"abc", true, None)),
            ),
            (
                b"0; use-original-body=42\r\n\r\n",
                Ok((b"", false, Some(42))),
            ),
            (b"0; ieof\r\nX-T: 1\r\n\r\n", Ok((b"", true, None))),
            (
                b"0000000000000003\r\nabc\r\n0\r\n\r\n",
                Ok((b"abc", false, None)),
            ),
            (
                b"10000000000000000\r\n",
                Err(DecodeError::ChunkSizeOverflow),
            ),
            (
                b"5; ieof\r\nhello\r\n0\r\n\r\n",
                Err(DecodeError::IeofOnDataChunk),
            ),
            (
                b"1;x=y;IEOF=1\r\na\r\n0\r\n\r\n",
                Err(DecodeError::IeofOnDataChunk),
            ),
            (b"g\r\n", Err(DecodeError::InvalidChunkSize)),
            (b"\r\n", Err(DecodeError::InvalidChunkSize)),
            (b"3 junk\r\n", Err(DecodeError::InvalidChunkSize)),
            (b"3\nabc", Err(DecodeError::BareLineFeed)),
            (b"3\r\nabcX\r\n", Err(DecodeError::InvalidChunkTerminator)),
            (
                b"0\r\nbad trailer\r\n\r\n",
                Err(DecodeError::InvalidTrailer),
            ),
            (
                b"0; use-original-body=x\r\n\r\n",
                Err(DecodeError::InvalidChunkSize),
            ),
        ];
        for (input, want) in rows {
            let got = run(input).map(|(d, e)| (d, e.ieof, e.use_original_body));
            let want = want.map(|(d, i, u)| (d.to_vec(), i, u));
            assert_eq!(got, want, "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn chunk_line_limit() {
        let mut dec = ChunkedDecoder::new(Limits::default().with_max_chunk_line(8));
        let mut buf = BytesMut::from(&b"3;aaaaaaaaaaaa"[..]);
        assert_eq!(
            dec.decode(&mut buf),
            Err(DecodeError::LimitExceeded {
                limit: Limit::ChunkLine,
                max: 8
            })
        );
    }

    #[test]
    fn extension_budget_is_per_message() {
        let mut dec = ChunkedDecoder::new(Limits::default().with_max_chunk_extensions(10));
        let mut buf = BytesMut::from(&b"1;abcdef\r\na\r\n1;abcdef\r\nb\r\n"[..]);
        assert!(matches!(
            dec.decode(&mut buf),
            Ok(Some(ChunkEvent::Data(_)))
        ));
        assert_eq!(
            dec.decode(&mut buf),
            Err(DecodeError::LimitExceeded {
                limit: Limit::ChunkExtensions,
                max: 10
            })
        );
    }

    #[test]
    fn body_limit() {
        let mut dec = ChunkedDecoder::new(Limits::default().with_max_body(4));
        let mut buf = BytesMut::from(&b"5\r\nhello\r\n"[..]);
        assert_eq!(
            dec.decode(&mut buf),
            Err(DecodeError::LimitExceeded {
                limit: Limit::Body,
                max: 4
            })
        );
    }

    // Found by the `chunked` fuzz target: `usize::MAX`, the way to ask for no limit,
    // overflowed when the trailer window was computed.
    #[test]
    fn trailers_without_limit() {
        let mut dec = ChunkedDecoder::new(Limits::default().with_max_trailers(usize::MAX));
        let mut buf = BytesMut::from(&b"0\r\nX-T: 1\r\n\r\n"[..]);
        match dec.decode(&mut buf) {
            Ok(Some(ChunkEvent::End(end))) => assert_eq!(end.trailers.len(), 1),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn chunk_header_hex() {
        let mut out = BytesMut::new();
        encode_chunk_header(0x1234_abcd, &mut out);
        assert_eq!(&out[..], b"1234abcd\r\n");
    }
}
