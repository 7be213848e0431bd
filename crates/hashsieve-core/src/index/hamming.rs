//! Hamming-distance kinds (PDQ's 256 bits, the 64-bit img_hash kinds): multi-index hashing,
//! stored ready to search.
//!
//! # Why it is complete
//!
//! The hash's bits are cut into `m` disjoint chunks of `b` bits. If two hashes differ in at most
//! `t` bits, and each chunk `i` is given a radius `r_i` with Σ (r_i + 1) = t + 1, then some chunk
//! differs in at most `r_i` bits: otherwise the differences would add up to at least t + 1.
//! So enumerating, for every chunk, all keys within `r_i` of the query's chunk and verifying
//! every entry in those buckets by its full distance finds **every** entry within `t`
//! (Norouzi, Punjani and Fleet's multi-index hashing, with the radii split unevenly when `m`
//! does not divide `t + 1`; chunks get radius −1, i.e. are skipped, when `t + 1 < m`). An entry
//! found through several chunks is reported once: only by the first chunk that finds it.
//! When the buckets to visit would cost more than reading every hash, the search reads every
//! hash instead; either way the result is exactly the brute-force result.
//!
//! # Layout
//!
//! Fields: entry count N, hash bits, chunk bits `b`, chunk count `m`, id width (3 or 4 bytes),
//! the record every entry shares (`u64::MAX` when each has its own), and a bit mask saying which
//! tables use narrow bucket offsets. Arrays: the hashes (N × bits/8 bytes, sorted by their first
//! chunk), the record numbers (N `u32`s, or empty when shared), then three per chunk table:
//!
//! - bucket starts: wide, 2^b + 1 `u32`s; narrow, one `u32` per 16 buckets (plus one);
//! - narrow only: 2^b + 1 bytes, each bucket's start relative to its group of 16 (empty when
//!   wide). Narrow saves two thirds of the space and is used whenever no group of 16 buckets
//!   holds more than 255 entries, which is always the case for well-spread hashes;
//! - the entry positions in bucket order, N ids of the given width (empty for table 0: the hashes
//!   are stored in table 0's bucket order, so its ids are the positions themselves).
//!
//! Bits are numbered from the most significant bit of the first byte; chunk `i` is bits
//! `i·b .. (i+1)·b`. Bits past `m·b` are in no chunk and still count in the distance.

use std::ops::Range;

use rayon::prelude::*;

use super::IndexError;
use super::section::{SectionView, SectionWriter, open_record_column, record_column, u32_at, u32_bytes};

const GROUP: usize = 16;

