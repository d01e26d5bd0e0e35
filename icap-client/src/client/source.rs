//! The body of one scan (a file, bytes, a reader) and the check that a file is still the
//! one whose size the request announces.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::AsyncRead;

use crate::connection::FileStamp;
use crate::error::{Error, ErrorKind};

/// A body to scan.
pub(super) enum Source<'a> {
    /// A file, with its size and modification time when the scan began.
    Path(PathBuf, FileStamp),
    Bytes(Bytes),
    Reader(Option<Box<dyn AsyncRead + Unpin + Send + 'a>>),
}

impl Source<'_> {
    /// Whether a second attempt can send the same body again (a reader cannot).
    pub(super) fn rewindable(&self) -> bool {
        !matches!(self, Source::Reader(_))
    }
}

/// Opens a file for one attempt and checks it is still the file whose size the request
/// announces. The sender reads it on tokio's blocking pool straight into its own buffer
/// (hence a std file, shared with each read's task).
pub(super) async fn open_checked(
    path: &Path,
    stamp: FileStamp,
) -> Result<Arc<std::fs::File>, Error> {
    let f = tokio::fs::File::open(path).await.map_err(|e| {
        Error::new(ErrorKind::Io, format!("cannot open {}", path.display())).with_source(e)
    })?;
    let now = f.metadata().await.map(|m| FileStamp::of(&m)).map_err(|e| {
        Error::new(ErrorKind::Io, format!("cannot read {}", path.display())).with_source(e)
    })?;
    if now != stamp {
        return Err(Error::new(
            ErrorKind::Source,
            format!(
                "{} changed before it could be sent (size {} -> {})",
                path.display(),
                stamp.len,
                now.len
            ),
        ));
    }
    Ok(Arc::new(f.into_std().await))
}
