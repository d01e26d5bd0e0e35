//! Raw-bytes ICAP client helpers: requests are written as byte strings; answers are read
//! with icap-proto's response decoder and checked against their raw bytes too.

use std::time::Duration;

use bytes::BytesMut;
use icap_proto::{Event, Limits, Method, ResponseDecoder, ResponseHead};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub(crate) use icap_mock_server::EICAR;

/// An HTTP response head as embedded in RESPMOD requests.
pub(crate) const RES_HDR: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n";

/// Chunked encoding written by hand (the test is the referee, not the codec).
pub(crate) fn chunks(pieces: &[&[u8]], last: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for p in pieces {
        if !p.is_empty() {
            out.extend_from_slice(format!("{:x}\r\n", p.len()).as_bytes());
            out.extend_from_slice(p);
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(last.as_bytes());
    out
}

/// A RESPMOD request with `extra` ICAP header lines (each ending in CRLF), the standard
/// response head, and `body` already chunk-encoded.
pub(crate) fn respmod(service: &str, extra: &str, res_hdr: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "RESPMOD icap://127.0.0.1/{service} ICAP/1.0\r\nHost: 127.0.0.1\r\n{extra}Encapsulated: res-hdr=0, res-body={}\r\n\r\n",
        res_hdr.len()
    )
    .into_bytes();
    out.extend_from_slice(res_hdr);
    out.extend_from_slice(body);
    out
}

/// A RESPMOD with a request head naming `path` (so a file name is known).
pub(crate) fn respmod_with_url(service: &str, extra: &str, path: &str, body: &[u8]) -> Vec<u8> {
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

/// A REQMOD (upload) request with a chunked body.
pub(crate) fn reqmod(service: &str, extra: &str, path: &str, body: &[u8]) -> Vec<u8> {
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

/// One decoded answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) head: ResponseHead,
    pub(crate) body: Vec<u8>,
    pub(crate) raw: Vec<u8>,
}

impl Answer {
    pub(crate) fn status(&self) -> u16 {
        self.head.status.as_u16()
    }
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.head
            .headers
            .get(name)
            .map(|v| v.to_str_lossy().into_owned())
    }
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }
}

/// A connection speaking raw bytes.
pub(crate) struct Conn {
    pub(crate) stream: TcpStream,
    buf: BytesMut,
}

impl Conn {
    pub(crate) async fn open(server: &icap_mock_server::MockServer) -> Conn {
        Conn::open_addr(server.addr()).await
    }

    pub(crate) async fn open_addr(addr: std::net::SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).await.expect("connect");
        Conn {
            stream,
            buf: BytesMut::new(),
        }
    }

    pub(crate) async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Reads one complete answer to a `method` request.
    pub(crate) async fn answer(&mut self, method: Method) -> Answer {
        self.try_answer(method)
            .await
            .unwrap_or_else(|e| panic!("no complete answer: {e}"))
    }

    /// Reads one answer; `Err` describes a decode error or an early close.
    pub(crate) async fn try_answer(&mut self, method: Method) -> Result<Answer, String> {
        let mut dec = ResponseDecoder::new(method, Limits::default());
        let mut head = None;
        let mut body = Vec::new();
        let mut raw = Vec::new();
        loop {
            let before = self.buf.clone();
            match dec.decode(&mut self.buf) {
                Err(e) => return Err(format!("decode error: {e}")),
                Ok(Some(ev)) => {
                    let used = before.len() - self.buf.len();
                    raw.extend_from_slice(&before[..used]);
                    match ev {
                        Event::Head(h) => head = Some(h),
                        Event::Data(d) => body.extend_from_slice(&d),
                        Event::PreviewEnd { .. } => {}
                        Event::End(_) => {
                            return Ok(Answer {
                                head: head.expect("head before end"),
                                body,
                                raw,
                            });
                        }
                    }
                }
                Ok(None) => {
                    let used = before.len() - self.buf.len();
                    raw.extend_from_slice(&before[..used]);
                    let n = self
                        .stream
                        .read_buf(&mut self.buf)
                        .await
                        .map_err(|e| format!("read: {e}"))?;
                    if n == 0 {
                        return Err(format!(
                            "closed after {} bytes: {:?}",
                            raw.len() + self.buf.len(),
                            String::from_utf8_lossy(&[&raw[..], &self.buf[..]].concat())
                        ));
                    }
                }
            }
        }
    }

    /// Reads until the server closes; returns the bytes and whether it ended in an error
    /// (such as a reset).
    pub(crate) async fn read_to_close(&mut self) -> (Vec<u8>, Option<std::io::ErrorKind>) {
        let mut out = self.buf.split().to_vec();
        let mut chunk = [0u8; 8192];
        loop {
            match self.stream.read(&mut chunk).await {
                Ok(0) => return (out, None),
                Ok(n) => out.extend_from_slice(&chunk[..n]),
                Err(e) => return (out, Some(e.kind())),
            }
        }
    }

    /// Whether nothing arrives within `d` (use with a paused clock).
    pub(crate) async fn silent_for(&mut self, d: Duration) -> bool {
        let mut chunk = [0u8; 1];
        tokio::time::timeout(d, self.stream.read(&mut chunk))
            .await
            .is_err()
    }
}

/// The body of a request chunk-encoded in one chunk.
pub(crate) fn one_chunk(body: &[u8]) -> Vec<u8> {
    chunks(&[body], "0\r\n\r\n")
}

/// `len` bytes of filler text.
pub(crate) fn filler(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}