/// Asks the CPU to start loading `bytes[at]` into cache: a hint that cannot fault.
#[inline(always)]
fn prefetch(bytes: &[u8], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(byte) = bytes.get(at) {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: SSE is part of the x86_64 baseline, and a prefetch is only a hint: it reads
        // nothing into the program and cannot fault, whatever the address (here, a valid one).
        unsafe { _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(byte).cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (bytes, at);
}

/// A hash of `W` 64-bit words, most significant bit first.
pub(crate) type Words<const W: usize> = [u64; W];

pub(crate) fn words_from_bytes<const W: usize>(bytes: &[u8]) -> Words<W> {
    std::array::from_fn(|i| u64::from_be_bytes(bytes[8 * i..8 * i + 8].try_into().expect("8 bytes")))
}

#[inline]
fn distance<const W: usize>(a: &Words<W>, b: &Words<W>) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

#[inline]
fn chunk<const W: usize>(words: &Words<W>, index: u32, bits: u32) -> usize {
    let start = (index * bits) as usize;
    let (word, shift) = (start / 64, start % 64);
    let high = u128::from(words[word]) << 64;
    let low = words.get(word + 1).map_or(0, |&w| u128::from(w));
    (((high | low) << shift) >> (128 - bits)) as usize
}

/// Calls `each` with every `bits`-bit mask of at most `radius` set bits.
pub(crate) fn for_each_mask(bits: u32, radius: u32, each: &mut impl FnMut(usize)) {
    fn recurse(from: u32, bits: u32, left: u32, mask: usize, each: &mut impl FnMut(usize)) {
        each(mask);
        if left > 0 {
            for bit in from..bits {
                recurse(bit + 1, bits, left - 1, mask | 1 << bit, each);
            }
        }
    }
    recurse(0, bits, radius, 0, each);
}

pub(crate) fn masks_within(bits: u32, radius: u32) -> f64 {
    (0..=radius.min(bits))
        .fold((0.0, 1.0), |(sum, term), k| (sum + term, term * f64::from(bits - k) / f64::from(k + 1)))
        .0
}

/// The radius each chunk is searched with for threshold `t`: −1 (skipped) or more.
pub(crate) fn radii(chunks: u32, threshold: u32) -> impl Iterator<Item = i64> {
    let needed = i64::from(threshold) + 1;
    let chunks = i64::from(chunks);
    let (base, extra) = (needed / chunks, needed % chunks);
    (0..chunks).map(move |i| if i < extra { base } else { base - 1 })
}

/// Estimated memory reads of a multi-index search: bucket lookups plus entries verified.
fn search_cost(count: usize, bits: u32, chunks: u32, threshold: u32) -> f64 {
    let per_bucket = count as f64 / (1u64 << bits) as f64;
    radii(chunks, threshold)
        .filter(|&r| r >= 0)
        .map(|r| masks_within(bits, r as u32) * (1.0 + per_bucket))
        .sum()
}

/// What a whole scan costs in the same units: hashes are read in order, many per cache line.
fn scan_cost(count: usize, hash_bits: u32) -> f64 {
    count as f64 * f64::from(hash_bits) / 512.0
}

/// Chooses the chunk width for `count` hashes searched at up to `threshold`: the cheapest
/// search, with no more buckets per table than twice the entries, so tables stay small.
fn plan(count: usize, hash_bits: u32, threshold: u32) -> (u32, u32) {
    (4..=24u32)
        .filter(|&b| b <= hash_bits && (1usize << b) <= (2 * count).max(16))
        .map(|b| (b, hash_bits / b))
        .min_by(|&(b1, m1), &(b2, m2)| {
            search_cost(count, b1, m1, threshold).total_cmp(&search_cost(count, b2, m2, threshold))
        })
        .unwrap_or((4, hash_bits / 4))
}

/// Builds the section for hashes of `W` words (`values`, big-endian bytes) with one record
/// number each, planned for searches up to `threshold`. Duplicate (hash, record) pairs are kept
/// once.
pub(crate) fn build<const W: usize>(values: &[u8], records: &[u32], threshold: u32) -> Vec<u8> {
    let (bits, chunks) = plan(records.len(), 64 * W as u32, threshold);
    let layout = Layout { bits, chunks, wide_ids: records.len() > 1 << 24, wide_starts: false };
    build_with::<W>(values, records, layout)
}

/// Layout choices that [`build`] makes from the list's size; tests force the rarer ones.
#[derive(Debug, Clone, Copy)]
struct Layout {
    bits: u32,
    chunks: u32,
    /// 4-byte ids rather than 3.
    wide_ids: bool,
    /// Wide bucket starts even where narrow ones fit.
    wide_starts: bool,
}

fn build_with<const W: usize>(values: &[u8], records: &[u32], layout: Layout) -> Vec<u8> {
    let hash_bits = 64 * W as u32;
    let hashes: Vec<Words<W>> = values.par_chunks_exact(8 * W).map(words_from_bytes).collect();
    let Layout { bits, chunks, .. } = layout;

    let mut order: Vec<u32> = (0..hashes.len() as u32).collect();
    order.par_sort_unstable_by_key(|&i| {
        (chunk(&hashes[i as usize], 0, bits), hashes[i as usize], records[i as usize])
    });
    order.dedup_by_key(|&mut i| (hashes[i as usize], records[i as usize]));
    let sorted: Vec<Words<W>> = order.iter().map(|&i| hashes[i as usize]).collect();
    let count = sorted.len();
    let id_width = if layout.wide_ids { 4 } else { 3 };

    let tables: Vec<EncodedTable> = (0..chunks)
        .into_par_iter()
        .map(|table| {
            let keys: Vec<usize> = sorted.iter().map(|h| chunk(h, table, bits)).collect();
            let mut starts = vec![0u32; (1 << bits) + 1];
            for &key in &keys {
                starts[key + 1] += 1;
            }
            for key in 0..1 << bits {
                starts[key + 1] += starts[key];
            }
            let ids = if table == 0 {
                Vec::new()
            } else {
                let mut next = starts.clone();
                let mut ids = vec![0u8; count * id_width];
                for (position, &key) in keys.iter().enumerate() {
                    let slot = next[key] as usize;
                    next[key] += 1;
                    ids[slot * id_width..(slot + 1) * id_width]
                        .copy_from_slice(&(position as u32).to_le_bytes()[..id_width]);
                }
                ids
            };
            let (narrow, base, relative) = encode_starts(&starts, bits, layout.wide_starts);
            EncodedTable { narrow, base, relative, ids }
        })
        .collect();

    let (shared, record_array) = record_column(&order, records);
    let narrow_mask =
        tables.iter().enumerate().filter(|(_, t)| t.narrow).fold(0u64, |mask, (i, _)| mask | 1 << i);
    let mut writer = SectionWriter::default();
    writer
        .field(count as u64)
        .field(u64::from(hash_bits))
        .field(u64::from(bits))
        .field(u64::from(chunks))
        .field(id_width as u64)
        .field(shared)
        .field(narrow_mask);
    writer.array(sorted.iter().flat_map(|h| h.iter().flat_map(|w| w.to_be_bytes())).collect());
    writer.array(record_array);
    for table in tables {
        writer.array(table.base).array(table.relative).array(table.ids);
    }
    writer.finish()
}

/// One chunk table's arrays, ready to write.
struct EncodedTable {
    narrow: bool,
    base: Vec<u8>,
    relative: Vec<u8>,
    ids: Vec<u8>,
}

/// Narrow encoding when every group of 16 buckets holds at most 255 entries before its last
/// bucket; wide otherwise.
fn encode_starts(starts: &[u32], bits: u32, wide: bool) -> (bool, Vec<u8>, Vec<u8>) {
    let buckets = 1usize << bits;
    let fits = !wide && (0..=buckets).all(|key| starts[key] - starts[key / GROUP * GROUP] <= 255);
    if !fits {
        return (false, u32_bytes(starts.iter().copied()), Vec::new());
    }
    let base = u32_bytes((0..=buckets / GROUP).map(|group| starts[group * GROUP]));
    let relative = (0..=buckets).map(|key| (starts[key] - starts[key / GROUP * GROUP]) as u8).collect();
    (true, base, relative)
}

/// One chunk's table: where its arrays lie in the file.
#[derive(Debug, Clone)]
struct ChunkTable {
    narrow: bool,
    base: Range<usize>,
    relative: Range<usize>,
    ids: Range<usize>,
}

/// A [`ChunkTable`] over the file's bytes.
#[derive(Debug, Clone, Copy)]
struct Chunk<'a> {
    narrow: bool,
    base: &'a [u8],
    relative: &'a [u8],
    ids: &'a [u8],
}

impl Chunk<'_> {
    #[inline]
    fn prefetch_start(&self, key: usize) {
        if self.narrow {
            prefetch(self.base, key / GROUP * 4);
            prefetch(self.relative, key);
        } else {
            prefetch(self.base, key * 4);
        }
    }

    #[inline]
    fn start(&self, key: usize) -> Option<usize> {
        if self.narrow {
            Some(u32_at(self.base, key / GROUP)? as usize + usize::from(*self.relative.get(key)?))
        } else {
            u32_at(self.base, key).map(|s| s as usize)
        }
    }
}

