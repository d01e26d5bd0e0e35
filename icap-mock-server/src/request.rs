//! What rules see of a request.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use icap_proto::{Headers, HttpRequestHead, HttpResponseHead, Method};

/// A request as matchers and responders see it.
///
/// Rules are evaluated as soon as they can decide: right after the head (for rules that
/// only look at heads), after a preview, and when the whole body is in. `body` holds the
/// first bytes of the body (up to the server's capture size, 64 KiB by default);
/// [`Request::body_contains`] works for bodies of any size, because the patterns of
/// [`body_contains`](crate::matchers::body_contains) rules are searched while the body
/// streams through.
///
/// Its heads and body are views of the connection's read buffer, not copies: a `Request`
/// cloned and kept past the rule's call keeps that buffer (64 KiB or more) alive. To keep
/// what was received, read the journal ([`crate::MockServer::received_requests`]), whose
/// entries are copies.
#[derive(Debug, Clone)]
pub struct Request {
    /// The ICAP method.
    pub method: Method,
    /// The service name (the URI path without `/` and query).
    pub service: String,
    /// The full ICAP request URI.
    pub uri: String,
    /// The ICAP header fields.
    pub icap_headers: Headers,
    /// The embedded HTTP request head.
    pub http_request: Option<HttpRequestHead>,
    /// The embedded HTTP response head.
    pub http_response: Option<HttpResponseHead>,
    /// The announced `Preview` size.
    pub preview: Option<u64>,
    /// Body bytes received so far (all of them once `body_complete`).
    pub body_len: u64,
    /// The first body bytes (up to the capture size).
    pub body: Bytes,
    /// Whether `body` holds the whole body.
    pub body_truncated: bool,
    /// Whether the whole body has been received.
    pub body_complete: bool,
    /// The client's address.
    pub peer: Option<SocketAddr>,
    /// Patterns found so far by the streaming scanner.
    pub(crate) found: Arc<Vec<Vec<u8>>>,
}

impl Request {
    /// The URL of the embedded HTTP request: its target, made absolute with `Host` when it
    /// is a path.
    pub fn url(&self) -> Option<String> {
        let req = self.http_request.as_ref()?;
        let target = String::from_utf8_lossy(req.target()).into_owned();
        if target.starts_with('/') {
            let host = req
                .headers
                .get("Host")
                .map(|h| h.to_str_lossy().into_owned());
            Some(match host {
                Some(h) => format!("http://{h}{target}"),
                None => target,
            })
        } else {
            Some(target)
        }
    }

    /// The path of the embedded URL (without scheme, host and query).
    pub fn url_path(&self) -> Option<String> {
        url_path_of(self.http_request.as_ref())
    }

    /// The file name: `Content-Disposition: ...; filename=` of the embedded response (then
    /// request) head, else the last segment of the URL path.
    pub fn filename(&self) -> Option<String> {
        filename_of(self.http_request.as_ref(), self.http_response.as_ref())
    }

    /// Whether the body contains `pattern`: exact for patterns of mounted `body_contains`
    /// rules and for bodies within the capture size; otherwise only the captured start.
    pub fn body_contains(&self, pattern: &[u8]) -> bool {
        self.found.iter().any(|p| p == pattern)
            || memchr::memmem::find(&self.body, pattern).is_some()
    }

    /// The first value of an ICAP header, as text.
    pub fn icap_header(&self, name: &str) -> Option<String> {
        self.icap_headers
            .get(name)
            .map(|v| v.to_str_lossy().into_owned())
    }

    /// The first value of a header of the embedded response head, else the request head.
    pub fn http_header(&self, name: &str) -> Option<String> {
        http_header_of(
            self.http_request.as_ref(),
            self.http_response.as_ref(),
            name,
        )
    }
}

/// [`Request::url_path`] of an embedded request head (shared with the journal's entries).
pub(crate) fn url_path_of(req: Option<&HttpRequestHead>) -> Option<String> {
    Some(String::from_utf8_lossy(path_of(req?.target())).into_owned())
}

