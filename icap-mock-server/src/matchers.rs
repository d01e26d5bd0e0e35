//! Matchers: which requests a [`Mock`](crate::Mock) applies to.
//!
//! Every matcher of a mock must match. Closures `Fn(&Request) -> bool` are matchers too;
//! they run once the whole body is in (they may look at it).
//!
//! ```
//! use icap_mock_server::matchers::{body_contains, filename, method, Match};
//! use icap_proto::Method;
//! let m = method(Method::Respmod);
//! assert!(!m.needs_body());
//! assert!(body_contains(b"x").needs_body());
//! let _glob = filename("*.exe");
//! ```

use std::ops::{Bound, RangeBounds};

use icap_proto::Method;

use crate::request::Request;
use crate::service::glob_match;

/// Decides whether a request matches.
pub trait Match: Send + Sync + 'static {
    /// Whether `req` matches. With `req.body_complete == false` this is called only for
    /// matchers whose [`Match::needs_body`] is false, or through [`Match::matches_partial`].
    fn matches(&self, req: &Request) -> bool;

    /// Whether the answer depends on the body (then the rule waits for the whole body,
    /// unless [`Match::matches_partial`] can already tell).
    fn needs_body(&self) -> bool {
        false
    }

    /// The answer before the body is complete, or `None` if it cannot be known yet.
    fn matches_partial(&self, req: &Request) -> Option<bool> {
        if self.needs_body() {
            None
        } else {
            Some(self.matches(req))
        }
    }

    /// Byte patterns the server should look for while the body streams through, so that
    /// [`Request::body_contains`] is exact for them on bodies of any size.
    fn body_patterns(&self) -> Vec<Vec<u8>> {
        Vec::new()
    }

    /// The condition as the config file would write it (`{"filename": "*.zip"}`), for the
    /// admin API's `GET /rules`; `None` for a closure, which has no text.
    fn describe(&self) -> Option<serde_json::Value> {
        None
    }
}

impl<F> Match for F
where
    F: Fn(&Request) -> bool + Send + Sync + 'static,
{
    fn matches(&self, req: &Request) -> bool {
        self(req)
    }
    fn needs_body(&self) -> bool {
        true
    }
}

/// Matches every request.
pub fn any() -> Any {
    Any
}

/// The matcher [`any`] returns.
#[derive(Debug, Clone, Copy)]
pub struct Any;

impl Match for Any {
    fn describe(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({}))
    }
    fn matches(&self, _: &Request) -> bool {
        true
    }
}

/// Matches the ICAP method.
pub fn method(m: icap_proto::Method) -> MethodMatcher {
    MethodMatcher(m)
}

/// The matcher [`method`] returns.
#[derive(Debug, Clone, Copy)]
pub struct MethodMatcher(Method);

impl Match for MethodMatcher {
    fn describe(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({ "method": self.0.as_str() }))
    }
    fn matches(&self, req: &Request) -> bool {
        req.method == self.0
    }
}

/// Matches the service name (`"avscan"` for `icap://host/avscan`).
pub fn service(name: &str) -> ServiceMatcher {
    ServiceMatcher(name.trim_start_matches('/').to_owned())
}

/// The matcher [`service`] returns.
#[derive(Debug, Clone)]
pub struct ServiceMatcher(String);

impl Match for ServiceMatcher {
    fn describe(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({ "service": self.0 }))
    }
    fn matches(&self, req: &Request) -> bool {
        req.service == self.0
    }
}

/// Matches an ICAP header with exactly this value (name case-insensitive, any of its values).
pub fn icap_header(name: &str, value: &str) -> HeaderMatcher {
    HeaderMatcher {
        icap: true,
        name: name.to_owned(),
        value: Some(value.to_owned()),
    }
}

/// Matches when the ICAP header is present.
pub fn icap_header_exists(name: &str) -> HeaderMatcher {
    HeaderMatcher {
        icap: true,
        name: name.to_owned(),
        value: None,
    }
}

/// Matches a header of the embedded HTTP request or response head with exactly this value.
pub fn http_header(name: &str, value: &str) -> HeaderMatcher {
    HeaderMatcher {
        icap: false,
        name: name.to_owned(),
        value: Some(value.to_owned()),
    }
}

/// See [`icap_header`] and [`http_header`].
#[derive(Debug, Clone)]
pub struct HeaderMatcher {
    icap: bool,
    name: String,
    value: Option<String>,
}

impl Match for HeaderMatcher {
    fn describe(&self) -> Option<serde_json::Value> {
        let key = if self.icap {
            "icap_header"
        } else {
            "http_header"
        };
        Some(serde_json::json!({ key: { "name": self.name, "value": self.value } }))
    }
    fn matches(&self, req: &Request) -> bool {
        let check = |h: &icap_proto::Headers| {
            let mut values = h.get_all(&self.name).peekable();
            match &self.value {
                None => values.peek().is_some(),
                Some(want) => values.any(|v| v.to_str_lossy().trim() == want.as_str()),
            }
        };
        if self.icap {
            check(&req.icap_headers)
        } else {
            req.http_request.as_ref().is_some_and(|r| check(&r.headers))
                || req
                    .http_response
                    .as_ref()
                    .is_some_and(|r| check(&r.headers))
        }
    }
}