/// An opened Hamming section for hashes of `W` words: its numbers, and where its arrays lie.
#[derive(Debug, Clone)]
pub(crate) struct HammingTable<const W: usize> {
    count: usize,
    bits: u32,
    chunks: u32,
    id_width: usize,
    shared: Option<u32>,
    hashes: Range<usize>,
    records: Range<usize>,
    tables: Vec<ChunkTable>,
}

/// A [`HammingTable`] over the file's bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hamming<'a, const W: usize> {
    table: &'a HammingTable<W>,
    file: &'a [u8],
    hashes: &'a [u8],
    records: &'a [u8],
}

impl<const W: usize> HammingTable<W> {
    /// Checks that the section's numbers agree; cost proportional to the number of chunks.
    pub(crate) fn open(file: &[u8], section: Range<usize>) -> Result<HammingTable<W>, IndexError> {
        let view = SectionView::parse(file, section, "hamming", 7, None)?;
        let bad = |why: &str| Err(IndexError::Malformed(format!("hamming section: {why}")));
        let [count, hash_bits, bits, chunks, id_width, shared, narrow_mask] = view.fields[..] else {
            unreachable!("seven fields parsed")
        };
        if hash_bits != 64 * W as u64 {
            return bad("hash width does not match the hash kind");
        }
        if !(4..=24).contains(&bits)
            || !(1..=64).contains(&chunks)
            || bits * chunks > hash_bits
            || !(3..=4).contains(&id_width)
        {
            return bad("chunk layout out of range");
        }
        if id_width == 3 && count > 1 << 24 || view.arrays.len() as u64 != 2 + 3 * chunks {
            return bad("id width or array count disagrees with the layout");
        }
        if count.checked_mul(8 * W as u64) != Some(view.arrays[0].len() as u64) {
            return bad("hash array length disagrees with the entry count");
        }
        let Ok(shared) = open_record_column(shared, count, &view.arrays[1]) else {
            return bad("record array length disagrees with the entry count");
        };
        let buckets = 1u64 << bits;
        let mut tables = Vec::with_capacity(chunks as usize);
        for (table, arrays) in view.arrays[2..].chunks_exact(3).enumerate() {
            let narrow = narrow_mask >> table & 1 == 1;
            let [base, relative, ids] = [0, 1, 2].map(|i| arrays[i].clone());
            let starts_ok = if narrow {
                base.len() as u64 == 4 * (buckets / GROUP as u64 + 1) && relative.len() as u64 == buckets + 1
            } else {
                base.len() as u64 == 4 * (buckets + 1) && relative.is_empty()
            };
            let ids_len = if table == 0 { Some(0) } else { count.checked_mul(id_width) };
            if !starts_ok || Some(ids.len() as u64) != ids_len {
                return bad("table array lengths disagree with the layout");
            }
            tables.push(ChunkTable { narrow, base, relative, ids });
        }
        Ok(HammingTable {
            count: count as usize,
            bits: bits as u32,
            chunks: chunks as u32,
            id_width: id_width as usize,
            shared,
            hashes: view.arrays[0].clone(),
            records: view.arrays[1].clone(),
            tables,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Chunk width and count, for `index inspect`.
    pub(crate) fn layout(&self) -> (u32, u32) {
        (self.bits, self.chunks)
    }

    /// The table over `file`, the bytes it was opened from.
    pub(crate) fn over<'a>(&'a self, file: &'a [u8]) -> Hamming<'a, W> {
        Hamming {
            table: self,
            file,
            hashes: &file[self.hashes.clone()],
            records: &file[self.records.clone()],
        }
    }
}

impl<'a, const W: usize> Hamming<'a, W> {
    #[inline]
    fn chunk_table(&self, table: usize) -> Chunk<'a> {
        let t = &self.table.tables[table];
        Chunk {
            narrow: t.narrow,
            base: &self.file[t.base.clone()],
            relative: &self.file[t.relative.clone()],
            ids: &self.file[t.ids.clone()],
        }
    }

    #[inline]
    fn hash(&self, position: usize) -> Words<W> {
        words_from_bytes(&self.hashes[position * 8 * W..(position + 1) * 8 * W])
    }

    pub(crate) fn value_at(&self, position: u32) -> Option<&'a [u8]> {
        let at = position as usize * 8 * W;
        ((position as usize) < self.table.count).then(|| &self.hashes[at..at + 8 * W])
    }

    pub(crate) fn record(&self, position: usize) -> u32 {
        self.table.shared.or_else(|| u32_at(self.records, position)).unwrap_or(u32::MAX)
    }

    #[inline]
    fn id(&self, chunk: &Chunk<'_>, table: usize, slot: usize) -> Option<usize> {
        if table == 0 {
            return Some(slot);
        }
        let width = self.table.id_width;
        let bytes = chunk.ids.get(slot * width..slot * width + width)?;
        let mut id = [0u8; 4];
        id[..width].copy_from_slice(bytes);
        Some(u32::from_le_bytes(id) as usize)
    }

    /// The entries of bucket `key` of `table`, as a range of slots. A corrupt table can only
    /// narrow or empty the range.
    #[inline]
    fn bucket(&self, chunk: &Chunk<'_>, key: usize) -> std::ops::Range<usize> {
        match (chunk.start(key), chunk.start(key + 1)) {
            (Some(start), Some(end)) => start..end.min(self.table.count),
            _ => 0..0,
        }
    }

    /// Calls `found(position, distance)` for every entry within `threshold` bits of `query`
    /// (`W`·8 big-endian bytes), each exactly once.
    pub(crate) fn search(&self, query: &[u8], threshold: u32, mut found: impl FnMut(u32, u32)) {
        if query.len() != 8 * W || self.table.count == 0 {
            return;
        }
        let query: Words<W> = words_from_bytes(query);
        let hash_bits = 64 * W as u32;
        if search_cost(self.table.count, self.table.bits, self.table.chunks, threshold)
            >= scan_cost(self.table.count, hash_bits)
        {
            return self.scan(&query, threshold, found);
        }
        let radii: Vec<i64> = radii(self.table.chunks, threshold).collect();
        let query_chunks: Vec<usize> =
            (0..self.table.chunks).map(|i| chunk(&query, i, self.table.bits)).collect();
        let tables: Vec<Chunk<'_>> = (0..self.table.tables.len()).map(|t| self.chunk_table(t)).collect();

        // Each stage below depends on memory the previous one read: bucket starts, then ids,
        // then hashes, all at random places in a large file. Doing one stage for all probes
        // before the next, prefetching what the next stage reads, keeps many cache misses in
        // flight at once instead of waiting for each in turn.
        let mut probes: Vec<(usize, usize)> = Vec::new();
        for (table, &radius) in radii.iter().enumerate() {
            if radius >= 0 {
                for_each_mask(self.table.bits, radius as u32, &mut |mask| {
                    let key = query_chunks[table] ^ mask;
                    tables[table].prefetch_start(key);
                    probes.push((table, key));
                });
            }
        }
        let mut ranges: Vec<(usize, std::ops::Range<usize>)> = Vec::with_capacity(probes.len());
        for (table, key) in probes {
            let range = self.bucket(&tables[table], key);
            if !range.is_empty() {
                match table {
                    0 => prefetch(self.hashes, range.start * 8 * W),
                    _ => prefetch(tables[table].ids, range.start * self.table.id_width),
                }
                ranges.push((table, range));
            }
        }
        let mut candidates: Vec<(usize, usize)> = Vec::with_capacity(ranges.len() * 2);
        for (table, range) in ranges {
            for slot in range {
                if let Some(position) = self.id(&tables[table], table, slot).filter(|&p| p < self.table.count)
                {
                    prefetch(self.hashes, position * 8 * W);
                    candidates.push((table, position));
                }
            }
        }
        for (table, position) in candidates {
            let hash = self.hash(position);
            let d = distance(&hash, &query);
            if d > threshold {
                continue;
            }
            // Reported by an earlier table already if it lies within that table's radius.
            let earlier = (0..table).any(|t| {
                radii[t] >= 0
                    && i64::from((chunk(&hash, t as u32, self.table.bits) ^ query_chunks[t]).count_ones())
                        <= radii[t]
            });
            if !earlier {
                found(position as u32, d);
            }
        }
    }

    fn scan(&self, query: &Words<W>, threshold: u32, mut found: impl FnMut(u32, u32)) {
        const PARALLEL_FROM: usize = 1 << 16;
        let within = |position: usize| {
            let d = distance(&self.hash(position), query);
            (d <= threshold).then_some((position as u32, d))
        };
        if self.table.count < PARALLEL_FROM {
            (0..self.table.count).filter_map(within).for_each(|(p, d)| found(p, d));
        } else {
            let hits: Vec<(u32, u32)> = (0..self.table.count).into_par_iter().filter_map(within).collect();
            hits.into_iter().for_each(|(p, d)| found(p, d));
        }
    }

    /// Checks the order of the hashes and that every table holds each entry once, in the
    /// bucket of its chunk: a full pass.
    pub(crate) fn verify(&self, records: usize) -> Result<(), IndexError> {
        let bad = |why: String| Err(IndexError::Malformed(format!("hamming section: {why}")));
        let buckets = 1usize << self.table.bits;
        for table in 0..self.table.tables.len() {
            let chunk_table = self.chunk_table(table);
            let mut seen = vec![false; self.table.count];
            let mut previous_end = 0;
            for key in 0..buckets {
                let (start, end) = (chunk_table.start(key), chunk_table.start(key + 1));
                let (Some(start), Some(end)) = (start, end) else {
                    return bad(format!("table {table} truncated"));
                };
                if start != previous_end || end < start || end > self.table.count {
                    return bad(format!("table {table}: bucket {key} is out of place"));
                }
                previous_end = end;
                for slot in start..end {
                    let position = self.id(&chunk_table, table, slot).unwrap_or(usize::MAX);
                    if position >= self.table.count || std::mem::replace(&mut seen[position], true) {
                        return bad(format!("table {table}: slot {slot} names a missing or repeated entry"));
                    }
                    if chunk(&self.hash(position), table as u32, self.table.bits) != key {
                        return bad(format!("table {table}: entry {position} is in the wrong bucket"));
                    }
                }
            }
            if previous_end != self.table.count {
                return bad(format!("table {table} does not hold every entry"));
            }
        }
        if let Some(position) = (0..self.table.count).find(|&p| self.record(p) as usize >= records) {
            return bad(format!("entry {position} names a record that does not exist"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radii_add_up_to_threshold_plus_one() {
        for chunks in 1..=32 {
            for threshold in 0..=256 {
                let sum: i64 = radii(chunks, threshold).map(|r| r + 1).sum();
                assert_eq!(sum, i64::from(threshold) + 1, "m={chunks} t={threshold}");
            }
        }
    }

    #[test]
    fn masks_are_every_combination_once() {
        let mut masks = Vec::new();
        for_each_mask(10, 3, &mut |m| masks.push(m));
        let expected: Vec<usize> = (0..1 << 10).filter(|m: &usize| m.count_ones() <= 3).collect();
        masks.sort_unstable();
        assert_eq!(masks, expected);
        assert_eq!(masks_within(10, 3), expected.len() as f64);
    }

    #[test]
    fn chunks_read_bits_most_significant_first() {
        let words: Words<2> = [0x8000_0000_0000_0001, 0xC000_0000_0000_0000];
        assert_eq!(chunk(&words, 0, 4), 0b1000);
        // Bits 60..64 of word 0 and 64..68 straddle: chunk 15 of width 4 is bits 60..64.
        assert_eq!(chunk(&words, 15, 4), 0b0001);
        assert_eq!(chunk(&words, 16, 4), 0b1100);
        assert_eq!(chunk(&words, 7, 9), 0b1_1100_0000);
    }

    #[test]
    fn plan_grows_chunks_with_the_list() {
        assert_eq!(plan(10_000_000, 256, 31), (23, 11));
        let (bits, _) = plan(1000, 256, 31);
        assert!(bits <= 11, "no table larger than twice the list: {bits}");
    }

    use proptest::prelude::*;

    /// Hashes of `W` words: random, near-duplicates of each other, or all the same.
    fn hashes<const W: usize>() -> impl Strategy<Value = Vec<Words<W>>> {
        let random = prop::collection::vec(prop::array::uniform::<_, W>(any::<u64>()), 0..400);
        let clustered =
            (prop::array::uniform::<_, W>(any::<u64>()), prop::collection::vec(flips::<W>(40), 1..400))
                .prop_map(|(base, flips)| flips.into_iter().map(|f| xor(&base, &f)).collect());
        let identical =
            (prop::array::uniform::<_, W>(any::<u64>()), 1..300usize).prop_map(|(h, n)| vec![h; n]);
        prop_oneof![random, clustered, identical]
    }

    /// A mask of at most `most` set bits.
    fn flips<const W: usize>(most: usize) -> impl Strategy<Value = Words<W>> {
        prop::collection::vec(0..64 * W, 0..=most).prop_map(|bits| {
            let mut mask = [0u64; W];
            for bit in bits {
                mask[bit / 64] |= 1 << (bit % 64);
            }
            mask
        })
    }

    fn xor<const W: usize>(a: &Words<W>, b: &Words<W>) -> Words<W> {
        std::array::from_fn(|i| a[i] ^ b[i])
    }

    fn bytes<const W: usize>(hash: &Words<W>) -> Vec<u8> {
        hash.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    /// Searches every query at every threshold with the index built with `layout` and compares
    /// with a brute-force scan: same (hash, record, distance) triples, each once.
    fn check<const W: usize>(entries: &[Words<W>], queries: &[Words<W>], thresholds: &[u32], layout: Layout) {
        let values: Vec<u8> = entries.iter().flat_map(bytes).collect();
        let records: Vec<u32> = (0..entries.len() as u32).map(|i| i % 7).collect();
        let file = build_with::<W>(&values, &records, layout);
        let table = HammingTable::<W>::open(&file, 0..file.len()).unwrap();
        let view = table.over(&file);
        view.verify(7).unwrap();
        let mut unique: Vec<(Words<W>, u32)> = entries.iter().copied().zip(records.iter().copied()).collect();
        unique.sort_unstable();
        unique.dedup();
        for query in queries {
            for &threshold in thresholds {
                let mut found = Vec::new();
                view.search(&bytes(query), threshold, |p, d| {
                    found.push((view.hash(p as usize), view.record(p as usize), d))
                });
                found.sort_unstable();
                let mut expected: Vec<_> = unique
                    .iter()
                    .map(|&(h, r)| (h, r, distance(&h, query)))
                    .filter(|&(_, _, d)| d <= threshold)
                    .collect();
                expected.sort_unstable();
                assert_eq!(found, expected, "threshold {threshold}, layout {layout:?}");
            }
        }
    }

    fn queries<const W: usize>() -> impl Strategy<Value = (Vec<Words<W>>, Vec<Words<W>>)> {
        hashes::<W>().prop_flat_map(|entries| {
            let n = entries.len();
            let near = prop::collection::vec((0..n.max(1), flips::<W>(70)), 0..6);
            let random = prop::collection::vec(prop::array::uniform::<_, W>(any::<u64>()), 0..3);
            (Just(entries), near, random).prop_map(|(entries, near, random)| {
                let mut queries: Vec<Words<W>> =
                    near.into_iter().filter_map(|(i, f)| entries.get(i).map(|h| xor(h, &f))).collect();
                queries.extend(random);
                (entries, queries)
            })
        })
    }

    fn layouts(bits: u32, count: u32) -> impl Strategy<Value = Layout> {
        (4..=bits, 1..=count, any::<bool>(), any::<bool>()).prop_map(
            move |(bits, chunks, wide_ids, wide_starts)| Layout {
                bits,
                chunks: chunks.min(count * 4 / bits),
                wide_ids,
                wide_starts,
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn pdq_search_equals_brute_force((entries, queries) in queries::<4>(), layout in layouts(12, 64)) {
            check::<4>(&entries, &queries, &[0, 1, 15, 31, 32, 63, 255, 256], layout);
        }

        #[test]
        fn hamming64_search_equals_brute_force((entries, queries) in queries::<1>(), layout in layouts(12, 16)) {
            check::<1>(&entries, &queries, &[0, 4, 8, 10, 31, 64], layout);
        }
    }

    #[test]
    fn every_entry_within_the_radius_is_found() {
        // All entries within the threshold of the query: nothing may be missed.
        let query =
            [0x0123_4567_89ab_cdef_u64, 0xfedc_ba98_7654_3210, 0x0f0f_0f0f_f0f0_f0f0, 0xaaaa_5555_aaaa_5555];
        let entries: Vec<Words<4>> = (0..600u64)
            .map(|i| {
                let mut h = query;
                for k in 0..(i % 32) {
                    let bit = (i * 37 + k * 101) % 256;
                    h[bit as usize / 64] ^= 1 << (bit % 64);
                }
                h
            })
            .collect();
        for layout in [
            Layout { bits: 16, chunks: 16, wide_ids: false, wide_starts: false },
            Layout { bits: 10, chunks: 25, wide_ids: true, wide_starts: true },
        ] {
            check::<4>(&entries, &[query], &[0, 31, 32, 63], layout);
        }
    }
}
