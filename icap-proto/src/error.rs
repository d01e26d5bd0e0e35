//! Error types: what the peer did wrong ([`DecodeError`]) is kept apart from what the
//! caller did wrong ([`EncodeError`]).

use std::fmt;

/// A configurable limit of [`Limits`](crate::Limits); named by [`DecodeError::LimitExceeded`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limit {
    /// [`Limits::max_head`](crate::Limits::max_head): bytes of the ICAP head.
    Head,
    /// [`Limits::max_headers`](crate::Limits::max_headers): header fields in one head.
    HeaderCount,
    /// [`Limits::max_header_line`](crate::Limits::max_header_line): bytes of one field, folds included.
    HeaderLine,
    /// [`Limits::max_http_head`](crate::Limits::max_http_head): bytes of one embedded HTTP head.
    HttpHead,
    /// [`Limits::max_chunk_line`](crate::Limits::max_chunk_line): bytes of one chunk-size line.
    ChunkLine,
    /// [`Limits::max_chunk_extensions`](crate::Limits::max_chunk_extensions): chunk-line bytes per message.
    ChunkExtensions,
    /// [`Limits::max_trailers`](crate::Limits::max_trailers): bytes of the trailer section.
    Trailers,
    /// [`Limits::max_preview`](crate::Limits::max_preview): the `Preview` size a request may announce.
    Preview,
    /// [`Limits::max_body`](crate::Limits::max_body): decoded body bytes of one message.
    Body,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Limit::Head => "max_head",
            Limit::HeaderCount => "max_headers",
            Limit::HeaderLine => "max_header_line",
            Limit::HttpHead => "max_http_head",
            Limit::ChunkLine => "max_chunk_line",
            Limit::ChunkExtensions => "max_chunk_extensions",
            Limit::Trailers => "max_trailers",
            Limit::Preview => "max_preview",
            Limit::Body => "max_body",
        })
    }
}

/// The peer sent bytes that are not a valid ICAP/1.0 message (or break a limit).
///
/// Small and `Copy`: no allocation on the error path. [`DecodeError::status_code`] gives the
/// ICAP status a server should answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A configured limit was exceeded.
    #[error("limit {limit} exceeded (max {max})")]
    LimitExceeded {
        /// Which limit.
        limit: Limit,
        /// Its configured value.
        max: u64,
    },
    /// A line ended in LF without CR. ICAP requires CRLF; bare LF is rejected so that two
    /// parsers can never frame the same bytes differently.
    #[error("bare LF line ending (ICAP requires CRLF)")]
    BareLineFeed,
    /// A CR not followed by LF, or a NUL byte, inside a head.
    #[error("invalid control character in a head")]
    InvalidControlCharacter,
    /// The request line is not `METHOD SP URI SP VERSION`, or its version is not an ICAP
    /// version at all (`HTTP/1.1`, say).
    #[error("malformed ICAP request line")]
    InvalidRequestLine,
    /// The status line is not `VERSION SP 3DIGIT SP reason`.
    #[error("malformed ICAP status line")]
    InvalidStatusLine,
    /// The method token is valid but not OPTIONS, REQMOD or RESPMOD (a server answers 501).
    #[error("unknown ICAP method")]
    UnknownMethod,
    /// An ICAP version other than `ICAP/1.0` (`ICAP/1.1`, `ICAP/2.0`; a server answers 505).
    #[error("unsupported ICAP version")]
    UnsupportedVersion,
    /// The request URI is not an `icap://` or `icaps://` URI.
    #[error("invalid ICAP URI")]
    InvalidUri,
    /// A header line is not `name: value`.
    #[error("malformed header field")]
    InvalidHeader,
    /// A header the codec interprets (such as `Preview`) has a bad value.
    #[error("invalid value in header {0}")]
    InvalidHeaderValue(&'static str),
    /// `Encapsulated` is required here but missing.
    #[error("missing Encapsulated header")]
    MissingEncapsulated,
    /// `Encapsulated` is present more than once.
    #[error("duplicate Encapsulated header")]
    DuplicateEncapsulated,
    /// `Encapsulated` does not parse or breaks the rules of RFC 3507 section 4.4.1.
    #[error("invalid Encapsulated header: {0}")]
    InvalidEncapsulated(EncapsulatedError),
    /// An embedded HTTP head does not end where the `Encapsulated` offsets say.
    #[error("embedded HTTP head does not match the Encapsulated offsets")]
    EncapsulatedMismatch,
    /// An embedded HTTP request or status line is malformed.
    #[error("malformed embedded HTTP head")]
    InvalidHttpHead,
    /// A chunk-size line is malformed.
    #[error("malformed chunk-size line")]
    InvalidChunkSize,
    /// A chunk size has more than 16 hex digits.
    #[error("chunk size too large")]
    ChunkSizeOverflow,
    /// Chunk data is not followed by CRLF.
    #[error("chunk data not followed by CRLF")]
    InvalidChunkTerminator,
    /// The trailer section is malformed.
    #[error("malformed trailer section")]
    InvalidTrailer,
    /// The preview carried more bytes than the `Preview` header announced.
    #[error("preview longer than announced")]
    PreviewExceeded,
    /// A chunk whose size is not 0 carried the `ieof` extension: only the last chunk of a
    /// preview may say that the body ends (RFC 3507 section 4.5).
    #[error("ieof on a chunk whose size is not 0")]
    IeofOnDataChunk,
    /// A header line that starts with a space or tab (obs-fold, RFC 9112 section 5.2) where
    /// the decoder does not accept folding: by default in requests, not in responses. See
    /// `RequestDecoder::with_obs_fold`.
    #[error("obs-fold (a header line starting with a space or tab) is not accepted here")]
    ObsFold,
}

