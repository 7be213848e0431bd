//! Arbitrary bytes as an index file: opening must give an error or a file whose every section
//! can be read and verified without reading out of bounds.
#![no_main]

use hashsieve_core::index::format::IndexFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(file) = IndexFile::open(bytes) {
        for section in file.sections() {
            let data = file.bytes_of(section);
            assert!(data.len() <= bytes.len());
        }
        let _ = file.verify();
    }
});
