//! Exact digests (MD5, SHA-1, SHA-256, BLAKE3): a sorted table with a directory on the leading
//! bits.
//!
//! Fields: entry count N, value length L, directory bits D, and the record every entry shares
//! (`u64::MAX` when each entry has its own). Arrays: the directory, 2^D + 1 `u32`s where
//! entry `dir[k]` is the first whose leading D bits are at least `k`; the values, N × L bytes in
//! ascending order; and the entries' record numbers, N `u32`s (empty when shared).
//!
//! Digests are uniformly distributed, so with D ≈ log2(N/2) the directory narrows a lookup to a
//! couple of entries in one cache line, and the binary search that finishes it is a step or
//! two; lists of adversarial values that share a prefix only make that search longer.

use std::ops::Range;

use rayon::prelude::*;

use super::IndexError;
use super::section::{SectionView, SectionWriter, open_record_column, record_column, u32_at, u32_bytes};

fn directory_bits(count: usize) -> u32 {
    // About two entries per directory slot; at most 2^24 slots (64 MiB).
    (usize::BITS - (count / 2).leading_zeros()).min(24)
}

fn prefix(value: &[u8], bits: u32) -> usize {
    let mut lead = [0u8; 4];
    let n = value.len().min(4);
    lead[..n].copy_from_slice(&value[..n]);
    if bits == 0 { 0 } else { (u32::from_be_bytes(lead) >> (32 - bits)) as usize }
}

/// Builds the section from `values` (`value_len` bytes each) and one record number per value.
/// Duplicate (value, record) pairs are kept once.
pub(crate) fn build(value_len: usize, values: &[u8], records: &[u32]) -> Vec<u8> {
    let mut order: Vec<u32> = (0..records.len() as u32).collect();
    let value = |i: u32| &values[i as usize * value_len..(i as usize + 1) * value_len];
    order.par_sort_unstable_by(|&a, &b| {
        value(a).cmp(value(b)).then(records[a as usize].cmp(&records[b as usize]))
    });
    order.dedup_by(|a, b| value(*a) == value(*b) && records[*a as usize] == records[*b as usize]);

    let bits = directory_bits(order.len());
    let mut directory = Vec::with_capacity((1 << bits) + 1);
    for (position, &i) in order.iter().enumerate() {
        let key = prefix(value(i), bits);
        while directory.len() <= key {
            directory.push(position as u32);
        }
    }
    directory.resize((1 << bits) + 1, order.len() as u32);

    let (shared, record_array) = record_column(&order, records);
    let mut writer = SectionWriter::default();
    writer.field(order.len() as u64).field(value_len as u64).field(u64::from(bits)).field(shared);
    writer.array(u32_bytes(directory));
    writer.array(order.iter().flat_map(|&i| value(i)).copied().collect());
    writer.array(record_array);
    writer.finish()
}

/// An opened exact-digest section: its numbers, and where its arrays lie in the file.
#[derive(Debug, Clone)]
pub(crate) struct ExactTable {
    count: usize,
    value_len: usize,
    bits: u32,
    shared: Option<u32>,
    directory: Range<usize>,
    values: Range<usize>,
    records: Range<usize>,
}

/// An [`ExactTable`] over the file's bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Exact<'a> {
    table: &'a ExactTable,
    directory: &'a [u8],
    values: &'a [u8],
    records: &'a [u8],
}

impl ExactTable {
    /// Checks that the section's numbers agree; O(1).
    pub(crate) fn open(
        file: &[u8],
        section: Range<usize>,
        value_len: usize,
    ) -> Result<ExactTable, IndexError> {
        let view = SectionView::parse(file, section, "digest", 4, 3)?;
        let bad = |why: &str| Err(IndexError::Malformed(format!("digest section: {why}")));
        let [count, len, bits, shared] = view.fields[..] else { unreachable!("four fields parsed") };
        if len != value_len as u64 {
            return bad("value length does not match the hash kind");
        }
        if bits > 24 {
            return bad("directory too large");
        }
        let count_ok = count.checked_mul(len) == Some(view.arrays[1].len() as u64);
        let directory_ok = view.arrays[0].len() as u64 == 4 * ((1u64 << bits) + 1);
        let shared = open_record_column(shared, count, &view.arrays[2]);
        let (Ok(shared), true) = (shared, count_ok && directory_ok) else {
            return bad("array lengths disagree with the entry count");
        };
        let [directory, values, records] = view.arrays.try_into().expect("three arrays parsed");
        Ok(ExactTable {
            count: count as usize,
            value_len,
            bits: bits as u32,
            shared,
            directory,
            values,
            records,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// The table over `file`, the bytes it was opened from.
    pub(crate) fn over<'a>(&'a self, file: &'a [u8]) -> Exact<'a> {
        Exact {
            table: self,
            directory: &file[self.directory.clone()],
            values: &file[self.values.clone()],
            records: &file[self.records.clone()],
        }
    }
}

impl<'a> Exact<'a> {
    fn value(&self, position: usize) -> &'a [u8] {
        &self.values[position * self.table.value_len..(position + 1) * self.table.value_len]
    }

    pub(crate) fn value_at(&self, position: u32) -> Option<&'a [u8]> {
        ((position as usize) < self.table.count).then(|| self.value(position as usize))
    }

    pub(crate) fn record(&self, position: usize) -> u32 {
        self.table.shared.or_else(|| u32_at(self.records, position)).unwrap_or(u32::MAX)
    }

    /// Calls `found(position, record)` for every entry equal to `value`.
    pub(crate) fn lookup(&self, value: &[u8], mut found: impl FnMut(u32, u32)) {
        if value.len() != self.table.value_len {
            return;
        }
        let key = prefix(value, self.table.bits);
        let (Some(start), Some(end)) = (u32_at(self.directory, key), u32_at(self.directory, key + 1)) else {
            return;
        };
        // A corrupt directory can only narrow or empty the range, never leave the table.
        let (start, end) = (start as usize, (end as usize).min(self.table.count));
        if start >= end {
            return;
        }
        let first = start + self.lower_bound(start, end, value);
        for position in first..end {
            if self.value(position) != value {
                break;
            }
            found(position as u32, self.record(position));
        }
    }

    /// The first position in `start..end` whose value is not less than `value`, minus `start`.
    fn lower_bound(&self, start: usize, end: usize, value: &[u8]) -> usize {
        let (mut low, mut size) = (start, end - start);
        while size > 1 {
            let half = size / 2;
            if self.value(low + half - 1) < value {
                low += half;
            }
            size -= half;
        }
        if size == 1 && self.value(low) < value {
            low += 1;
        }
        low - start
    }

    /// Checks order and directory: a full pass.
    pub(crate) fn verify(&self, records: usize) -> Result<(), IndexError> {
        let bad = |why: String| Err(IndexError::Malformed(format!("digest section: {why}")));
        for position in 1..self.table.count {
            if self.value(position - 1) > self.value(position) {
                return bad(format!("entries {} and {position} are out of order", position - 1));
            }
        }
        let mut position = 0;
        for key in 0..=(1usize << self.table.bits) {
            while position < self.table.count && prefix(self.value(position), self.table.bits) < key {
                position += 1;
            }
            if u32_at(self.directory, key) != Some(position as u32) {
                return bad(format!("directory slot {key} is wrong"));
            }
        }
        if let Some(position) = (0..self.table.count).find(|&p| self.record(p) as usize >= records) {
            return bad(format!("entry {position} names a record that does not exist"));
        }
        Ok(())
    }
}
