//! What the commands scan: the files under the given paths, and the EICAR sample.

use std::path::PathBuf;

/// Why a path was not scanned without being an error (clamscan reports these too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Skipped {
    /// A regular file of zero bytes: nothing to scan.
    EmptyFile,
    /// A symbolic link to a folder: not followed (no loops).
    LinkToFolder,
    /// A symbolic link that leads nowhere.
    DanglingLink,
}

impl Skipped {
    /// The text after `path: `, as clamscan words it.
    pub(crate) fn text(self) -> &'static str {
        match self {
            Skipped::EmptyFile => "Empty file",
            Skipped::LinkToFolder => "Symbolic link (to a folder, not followed)",
            Skipped::DanglingLink => "Symbolic link (dangling)",
        }
    }

    /// The word in `--json`.
    pub(crate) fn word(self) -> &'static str {
        match self {
            Skipped::EmptyFile => "empty_file",
            Skipped::LinkToFolder => "symlink_to_folder",
            Skipped::DanglingLink => "dangling_symlink",
        }
    }
}

/// The walk of the given paths.
#[derive(Debug, Default)]
pub(crate) struct Walk {
    /// Regular files to scan, with their size at walk time.
    pub(crate) files: Vec<(PathBuf, u64)>,
    /// Paths left out, and why.
    pub(crate) skipped: Vec<(PathBuf, Skipped)>,
    /// Paths that could not be read.
    pub(crate) errors: Vec<(PathBuf, String)>,
}

/// Walks `paths`: folders in name order; symlinks to files are followed, symlinks to
/// folders and dangling ones are skipped, and empty files too (nothing to scan).
pub(crate) fn collect(paths: &[PathBuf], walk: &mut Walk) {
    for p in paths {
        match std::fs::symlink_metadata(p) {
            Ok(m) if m.is_dir() => match std::fs::read_dir(p) {
                Ok(rd) => {
                    let mut children: Vec<PathBuf> =
                        rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
                    children.sort();
                    collect(&children, walk);
                }
                Err(e) => walk.errors.push((p.clone(), e.to_string())),
            },
            Ok(m) if m.is_file() => file(p, m.len(), walk),
            Ok(m) if m.file_type().is_symlink() => match std::fs::metadata(p) {
                Ok(t) if t.is_file() => file(p, t.len(), walk),
                Ok(t) if t.is_dir() => walk.skipped.push((p.clone(), Skipped::LinkToFolder)),
                Ok(_) => {}
                Err(_) => walk.skipped.push((p.clone(), Skipped::DanglingLink)),
            },
            Ok(_) => {}
            Err(e) => walk.errors.push((p.clone(), e.to_string())),
        }
    }
}

fn file(p: &std::path::Path, len: u64, walk: &mut Walk) {
    if len == 0 {
        walk.skipped.push((p.to_path_buf(), Skipped::EmptyFile));
    } else {
        walk.files.push((p.to_path_buf(), len));
    }
}

/// The EICAR test file, assembled at run time so this binary does not itself match it.
pub(crate) fn eicar() -> Vec<u8> {
    let a = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$";
    let b = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
    format!("{a}{b}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_files_and_odd_links_are_skipped_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a.txt"), b"a").unwrap();
        std::fs::write(d.join("empty"), b"").unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::os::unix::fs::symlink(d.join("a.txt"), d.join("link-file")).unwrap();
        std::os::unix::fs::symlink(d.join("sub"), d.join("link-dir")).unwrap();
        std::os::unix::fs::symlink(d.join("nowhere"), d.join("link-none")).unwrap();
        let mut w = Walk::default();
        collect(&[d.to_path_buf(), d.join("missing")], &mut w);
        assert_eq!(
            w.files,
            vec![(d.join("a.txt"), 1), (d.join("link-file"), 1)]
        );
        assert_eq!(
            w.skipped,
            vec![
                (d.join("empty"), Skipped::EmptyFile),
                (d.join("link-dir"), Skipped::LinkToFolder),
                (d.join("link-none"), Skipped::DanglingLink),
            ]
        );
        assert_eq!(w.errors.len(), 1);
        assert_eq!(w.errors[0].0, d.join("missing"));
    }
}
