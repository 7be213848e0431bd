//! Arbitrary bytes as a hash list in every format and mode: an import must end in a report or
//! an error naming the record, never a panic, and strict mode never imports past a bad record.
#![no_main]

use hashsieve_core::hashes::HashKind;
use hashsieve_core::import::{Mode, import_csv, import_lines, import_vics};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    for mode in [Mode::Strict, Mode::Lenient] {
        for kind in [HashKind::Md5, HashKind::Pdq, HashKind::PhotoDna] {
            let mut count = 0u64;
            if let Ok(report) = import_lines(bytes, "fuzz", kind, mode, |e| {
                assert_eq!(e.value.len(), kind.value_len());
                count += 1;
            }) {
                assert_eq!(report.imported, count);
            }
            let _ = import_csv(bytes, "fuzz", kind, mode, |e| assert_eq!(e.value.len(), kind.value_len()));
        }
        let kinds = [HashKind::Md5, HashKind::Sha1, HashKind::PhotoDna];
        let _ = import_vics(bytes, "fuzz", &kinds, mode, |e| assert_eq!(e.value.len(), e.kind.value_len()));
    }
});
