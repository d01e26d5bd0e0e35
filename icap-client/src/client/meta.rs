//! [`ScanMeta`]: what is known about a file besides its bytes. Plain data.

pub use crate::connection::Progress;
use crate::identity::Uploader;

/// What is known about the file being scanned, besides its bytes.
///
/// ```
/// use icap_client::{ScanMeta, Uploader};
/// let meta = ScanMeta::new("report.pdf")
///     .with_uploader(Uploader::new("alice"))
///     .with_header("X-Tenant", "acme");
/// assert_eq!(meta.filename.as_deref(), Some("report.pdf"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct ScanMeta {
    /// The file name, sent in the embedded HTTP request line (some servers use the
    /// extension) and used for `Transfer-*` decisions.
    pub filename: Option<String>,
    /// Who uploaded it.
    pub uploader: Option<Uploader>,
    /// Extra ICAP headers for this scan (subject to the identity switch).
    pub headers: Vec<(String, String)>,
    /// `Content-Type` of the embedded HTTP message.
    pub content_type: Option<String>,
    /// Counts the body bytes handed to the connection while the scan runs, for a progress
    /// display (bytes sent again by a retry count again).
    pub progress: Option<Progress>,
}

impl ScanMeta {
    /// Metadata with a file name.
    pub fn new(filename: impl Into<String>) -> Self {
        ScanMeta {
            filename: Some(filename.into()),
            ..ScanMeta::default()
        }
    }
    /// Sets the uploader.
    pub fn with_uploader(mut self, u: Uploader) -> Self {
        self.uploader = Some(u);
        self
    }
    /// Adds an ICAP header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    /// Counts the body bytes sent into `p` ([`ScanMeta::progress`]).
    pub fn with_progress(mut self, p: Progress) -> Self {
        self.progress = Some(p);
        self
    }
    /// Sets the `Content-Type`.
    pub fn with_content_type(mut self, ct: impl Into<String>) -> Self {
        self.content_type = Some(ct.into());
        self
    }
}
