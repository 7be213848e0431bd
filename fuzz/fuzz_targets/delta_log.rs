//! Arbitrary bytes as a delta log: reading must give an error or the batches up to the first
//! damage, which re-encode to the same bytes, and which apply to a delta and can be searched
//! without panicking. The same bytes are also decoded as one record's payload, past its
//! checksum, which the fuzzer could not otherwise forge.
#![no_main]

use hashsieve_core::delta::live::{Delta, View};
use hashsieve_core::delta::Batch;
use hashsieve_core::delta::log::{HEADER_LEN, decode_batch, encode_record, read_log};
use hashsieve_core::hashes::HashKind;
use hashsieve_core::index::{Index, IndexBuilder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(batch) = decode_batch(bytes) {
        let record = encode_record(&batch);
        assert_eq!(&record[16..], bytes, "a payload re-encodes to its bytes");
        apply_and_search(bytes, std::slice::from_ref(&batch));
    }
    let Ok(contents) = read_log(bytes) else { return };
    assert!(contents.valid_len as usize <= bytes.len());
    let mut at = HEADER_LEN;
    for batch in &contents.batches {
        let record = encode_record(batch);
        assert_eq!(&bytes[at..at + record.len()], &record[..], "a batch re-encodes to its bytes");
        at += record.len();
    }
    assert_eq!(at as u64, contents.valid_len);
    apply_and_search(bytes, &contents.batches);
});

fn apply_and_search(bytes: &[u8], batches: &[Batch]) {
    let base = Index::open(IndexBuilder::new().to_vec()).expect("an empty index opens");
    let mut delta = Delta::new(&base);
    for batch in batches {
        delta.apply(&base, batch.seq, &batch.changes);
    }
    let view = View { base: &base, delta: &delta };
    for kind in HashKind::ALL {
        let query: Vec<u8> = bytes.iter().rev().copied().cycle().take(kind.value_len()).collect();
        for threshold in [None, Some(0), Some(40)] {
            let mut found = Vec::new();
            view.search(kind, &query, threshold, &mut found);
            for hit in &found {
                assert!(view.entry(&hit.at).is_some());
            }
        }
    }
    view.for_each_entry(|_| {});
}
