//! Turning the paths a user names into the files to hash.
//!
//! Directories are walked recursively in a stable (sorted) order so that two runs over the same
//! tree report files in the same order. Symbolic links found *inside* a directory are not
//! followed: a tree handed to a scanner can contain links that point anywhere (including back
//! up the tree), and following them would make a scan's extent depend on the link targets. A
//! path named explicitly is taken as given, link or not, because the user chose it.

use std::path::{Path, PathBuf};

/// A path that could not be walked.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct WalkError {
    /// The file or directory that could not be read.
    pub path: PathBuf,
    /// What went wrong.
    #[source]
    pub source: std::io::Error,
}

/// Every regular file under `roots`, in order: each root in turn, a directory's entries sorted
/// by file name. Special files (sockets, FIFOs, devices) and links inside directories are skipped.
pub fn walk_files<P: AsRef<Path>>(roots: &[P]) -> impl Iterator<Item = Result<PathBuf, WalkError>> {
    roots.iter().flat_map(|root| {
        walkdir::WalkDir::new(root.as_ref())
            .follow_links(false)
            .follow_root_links(true)
            .sort_by_file_name()
            .into_iter()
            .filter_map(|entry| match entry {
                Ok(entry) if entry.file_type().is_file() => Some(Ok(entry.into_path())),
                // A root given explicitly that is a link to a file is the user's choice.
                Ok(entry) if entry.depth() == 0 && entry.path().is_file() => Some(Ok(entry.into_path())),
                Ok(_) => None,
                Err(err) => {
                    let path = err.path().map(Path::to_path_buf).unwrap_or_default();
                    let source =
                        err.into_io_error().unwrap_or_else(|| std::io::Error::other("filesystem loop"));
                    Some(Err(WalkError { path, source }))
                }
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_directories_recursively_in_sorted_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("b/inner")).unwrap();
        for name in ["c.txt", "a.txt", "b/inner/z.bin", "b/y.bin"] {
            std::fs::write(dir.path().join(name), name).unwrap();
        }
        let found: Vec<PathBuf> = walk_files(&[dir.path()]).map(Result::unwrap).collect();
        let relative: Vec<String> = found
            .iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(relative, ["a.txt", "b/inner/z.bin", "b/y.bin", "c.txt"]);
    }

    #[test]
    fn a_missing_root_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let results: Vec<_> = walk_files(&[&missing]).collect();
        assert_eq!(results.len(), 1);
        let err = results[0].as_ref().unwrap_err();
        assert_eq!(err.path, missing);
        assert_eq!(err.source.kind(), std::io::ErrorKind::NotFound);
    }

    #[cfg(unix)]
    #[test]
    fn links_inside_directories_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"x").unwrap();
        std::fs::write(dir.path().join("real"), b"y").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        let found: Vec<PathBuf> = walk_files(&[dir.path()]).map(Result::unwrap).collect();
        assert_eq!(found, [dir.path().join("real")]);
    }
}