/// The path of a request target (without scheme, host, query and fragment). The bytes are
/// cut at ASCII delimiters only, so a lossy text of the result is the same as the result
/// of the same cuts on the lossy text of the whole target.
fn path_of(target: &[u8]) -> &[u8] {
    let path = match scheme_end(target) {
        Some(i) => {
            let rest = &target[i..];
            memchr::memchr(b'/', rest).map_or(&b"/"[..], |j| &rest[j..])
        }
        None => target,
    };
    memchr::memchr2(b'?', b'#', path).map_or(path, |i| &path[..i])
}

/// Where what follows the first `://` of `target` starts.
fn scheme_end(target: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b':', target)
        .find(|&i| target[i + 1..].starts_with(b"//"))
        .map(|i| i + 3)
}

/// [`Request::filename`] of embedded heads (shared with the journal's entries).
pub(crate) fn filename_of(
    req: Option<&HttpRequestHead>,
    res: Option<&HttpResponseHead>,
) -> Option<String> {
    let disposition = res
        .and_then(|r| r.headers.get("Content-Disposition"))
        .or_else(|| req.and_then(|r| r.headers.get("Content-Disposition")));
    if let Some(name) = disposition.and_then(|v| disposition_filename(&v.to_str_lossy())) {
        return Some(name);
    }
    let path = path_of(req?.target());
    let last = memchr::memrchr(b'/', path).map_or(path, |i| &path[i + 1..]);
    (!last.is_empty()).then(|| String::from_utf8_lossy(last).into_owned())
}

/// [`Request::http_header`] of embedded heads (shared with the journal's entries).
pub(crate) fn http_header_of(
    req: Option<&HttpRequestHead>,
    res: Option<&HttpResponseHead>,
    name: &str,
) -> Option<String> {
    res.and_then(|r| r.headers.get(name))
        .or_else(|| req.and_then(|r| r.headers.get(name)))
        .map(|v| v.to_str_lossy().into_owned())
}

/// `filename*=UTF-8''x` or `filename="x"` or `filename=x` from a `Content-Disposition` value.
pub(crate) fn disposition_filename(v: &str) -> Option<String> {
    let mut plain = None;
    for part in v.split(';') {
        let part = part.trim();
        let Some((k, val)) = part.split_once('=') else {
            continue;
        };
        let k = k.trim().to_ascii_lowercase();
        let val = val.trim();
        if k == "filename*" {
            let enc = val.rsplit("''").next().unwrap_or(val);
            return Some(percent_decode(enc));
        }
        if k == "filename" {
            plain = Some(val.trim_matches('"').to_owned());
        }
    }
    plain.filter(|s| !s.is_empty())
}

/// Decodes `%XX` escapes (the `percent-encoding` crate); invalid UTF-8 is replaced.
pub(crate) fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The old text-based cuts, kept as the reference the byte-based ones must agree with.
    fn path_of_text(target: &str) -> &str {
        let path = match target.find("://") {
            Some(i) => {
                let rest = &target[i + 3..];
                rest.find('/').map_or("/", |j| &rest[j..])
            }
            None => target,
        };
        path.split(['?', '#']).next().unwrap_or("")
    }

    #[test]
    fn paths_cut_on_bytes_as_on_text() {
        let targets: [&[u8]; 12] = [
            b"/a/b/c.exe?x=1",
            b"http://h/p/f.zip#frag",
            b"http://host",
            b"https://h:8080/x/",
            b"/x:y//z/file",
            b"ftp://h/a?b://c/d",
            b"",
            b"a:/b",
            b"a:",
            b"/r\xC3\xA9sum\xC3\xA9.pdf",
            b"/bad\xFF\xFE/na\xE9me?q",
            b"http://h/\xF0\x9F/x",
        ];
        for t in targets {
            let text = String::from_utf8_lossy(t);
            assert_eq!(
                String::from_utf8_lossy(path_of(t)),
                path_of_text(&text),
                "{text}"
            );
        }
    }

    #[test]
    fn disposition() {
        let rows = [
            ("attachment; filename=\"a b.exe\"", Some("a b.exe")),
            ("attachment; filename=x.zip", Some("x.zip")),
            (
                "attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf",
                Some("résumé.pdf"),
            ),
            ("inline", None),
            // An escape cut short at the end stays as it is.
            ("attachment; filename*=UTF-8''a%2", Some("a%2")),
            ("attachment; filename*=UTF-8''a%41", Some("aA")),
        ];
        for (v, want) in rows {
            assert_eq!(disposition_filename(v).as_deref(), want, "{v}");
        }
    }
}
