//! Arbitrary bytes as an index file: opening must give an error or an index that can be
//! searched, resolved and verified without panicking or reading out of bounds.
#![no_main]

use hashsieve_core::hashes::HashKind;
use hashsieve_core::index::format::IndexFile;
use hashsieve_core::index::{Index, SearchOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(file) = IndexFile::open(bytes) {
        for section in file.sections() {
            assert!(file.bytes_of(section).len() <= bytes.len());
        }
        let _ = file.verify();
    }
    if let Ok(index) = Index::open(bytes) {
        for kind in HashKind::ALL {
            // A query taken from the input itself, so the fuzzer can steer it onto entries.
            let query: Vec<u8> = bytes.iter().rev().copied().cycle().take(kind.value_len()).collect();
            for threshold in [None, Some(3), Some(40)] {
                for hit in index.search(kind, &query, &SearchOptions { threshold }) {
                    let _ = (index.record(&hit), index.value(&hit), index.list(&hit));
                }
            }
        }
        let _ = index.verify();
    }
});
