//! Decoder limits.

/// Bounds on what a decoder accepts. Every breach is a [`DecodeError::LimitExceeded`]
/// naming the [`Limit`].
///
/// Bodies stream through the decoder, so memory depends on these limits and on how much the
/// caller buffers, never on the size of a body.
///
/// ```
/// use icap_proto::Limits;
/// let limits = Limits::default().with_max_head(16 * 1024).with_max_headers(50);
/// assert_eq!(limits.max_head, 16 * 1024);
/// ```
///
/// [`DecodeError::LimitExceeded`]: crate::DecodeError::LimitExceeded
/// [`Limit`]: crate::Limit
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of the ICAP head, start line to the empty line. Default 64 KiB.
    pub max_head: usize,
    /// Header fields in one head (ICAP, embedded HTTP or trailers). Default 100.
    ///
    /// A field with obs-fold continuation lines is one field, for the decoder and the
    /// encoder alike. The first `Encapsulated` of an ICAP head is not counted: it is
    /// framing, and the encoder writes one for a decoded head that lacked it, so a head
    /// at the limit would otherwise not decode again once encoded.
    pub max_headers: usize,
    /// Bytes of one header field including its folded continuation lines, measured as
    /// received and as the encoder writes it (`name: value CRLF`), whichever is larger.
    /// Default 16 KiB.
    pub max_header_line: usize,
    /// Bytes of each embedded HTTP head, as received and as written again. Default 64 KiB.
    pub max_http_head: usize,
    /// Bytes of one chunk-size line with its extensions. Default 4 KiB.
    pub max_chunk_line: usize,
    /// Bytes of all chunk-size lines of one message beyond their hex digits. Default 16 KiB.
    pub max_chunk_extensions: usize,
    /// Bytes of the trailer section, as received and as written again. Default 16 KiB.
    pub max_trailers: usize,
    /// Largest `Preview` a request may announce. Default 1 MiB.
    pub max_preview: u64,
    /// Body bytes of one message. Default `u64::MAX` (unbounded: bodies stream).
    pub max_body: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 64 * 1024,
            max_headers: 100,
            max_header_line: 16 * 1024,
            max_http_head: 64 * 1024,
            max_chunk_line: 4 * 1024,
            max_chunk_extensions: 16 * 1024,
            max_trailers: 16 * 1024,
            max_preview: 1024 * 1024,
            max_body: u64::MAX,
        }
    }
}

impl Limits {
    /// Sets [`Limits::max_head`].
    pub fn with_max_head(mut self, n: usize) -> Self {
        self.max_head = n;
        self
    }
    /// Sets [`Limits::max_headers`].
    pub fn with_max_headers(mut self, n: usize) -> Self {
        self.max_headers = n;
        self
    }
    /// Sets [`Limits::max_header_line`].
    pub fn with_max_header_line(mut self, n: usize) -> Self {
        self.max_header_line = n;
        self
    }
    /// Sets [`Limits::max_http_head`].
    pub fn with_max_http_head(mut self, n: usize) -> Self {
        self.max_http_head = n;
        self
    }
    /// Sets [`Limits::max_chunk_line`].
    pub fn with_max_chunk_line(mut self, n: usize) -> Self {
        self.max_chunk_line = n;
        self
    }
    /// Sets [`Limits::max_chunk_extensions`].
    pub fn with_max_chunk_extensions(mut self, n: usize) -> Self {
        self.max_chunk_extensions = n;
        self
    }
    /// Sets [`Limits::max_trailers`].
    pub fn with_max_trailers(mut self, n: usize) -> Self {
        self.max_trailers = n;
        self
    }
    /// Sets [`Limits::max_preview`].
    pub fn with_max_preview(mut self, n: u64) -> Self {
        self.max_preview = n;
        self
    }
    /// Sets [`Limits::max_body`].
    pub fn with_max_body(mut self, n: u64) -> Self {
        self.max_body = n;
        self
    }
}
