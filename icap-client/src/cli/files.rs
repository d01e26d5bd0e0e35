//! What the commands scan: the files under the given paths, and the EICAR sample.

use std::path::PathBuf;

/// The regular files under `paths`, folders walked in name order; symlinked folders are
/// not followed, and what cannot be read goes to `errors`.
pub(crate) fn collect(
    paths: &[PathBuf],
    out: &mut Vec<PathBuf>,
    errors: &mut Vec<(PathBuf, String)>,
) {
    for p in paths {
        match std::fs::symlink_metadata(p) {
            Ok(m) if m.is_dir() => match std::fs::read_dir(p) {
                Ok(rd) => {
                    let mut children: Vec<PathBuf> =
                        rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
                    children.sort();
                    collect(&children, out, errors);
                }
                Err(e) => errors.push((p.clone(), e.to_string())),
            },
            Ok(m) if m.is_file() => out.push(p.clone()),
            Ok(m) if m.file_type().is_symlink() => match std::fs::metadata(p) {
                Ok(t) if t.is_file() => out.push(p.clone()),
                // Symlinked folders are not followed (no loops); dangling links are skipped.
                _ => {}
            },
            Ok(_) => {}
            Err(e) => errors.push((p.clone(), e.to_string())),
        }
    }
}

/// The EICAR test file, assembled at run time so this binary does not itself match it.
pub(crate) fn eicar() -> Vec<u8> {
    let a = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$";
    let b = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
    format!("{a}{b}").into_bytes()
}