impl DecodeError {
    /// The ICAP status code a server should answer this error with: 501 for an unknown
    /// method, 505 for an unsupported version, 400 for everything else.
    pub fn status_code(&self) -> u16 {
        // Every variant is listed, so a new one cannot fall into a status by accident.
        match self {
            DecodeError::UnknownMethod => 501,
            DecodeError::UnsupportedVersion => 505,
            DecodeError::LimitExceeded { .. }
            | DecodeError::BareLineFeed
            | DecodeError::InvalidControlCharacter
            | DecodeError::InvalidRequestLine
            | DecodeError::InvalidStatusLine
            | DecodeError::InvalidUri
            | DecodeError::InvalidHeader
            | DecodeError::InvalidHeaderValue(_)
            | DecodeError::MissingEncapsulated
            | DecodeError::DuplicateEncapsulated
            | DecodeError::InvalidEncapsulated(_)
            | DecodeError::EncapsulatedMismatch
            | DecodeError::InvalidHttpHead
            | DecodeError::InvalidChunkSize
            | DecodeError::ChunkSizeOverflow
            | DecodeError::InvalidChunkTerminator
            | DecodeError::InvalidTrailer
            | DecodeError::PreviewExceeded
            | DecodeError::IeofOnDataChunk
            | DecodeError::ObsFold => 400,
        }
    }

    /// Whether the error is a breach of a configured limit.
    pub fn is_limit(&self) -> bool {
        matches!(self, DecodeError::LimitExceeded { .. })
    }

    pub(crate) fn limit(limit: Limit, max: usize) -> Self {
        DecodeError::LimitExceeded {
            limit,
            max: max as u64,
        }
    }
}

/// What is wrong with an `Encapsulated` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncapsulatedError {
    /// Not a comma-separated list of `name=offset`.
    #[error("syntax")]
    Syntax,
    /// A section name other than req-hdr, res-hdr, req-body, res-body, opt-body, null-body.
    #[error("unknown section name")]
    UnknownSection,
    /// An offset that is not a decimal number or does not fit in 64 bits.
    #[error("bad offset")]
    BadOffset,
    /// The first offset is not 0, or offsets are not strictly increasing.
    #[error("offsets not strictly increasing from 0")]
    OffsetOrder,
    /// No body entry, more than one, or one that is not last.
    #[error("exactly one body entry, last, is required")]
    BodyPlacement,
    /// A section that appears twice or out of order.
    #[error("section repeated or out of order")]
    SectionOrder,
    /// The combination of sections is not allowed for this method and direction.
    #[error("sections not allowed for this message")]
    NotAllowed,
}

/// The caller tried to build a value that cannot be encoded safely.
///
/// Returned when values are constructed, so that bytes from users (names, e-mail addresses)
/// can never break the framing of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A header name that is not a token (RFC 7230 `tchar`s).
    #[error("invalid header name")]
    InvalidHeaderName,
    /// A header value containing CR, LF or NUL.
    #[error("invalid header value (CR, LF and NUL are not allowed)")]
    InvalidHeaderValue,
    /// A method, version or other token with characters outside `tchar`.
    #[error("invalid token")]
    InvalidToken,
    /// A URI that is not `icap://host[:port]/service` or has spaces or control characters.
    #[error("invalid ICAP URI")]
    InvalidUri,
    /// A request target or reason phrase with CR, LF, NUL or (for targets) spaces.
    #[error("invalid request target or reason phrase")]
    InvalidText,
    /// A status code outside 100..=999.
    #[error("invalid status code")]
    InvalidStatus,
    /// Embedded heads and body kind that RFC 3507 does not allow for this message.
    #[error("encapsulated sections not allowed for this message")]
    InvalidEncapsulation,
    /// A request with a folded (multi-line) header value: senders must not generate
    /// obs-fold (RFC 9112 section 5.2), and request decoders here refuse it. Responses may
    /// carry folded values (antivirus vendors send them).
    #[error("folded header value in a request (obs-fold is only written in responses)")]
    FoldedRequestHeader,
}
