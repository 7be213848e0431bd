//! The plain URL list: every URL on the block list, one a line.
//!
//! # Format
//!
//! ```text
//! http://example.com/a.jpg
//! https://abuse.example.org/
//! https://example.net/b?id=7
//! ```
//!
//! - One URL a line, exactly as the entry gives it, ended by LF (`\n`, also after the last).
//! - Sorted bytewise and without repeats, so that two versions of the list diff line by line.
//! - Every entry, whatever its scheme and whether or not its host is marked whole: the flag is
//!   not in the file, since an ISP's tools read each line as one URL and nothing else.
//! - No header, comment or blank line, for the same reason: a `# generated …` line would be
//!   taken for a URL. Metadata goes beside the file (the HTTP response's `ETag`, see
//!   [`etag`](super::etag)).
//! - An empty list is an empty file.
//! - URLs that are not ASCII or that hold a space or control character are left out as
//!   [`Malformed`](super::SkipReason::Malformed): a line break would split them.
//!
//! # Example
//!
//! ```
//! use hashsieve_triage::blocklist::{BlockEntry, plain};
//!
//! let entries = vec![
//!     BlockEntry { url: "https://b.example/".into(), whole_host: true },
//!     BlockEntry { url: "http://a.example/x".into(), whole_host: false },
//!     BlockEntry { url: "http://a.example/x".into(), whole_host: false },
//! ];
//! let mut out = Vec::new();
//! let summary = plain::write_list(&entries, &mut out)?;
//! assert_eq!(out, b"http://a.example/x\nhttps://b.example/\n");
//! assert_eq!((summary.written, summary.total_skipped()), (2, 1));
//! # Ok::<(), hashsieve_triage::blocklist::BlocklistError>(())
//! ```

use std::io::Write;

use super::{BlockEntry, BlocklistError, SkipReason, Summary, url, write_lines};

/// Writes the plain URL list of `entries` to `out`.
pub fn write_list(entries: &[BlockEntry], out: impl Write) -> Result<Summary, BlocklistError> {
    let mut summary = Summary::default();
    let mut lines = Vec::with_capacity(entries.len());
    for entry in entries {
        match url::parse(&entry.url) {
            Some(_) => lines.push(entry.url.as_str()),
            None => summary.skip(SkipReason::Malformed),
        }
    }
    write_lines(lines, None, summary, out)
}
