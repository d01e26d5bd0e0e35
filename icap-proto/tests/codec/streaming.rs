//! Bodies stream: memory depends on the limits and the caller's buffer, not on body size.

use std::time::Instant;

use bytes::BytesMut;
use icap_proto::{Event, Limits, RequestDecoder};

const BLOCK: usize = 64 * 1024;

/// What streaming a body through the decoder used.
#[derive(Debug)]
struct Run {
    body: u64,
    /// Most bytes left in the buffer after decoding as far as possible.
    max_left: usize,
    /// Largest capacity the buffer reached.
    max_capacity: usize,
}

/// Streams a RESPMOD request whose body is `chunks` chunks of `chunk_len` bytes (or one
/// chunk of the whole size when `one_chunk`), generated lazily and fed in `piece`-byte
/// reads into a buffer that, like a socket loop, only ever holds what was read and not yet
/// decoded. Every Data event is checked against the generator and dropped.
fn stream(total: u64, one_chunk: bool, piece: usize) -> Run {
    let head = b"RESPMOD icap://h/avscan ICAP/1.0\r\nHost: h\r\n\
        Encapsulated: res-hdr=0, res-body=19\r\n\r\nHTTP/1.1 200 OK\r\n\r\n";
    let block: Vec<u8> = (0..BLOCK).map(|i| (i % 251) as u8).collect();
    // The wire image, produced lazily: head, then chunk lines and data, then the end.
    let mut source = Source::new(head, total, one_chunk);
    let mut dec = RequestDecoder::new(Limits::default());
    let mut buf = BytesMut::with_capacity(piece);
    let mut got: u64 = 0;
    let mut ended = false;
    let (mut max_left, mut max_capacity) = (0, 0);
    let mut read = vec![0u8; piece];
    loop {
        let n = source.read(&mut read, &block);
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&read[..n]);
        max_capacity = max_capacity.max(buf.capacity());
        while let Some(ev) = dec.decode(&mut buf).expect("valid stream") {
            match ev {
                Event::Head(h) => assert_eq!(h.uri.service(), "avscan"),
                Event::Data(d) => {
                    // The body is the block pattern over and over; check both ends.
                    let at = |k: u64| ((k % BLOCK as u64) % 251) as u8;
                    assert_eq!(d[0], at(got));
                    assert_eq!(d[d.len() - 1], at(got + d.len() as u64 - 1));
                    got += d.len() as u64;
                }
                Event::PreviewEnd { .. } => panic!("no preview announced"),
                Event::End(_) => ended = true,
            }
        }
        max_left = max_left.max(buf.len());
    }
    assert!(ended && buf.is_empty());
    assert_eq!(got, total);
    Run {
        body: got,
        max_left,
        max_capacity,
    }
}

/// Generates the wire bytes of the streamed message.
struct Source<'a> {
    head: &'a [u8],
    head_at: usize,
    total: u64,
    one_chunk: bool,
    /// Body bytes already produced.
    produced: u64,
    /// Bytes of framing waiting to be produced before more data (a chunk line or CRLF).
    framing: Vec<u8>,
    framing_at: usize,
    /// Data bytes left in the current chunk.
    in_chunk: u64,
    done: bool,
}

impl<'a> Source<'a> {
    fn new(head: &'a [u8], total: u64, one_chunk: bool) -> Self {
        Source {
            head,
            head_at: 0,
            total,
            one_chunk,
            produced: 0,
            framing: Vec::new(),
            framing_at: 0,
            in_chunk: 0,
            done: false,
        }
    }

    fn read(&mut self, out: &mut [u8], block: &[u8]) -> usize {
        let mut n = 0;
        while n < out.len() {
            if self.head_at < self.head.len() {
                let k = (self.head.len() - self.head_at).min(out.len() - n);
                out[n..n + k].copy_from_slice(&self.head[self.head_at..self.head_at + k]);
                self.head_at += k;
                n += k;
            } else if self.framing_at < self.framing.len() {
                let k = (self.framing.len() - self.framing_at).min(out.len() - n);
                out[n..n + k].copy_from_slice(&self.framing[self.framing_at..self.framing_at + k]);
                self.framing_at += k;
                n += k;
            } else if self.in_chunk > 0 {
                let off = (self.produced % BLOCK as u64) as usize;
                let k = (BLOCK - off)
                    .min(out.len() - n)
                    .min(usize::try_from(self.in_chunk).unwrap_or(usize::MAX));
                out[n..n + k].copy_from_slice(&block[off..off + k]);
                self.produced += k as u64;
                self.in_chunk -= k as u64;
                n += k;
                if self.in_chunk == 0 {
                    self.set_framing(b"\r\n".to_vec());
                }
            } else if self.produced < self.total {
                let len = if self.one_chunk {
                    self.total
                } else {
                    (self.total - self.produced).min(BLOCK as u64)
                };
                self.in_chunk = len;
                self.set_framing(format!("{len:x}\r\n").into_bytes());
            } else if !self.done {
                self.done = true;
                self.set_framing(b"0\r\n\r\n".to_vec());
            } else {
                break;
            }
        }
        n
    }

    fn set_framing(&mut self, bytes: Vec<u8>) {
        self.framing = bytes;
        self.framing_at = 0;
    }
}

#[test]
fn a_256_mib_body_streams_in_bounded_memory() {
    const PIECE: usize = 16 * 1024 + 7;
    let start = Instant::now();
    let small = stream(1 << 20, false, PIECE);
    let large = stream(256 << 20, false, PIECE);
    let single = stream(256 << 20, true, PIECE);
    let elapsed = start.elapsed();
    eprintln!("{small:?}\n{large:?}\n{single:?}\nin {elapsed:?}");
    assert_eq!(large.body, 256 << 20);
    for run in [&small, &large, &single] {
        // Never more than a partial chunk line waits in the buffer...
        assert!(run.max_left < Limits::default().max_chunk_line, "{run:?}");
        // ...and the buffer never grows past one read plus that line.
        assert!(run.max_capacity <= 2 * PIECE + 4096, "{run:?}");
    }
    // 256 times the body, no more memory than the bound that holds for 1 MiB.
    assert!(
        large.max_capacity <= 2 * small.max_capacity,
        "{large:?} {small:?}"
    );
}