/// Matches when the path of the embedded HTTP request URL contains `part`.
pub fn url_path_contains(part: &str) -> UrlPathMatcher {
    UrlPathMatcher(part.to_owned())
}

/// The matcher [`url_path_contains`] returns.
#[derive(Debug, Clone)]
pub struct UrlPathMatcher(String);

impl Match for UrlPathMatcher {
    fn describe(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({ "url_path_contains": self.0 }))
    }
    fn matches(&self, req: &Request) -> bool {
        req.url_path().is_some_and(|p| p.contains(&self.0))
    }
}

/// Matches the file name (see [`Request::filename`]) against a glob (`*`, `?`,
/// case-insensitive).
pub fn filename(glob: &str) -> FilenameMatcher {
    FilenameMatcher(glob.to_owned())
}

/// The matcher [`filename`] returns.
#[derive(Debug, Clone)]
pub struct FilenameMatcher(String);

impl Match for FilenameMatcher {
    fn describe(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({ "filename": self.0 }))
    }
    fn matches(&self, req: &Request) -> bool {
        req.filename().is_some_and(|n| glob_match(&self.0, &n))
    }
}

/// Matches when the body contains `pattern`, found while the body streams (across chunk
/// boundaries and in the part after a preview). Matches as soon as the pattern is seen, so
/// a pattern inside a preview decides right after the preview.
pub fn body_contains(pattern: impl AsRef<[u8]>) -> BodyContains {
    BodyContains(pattern.as_ref().to_vec())
}

/// The matcher [`body_contains`] returns.
#[derive(Debug, Clone)]
pub struct BodyContains(Vec<u8>);

impl Match for BodyContains {
    fn describe(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({ "body_contains": String::from_utf8_lossy(&self.0) }))
    }
    fn matches(&self, req: &Request) -> bool {
        req.body_contains(&self.0)
    }
    fn needs_body(&self) -> bool {
        true
    }
    fn matches_partial(&self, req: &Request) -> Option<bool> {
        req.body_contains(&self.0).then_some(true)
    }
    fn body_patterns(&self) -> Vec<Vec<u8>> {
        vec![self.0.clone()]
    }
}

/// Matches the body size in bytes (`0..=100`, `1024..`, `..10`).
pub fn body_size(range: impl RangeBounds<u64>) -> BodySize {
    let own = |b: Bound<&u64>| match b {
        Bound::Included(n) => Bound::Included(*n),
        Bound::Excluded(n) => Bound::Excluded(*n),
        Bound::Unbounded => Bound::Unbounded,
    };
    BodySize(own(range.start_bound()), own(range.end_bound()))
}

/// The matcher [`body_size`] returns.
#[derive(Debug, Clone, Copy)]
pub struct BodySize(Bound<u64>, Bound<u64>);

impl Match for BodySize {
    fn describe(&self) -> Option<serde_json::Value> {
        let min = match self.0 {
            Bound::Included(n) => Some(n),
            Bound::Excluded(n) => Some(n.saturating_add(1)),
            Bound::Unbounded => None,
        };
        let max = match self.1 {
            Bound::Included(n) => Some(n),
            Bound::Excluded(n) => Some(n.saturating_sub(1)),
            Bound::Unbounded => None,
        };
        Some(serde_json::json!({ "body_size_min": min, "body_size_max": max }))
    }
    fn matches(&self, req: &Request) -> bool {
        (self.0, self.1).contains(&req.body_len)
    }
    fn needs_body(&self) -> bool {
        true
    }
    fn matches_partial(&self, req: &Request) -> Option<bool> {
        // Already past the upper bound: it can only grow.
        let over = match self.1 {
            Bound::Included(n) => req.body_len > n,
            Bound::Excluded(n) => req.body_len >= n,
            Bound::Unbounded => false,
        };
        over.then_some(false)
    }
}

/// Inverts a matcher that needs no body (for example `not(filename("*.txt"))`).
pub fn not<M: Match>(m: M) -> Not<M> {
    Not(m)
}

/// The matcher [`not`] returns.
#[derive(Debug, Clone)]
pub struct Not<M>(M);

impl<M: Match> Match for Not<M> {
    fn describe(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({ "not": self.0.describe()? }))
    }
    fn matches(&self, req: &Request) -> bool {
        !self.0.matches(req)
    }
    fn needs_body(&self) -> bool {
        self.0.needs_body()
    }
    fn matches_partial(&self, req: &Request) -> Option<bool> {
        if self.0.needs_body() {
            None
        } else {
            self.0.matches_partial(req).map(|b| !b)
        }
    }
    fn body_patterns(&self) -> Vec<Vec<u8>> {
        self.0.body_patterns()
    }
}
