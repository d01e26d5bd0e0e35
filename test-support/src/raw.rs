//! A connection speaking raw ICAP bytes: requests go out as written, answers are read
//! with icap-proto's response decoder and kept as raw bytes too, so a test can check both
//! what they mean and exactly what was sent. [`read_until`] serves fake servers.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use icap_proto::{Event, Limits, Method, ResponseDecoder, ResponseHead};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One decoded answer.
#[derive(Debug)]
pub struct Answer {
    /// The decoded head.
    pub head: ResponseHead,
    /// The decoded body (de-chunked).
    pub body: Vec<u8>,
    /// The answer's bytes exactly as they arrived.
    pub raw: Vec<u8>,
}

impl Answer {
    /// The ICAP status code.
    pub fn status(&self) -> u16 {
        self.head.status.as_u16()
    }

    /// An ICAP header's value, if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.head
            .headers
            .get(name)
            .map(|v| v.to_str_lossy().into_owned())
    }

    /// The raw bytes as text (lossy), for `contains` checks and failure messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }
}

/// A TCP connection speaking raw bytes, with what was read but not yet decoded.
#[derive(Debug)]
pub struct Conn {
    /// The socket, for tests that write or shut down themselves.
    pub stream: TcpStream,
    buf: BytesMut,
}

impl Conn {
    /// Connects to `addr`.
    ///
    /// # Panics
    /// If the connection fails.
    pub async fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).await.expect("connect");
        Conn {
            stream,
            buf: BytesMut::new(),
        }
    }

    /// Writes `bytes`.
    ///
    /// # Panics
    /// If the write fails.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Sends a `RESPMOD` of `body` (one chunk, `Allow: 204`, the standard embedded
    /// response head) to `service` and reads its answer.
    ///
    /// # Panics
    /// As [`Conn::send`] and [`Conn::answer`].
    pub async fn scan(&mut self, service: &str, body: &[u8]) -> Answer {
        let req = crate::build::respmod(
            service,
            "Allow: 204\r\n",
            crate::build::RES_HDR,
            &crate::build::one_chunk(body),
        );
        self.send(&req).await;
        self.answer(Method::Respmod).await
    }

    /// Reads one complete answer to a `method` request.
    ///
    /// # Panics
    /// If the answer does not decode or the server closes first.
    pub async fn answer(&mut self, method: Method) -> Answer {
        self.try_answer(method)
            .await
            .unwrap_or_else(|e| panic!("no complete answer: {e}"))
    }

    /// Reads one answer; `Err` describes a decode error or an early close.
    pub async fn try_answer(&mut self, method: Method) -> Result<Answer, String> {
        let mut dec = ResponseDecoder::new(method, Limits::default());
        let mut head = None;
        let mut body = Vec::new();
        let mut raw = Vec::new();
        loop {
            let before = self.buf.clone();
            let decoded = dec.decode(&mut self.buf);
            let used = before.len() - self.buf.len();
            raw.extend_from_slice(&before[..used]);
            match decoded {
                Err(e) => return Err(format!("decode error: {e}")),
                Ok(Some(Event::Head(h))) => head = Some(h),
                Ok(Some(Event::Data(d))) => body.extend_from_slice(&d),
                Ok(Some(Event::PreviewEnd { .. })) => {}
                Ok(Some(Event::End(_))) => {
                    let head = head.ok_or("an end before the head")?;
                    return Ok(Answer {
                        head: *head,
                        body,
                        raw,
                    });
                }
                Ok(None) => {
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
    pub async fn read_to_close(&mut self) -> (Vec<u8>, Option<std::io::ErrorKind>) {
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
    pub async fn silent_for(&mut self, d: Duration) -> bool {
        let mut chunk = [0u8; 1];
        tokio::time::timeout(d, self.stream.read(&mut chunk))
            .await
            .is_err()
    }
}

/// Reads up to and including the first `end`, a byte at a time so that nothing after it
/// is consumed; `None` if the stream ends or fails first.
pub async fn try_read_until<R: AsyncRead + Unpin>(r: &mut R, end: &[u8]) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut b = [0u8; 1];
    while !got.ends_with(end) {
        match r.read(&mut b).await {
            Ok(1) => got.push(b[0]),
            _ => return None,
        }
    }
    Some(got)
}

/// [`try_read_until`] for a peer that must send `end`.
///
/// # Panics
/// If the stream ends first, showing what came.
pub async fn read_until<R: AsyncRead + Unpin>(r: &mut R, end: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut b = [0u8; 1];
    while !got.ends_with(end) {
        let n = r.read(&mut b).await.unwrap_or(0);
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
        got.push(b[0]);
    }
    got
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::{read_until, try_read_until};

    #[tokio::test]
    async fn read_until_stops_right_after_the_marker() {
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(b"HEAD\r\n\r\nrest").await.unwrap();
        assert_eq!(read_until(&mut b, b"\r\n\r\n").await, b"HEAD\r\n\r\n");
        assert_eq!(
            try_read_until(&mut b, b"st").await.as_deref(),
            Some(&b"rest"[..])
        );
        drop(a);
        assert_eq!(try_read_until(&mut b, b"x").await, None);
    }
}
