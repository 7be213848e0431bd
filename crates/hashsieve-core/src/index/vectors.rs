//! Externally computed vectors (PhotoDNA's 144 bytes): opaque values compared by the distance
//! their list declares, searched completely by reading them all.
//!
//! hashsieve does not compute PhotoDNA; platforms that license it supply the vectors, and lists
//! carry them. The distance is L1 (sum of absolute byte differences) or L2 (Euclidean) over the
//! bytes as unsigned numbers. Vector lists are far smaller than digest and PDQ lists, and a scan
//! is exact by construction; it runs in parallel for long lists.
//!
//! Fields: entry count N, vector length L, the record every entry shares (`u64::MAX` when each
//! has its own). Arrays: the vectors (N × L bytes, ascending), the record numbers (N `u32`s or
//! empty).

use std::ops::Range;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::IndexError;
use super::section::{SectionView, SectionWriter, open_record_column, record_column, u32_at};

/// How a list compares vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Sum of absolute differences.
    L1,
    /// Euclidean distance.
    L2,
}

impl std::str::FromStr for Metric {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "l1" => Ok(Metric::L1),
            "l2" => Ok(Metric::L2),
            _ => Err(format!("unknown distance {text:?} (expected l1 or l2)")),
        }
    }
}

/// A list's declared distance: a metric and the largest distance that matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VectorDistance {
    /// L1 or L2.
    pub metric: Metric,
    /// Matches are at most this far away. For L2, the distance reported is the Euclidean
    /// distance rounded down, and matching compares squared distances exactly.
    pub threshold: u32,
}

impl VectorDistance {
    /// The distance between `a` and `b` if it is within the threshold.
    pub fn within(&self, a: &[u8], b: &[u8]) -> Option<u32> {
        let diffs = a.iter().zip(b).map(|(&x, &y)| u64::from(x.abs_diff(y)));
        match self.metric {
            Metric::L1 => {
                Some(diffs.sum::<u64>()).filter(|&d| d <= u64::from(self.threshold)).map(|d| d as u32)
            }
            Metric::L2 => {
                let squared: u64 = diffs.map(|d| d * d).sum();
                let limit = u64::from(self.threshold) * u64::from(self.threshold);
                (squared <= limit).then(|| squared.isqrt() as u32)
            }
        }
    }
}

/// Builds the section from `values` (`len` bytes each) and one record number each.
pub(crate) fn build(len: usize, values: &[u8], records: &[u32]) -> Vec<u8> {
    let value = |i: u32| &values[i as usize * len..(i as usize + 1) * len];
    let mut order: Vec<u32> = (0..records.len() as u32).collect();
    order.par_sort_unstable_by(|&a, &b| {
        value(a).cmp(value(b)).then(records[a as usize].cmp(&records[b as usize]))
    });
    order.dedup_by(|a, b| value(*a) == value(*b) && records[*a as usize] == records[*b as usize]);
    let (shared, record_array) = record_column(&order, records);
    let mut writer = SectionWriter::default();
    writer.field(order.len() as u64).field(len as u64).field(shared);
    writer.array(order.iter().flat_map(|&i| value(i)).copied().collect());
    writer.array(record_array);
    writer.finish()
}

/// An opened vector section: its numbers and where its arrays lie in the file.
#[derive(Debug, Clone)]
pub(crate) struct VectorTable {
    count: usize,
    value_len: usize,
    shared: Option<u32>,
    values: Range<usize>,
    records: Range<usize>,
}

/// A [`VectorTable`] over the file's bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Vectors<'a> {
    table: &'a VectorTable,
    values: &'a [u8],
    records: &'a [u8],
}

impl VectorTable {
    pub(crate) fn open(file: &[u8], section: Range<usize>, len: usize) -> Result<VectorTable, IndexError> {
        let view = SectionView::parse(file, section, "vector", 3, 2)?;
        let [count, value_len, shared] = view.fields[..] else { unreachable!("three fields parsed") };
        let values_ok =
            value_len == len as u64 && count.checked_mul(value_len) == Some(view.arrays[0].len() as u64);
        let Ok(shared) =
            open_record_column(shared, count, &view.arrays[1]).and_then(|s| values_ok.then_some(s).ok_or(()))
        else {
            return Err(IndexError::Malformed(
                "vector section: array lengths disagree with the entry count".into(),
            ));
        };
        Ok(VectorTable {
            count: count as usize,
            value_len: len,
            shared,
            values: view.arrays[0].clone(),
            records: view.arrays[1].clone(),
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.count
    }

    pub(crate) fn over<'a>(&'a self, file: &'a [u8]) -> Vectors<'a> {
        Vectors { table: self, values: &file[self.values.clone()], records: &file[self.records.clone()] }
    }
}

impl<'a> Vectors<'a> {
    pub(crate) fn record(&self, position: usize) -> u32 {
        self.table.shared.or_else(|| u32_at(self.records, position)).unwrap_or(u32::MAX)
    }

    pub(crate) fn value_at(&self, position: u32) -> Option<&'a [u8]> {
        let (at, len) = (position as usize * self.table.value_len, self.table.value_len);
        ((position as usize) < self.table.count).then(|| &self.values[at..at + len])
    }

    /// Every entry whose distance from `query` is within the distance `distance_of` gives for
    /// its record (`None`: the entry's list has no declared distance), as (position, distance).
    pub(crate) fn search(
        &self,
        query: &[u8],
        distance_of: impl Fn(u32) -> Option<VectorDistance> + Sync,
    ) -> Vec<(u32, u32)> {
        if query.len() != self.table.value_len {
            return Vec::new();
        }
        let check = |position: usize| {
            let vector = &self.values[position * self.table.value_len..(position + 1) * self.table.value_len];
            distance_of(self.record(position))?.within(query, vector).map(|d| (position as u32, d))
        };
        (0..self.table.count).into_par_iter().with_min_len(4096).filter_map(check).collect()
    }

    pub(crate) fn verify(&self, records: usize) -> Result<(), IndexError> {
        let len = self.table.value_len;
        for position in 1..self.table.count {
            if self.values[(position - 1) * len..position * len]
                > self.values[position * len..(position + 1) * len]
            {
                return Err(IndexError::Malformed(format!(
                    "vector section: entry {position} is out of order"
                )));
            }
        }
        match (0..self.table.count).find(|&p| self.record(p) as usize >= records) {
            Some(p) => {
                Err(IndexError::Malformed(format!("vector section: entry {p} names a missing record")))
            }
            None => Ok(()),
        }
    }
}
