//! The shape shared by every section: a few numbers, then arrays.
//!
//! ```text
//! u32 field count F, u32 array count A
//! F × u64           fields (counts, widths, flags: their meaning is the section kind's)
//! A × (u64, u64)    each array's offset from the section's start, and its length in bytes
//! …                 the arrays, each starting at a multiple of 64 bytes
//! ```
//!
//! Parsing checks only that the fields and every array lie inside the section. Each section kind
//! then checks that the numbers agree with each other (an array of N `u32` has 4·N bytes, …),
//! so that every later read is in bounds.

use std::ops::Range;

use super::IndexError;

const ALIGN: usize = 64;

/// Builds a section's bytes.
#[derive(Debug, Default)]
pub(crate) struct SectionWriter {
    fields: Vec<u64>,
    arrays: Vec<Vec<u8>>,
}

impl SectionWriter {
    pub(crate) fn field(&mut self, value: u64) -> &mut Self {
        self.fields.push(value);
        self
    }

    pub(crate) fn array(&mut self, bytes: Vec<u8>) -> &mut Self {
        self.arrays.push(bytes);
        self
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        let head = 8 + 8 * self.fields.len() + 16 * self.arrays.len();
        let total: usize = self
            .arrays
            .iter()
            .fold(head.next_multiple_of(ALIGN), |at, a| (at + a.len()).next_multiple_of(ALIGN));
        let mut out = Vec::with_capacity(total);
        out.extend((self.fields.len() as u32).to_le_bytes());
        out.extend((self.arrays.len() as u32).to_le_bytes());
        for field in &self.fields {
            out.extend(field.to_le_bytes());
        }
        let mut at = head.next_multiple_of(ALIGN);
        for array in &self.arrays {
            out.extend((at as u64).to_le_bytes());
            out.extend((array.len() as u64).to_le_bytes());
            at = (at + array.len()).next_multiple_of(ALIGN);
        }
        for array in &self.arrays {
            out.resize(out.len().next_multiple_of(ALIGN), 0);
            out.extend(array);
        }
        out
    }
}

/// A parsed section: its fields, and where its arrays lie in the file.
#[derive(Debug)]
pub(crate) struct SectionView {
    pub(crate) fields: Vec<u64>,
    pub(crate) arrays: Vec<Range<usize>>,
}

impl SectionView {
    /// Parses a section of `what` (for error messages), expecting `fields` fields and `arrays`
    /// arrays (or, with `None`, any number, for the caller to check).
    /// `section` is the section's place in `file`; the arrays' ranges are places in `file` too.
    pub(crate) fn parse(
        file: &[u8],
        section: Range<usize>,
        what: &str,
        fields: usize,
        arrays: impl Into<Option<usize>>,
    ) -> Result<SectionView, IndexError> {
        let base = section.start;
        let bytes = &file[section];
        let bad = |why: &str| IndexError::Malformed(format!("{what} section: {why}"));
        if bytes.len() < 8 {
            return Err(bad("shorter than its header"));
        }
        let field_count = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
        let array_count = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes")) as usize;
        let arrays = arrays.into().unwrap_or(array_count);
        if field_count != fields || array_count != arrays {
            return Err(bad(&format!(
                "{field_count} fields and {array_count} arrays, expected {fields} and {arrays}"
            )));
        }
        let head = 8u64 + 8 * fields as u64 + 16 * arrays as u64;
        if (bytes.len() as u64) < head {
            return Err(bad("shorter than its header"));
        }
        let head = head as usize;
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let fields = (0..fields).map(|i| u64_at(8 + 8 * i)).collect();
        let table = 8 + 8 * field_count;
        let arrays = (0..arrays)
            .map(|i| {
                let (offset, len) = (u64_at(table + 16 * i), u64_at(table + 16 * i + 8));
                let end = offset.checked_add(len).filter(|&end| end <= bytes.len() as u64);
                match end {
                    Some(end) if offset >= head as u64 && offset % ALIGN as u64 == 0 => {
                        Ok(base + offset as usize..base + end as usize)
                    }
                    _ => Err(bad(&format!("array {i} lies outside the section"))),
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(SectionView { fields, arrays })
    }
}

/// The record-number column every table has: when all entries share one record, the field
/// holds it and the array is empty; otherwise the field is `u64::MAX` and the array holds one
/// little-endian `u32` per entry, in `order`.
pub(crate) fn record_column(order: &[u32], records: &[u32]) -> (u64, Vec<u8>) {
    match order.first() {
        Some(&first) if order.iter().all(|&i| records[i as usize] == records[first as usize]) => {
            (u64::from(records[first as usize]), Vec::new())
        }
        _ => (SHARED_NONE, u32_bytes(order.iter().map(|&i| records[i as usize]))),
    }
}

/// Opens a record column: the shared record, or `None` when the array holds them; `Err` when
/// the field and the array's length disagree with `count` entries.
pub(crate) fn open_record_column(shared: u64, count: u64, array: &Range<usize>) -> Result<Option<u32>, ()> {
    if shared == SHARED_NONE {
        (count.checked_mul(4) == Some(array.len() as u64)).then_some(None).ok_or(())
    } else {
        (array.is_empty() && shared < u64::from(u32::MAX)).then_some(Some(shared as u32)).ok_or(())
    }
}

const SHARED_NONE: u64 = u64::MAX;

/// Reads the little-endian `u32` at position `i` of an array of them; `None` past the end.
#[inline]
pub(crate) fn u32_at(array: &[u8], i: usize) -> Option<u32> {
    array.get(4 * i..4 * i + 4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
}

/// Serialises `u32`s little-endian.
pub(crate) fn u32_bytes(values: impl IntoIterator<Item = u32>) -> Vec<u8> {
    values.into_iter().flat_map(u32::to_le_bytes).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_arrays_round_trip() {
        let mut writer = SectionWriter::default();
        writer.field(7).field(u64::MAX).array(vec![1, 2, 3]).array(vec![]).array(vec![9; 100]);
        let bytes = writer.finish();
        let view = SectionView::parse(&bytes, 0..bytes.len(), "test", 2, 3).unwrap();
        assert_eq!(view.fields, [7, u64::MAX]);
        let arrays: Vec<&[u8]> = view.arrays.iter().map(|r| &bytes[r.clone()]).collect();
        assert_eq!(arrays, [&[1u8, 2, 3][..], &[][..], &[9u8; 100][..]]);
        assert!(SectionView::parse(&bytes, 0..bytes.len(), "test", 3, 3).is_err(), "field count is checked");
        for len in 0..bytes.len() - 100 {
            assert!(SectionView::parse(&bytes, 0..len, "test", 2, 3).is_err(), "truncated to {len}");
        }
    }
}
