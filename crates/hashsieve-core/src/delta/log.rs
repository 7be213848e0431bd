//! The delta log's bytes: a header, then checksummed, length-prefixed records, one per batch.
//!
//! ```text
//! header (32 bytes)
//!   0  magic "HSDELTA\0"
//!   8  u32 format version (1)
//!  12  u32 reserved, 0
//!  16  u64 log number (the generation it follows; see the index directory)
//!  24  u64 checksum of bytes 0..24
//! record (16-byte head, then the payload)
//!   0  magic "HSLR"
//!   4  u32 payload length (at most MAX_PAYLOAD)
//!   8  u64 checksum of bytes 4..8 and the payload
//!  16  payload: u64 sequence number, u64 time (ms since the Unix epoch), opt-string actor,
//!      u32 change count, the changes
//! change
//!   u8 1 define list: string name, u8 role (0 block, 1 allow), u16 PDQ threshold,
//!        u16 pHash/dHash/aHash threshold, u8 PhotoDNA metric (0 none, 1 L1, 2 L2), u32 its threshold
//!   u8 2 add: string list, u8 hash kind code, the value (the kind's length), u8 quality
//!        (255 none), opt-string id, opt-string category, opt-string source
//!   u8 3 remove: opt-string list, u8 0 or 1 then hash kind code and value, opt-string id
//! string: u32 length (at most MAX_STRING) and UTF-8; opt-string: u8 0, or u8 1 and a string
//!
//! durable mark (the index directory's file DURABLE, 32 bytes, rewritten in place)
//!   0  magic "HSDURAB\0"
//!   8  u64 log number
//!  16  u64 length: that log's bytes up to here are durable
//!  24  u64 checksum of bytes 0..24
//! ```
//!
//! All integers are little-endian; checksums are the first 8 bytes of BLAKE3. A batch is one
//! record, so a batch is on disk whole or not at all. A crash can only tear the records
//! written after the last fsync, which no one was told about; reading stops at the first record
//! that does not check out, and [`LogDamage::later_records`] says whether anything valid
//! follows it, which a crash cannot produce and which is therefore reported as corruption.
//!
//! The writer rewrites the durable mark after every `fdatasync`, so a process that only reads
//! the directory (a follower) can tell the records it may serve — those the writer has made
//! durable — from records written but not yet synced, which a power loss could still drop.

use super::{Batch, Change, Removal};
use crate::hashes::HashKind;
use crate::import::ImportedEntry;
use crate::index::{ListOptions, ListRole, Metric, VectorDistance};

/// The log file's first bytes.
pub const LOG_MAGIC: &[u8; 8] = b"HSDELTA\0";
/// The only log format version this build reads and writes.
pub const LOG_VERSION: u32 = 1;
/// Bytes before the first record.
pub const HEADER_LEN: usize = 32;
const RECORD_MAGIC: &[u8; 4] = b"HSLR";
const RECORD_HEAD: usize = 16;
/// The largest batch a record holds: 256 MiB (a refresh changing about four million entries).
pub const MAX_PAYLOAD: usize = 256 << 20;
/// The longest name, id, category, source or actor.
pub const MAX_STRING: usize = 64 << 10;

/// Why a log cannot be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// The header is missing, damaged or of another format.
    #[error("delta log header: {0}")]
    Header(String),
}

/// Where a log stops making sense.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDamage {
    /// Byte offset of the first record that does not check out.
    pub offset: u64,
    /// What is wrong with it.
    pub reason: String,
    /// A valid record starts somewhere after `offset`: not a torn tail but corruption inside
    /// the log, and cutting there would drop acknowledged changes.
    pub later_records: bool,
}

/// A log's readable part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogContents {
    /// The log's number, from its header.
    pub number: u64,
    /// Every whole batch, in order.
    pub batches: Vec<Batch>,
    /// Bytes up to the end of the last whole batch.
    pub valid_len: u64,
    /// Set when bytes follow `valid_len`.
    pub damage: Option<LogDamage>,
}

fn checksum(parts: &[&[u8]]) -> u64 {
    let mut hasher = blake3::Hasher::new();
    for part in parts {
        hasher.update(part);
    }
    u64::from_le_bytes(hasher.finalize().as_bytes()[..8].try_into().expect("8 bytes"))
}

/// A new log's header.
pub fn header(number: u64) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[..8].copy_from_slice(LOG_MAGIC);
    out[8..12].copy_from_slice(&LOG_VERSION.to_le_bytes());
    out[16..24].copy_from_slice(&number.to_le_bytes());
    let sum = checksum(&[&out[..24]]);
    out[24..].copy_from_slice(&sum.to_le_bytes());
    out
}

/// The durable mark's first bytes.
pub const MARK_MAGIC: &[u8; 8] = b"HSDURAB\0";
/// The durable mark's size.
pub const MARK_LEN: usize = 32;

/// How much of which log the writer has made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurableMark {
    /// The log's number.
    pub number: u64,
    /// Bytes of it, from its start, that are durable.
    pub len: u64,
}

impl DurableMark {
    /// The mark's bytes.
    pub fn encode(&self) -> [u8; MARK_LEN] {
        let mut out = [0u8; MARK_LEN];
        out[..8].copy_from_slice(MARK_MAGIC);
        out[8..16].copy_from_slice(&self.number.to_le_bytes());
        out[16..24].copy_from_slice(&self.len.to_le_bytes());
        let sum = checksum(&[&out[..24]]);
        out[24..].copy_from_slice(&sum.to_le_bytes());
        out
    }

    /// Reads a mark, or says why the bytes are not one.
    pub fn decode(bytes: &[u8]) -> Result<DurableMark, String> {
        let bytes: &[u8; MARK_LEN] =
            bytes.try_into().map_err(|_| format!("{} bytes, not {MARK_LEN}", bytes.len()))?;
        if &bytes[..8] != MARK_MAGIC {
            return Err("not a durable mark (bad magic)".into());
        }
        if u64::from_le_bytes(bytes[24..].try_into().expect("8 bytes")) != checksum(&[&bytes[..24]]) {
            return Err("checksum mismatch".into());
        }
        Ok(DurableMark {
            number: u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")),
            len: u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes")),
        })
    }
}

/// Reads a whole log: every batch up to the first damage.
pub fn read_log(bytes: &[u8]) -> Result<LogContents, LogError> {
    let head = bytes.get(..HEADER_LEN).ok_or_else(|| LogError::Header("shorter than a header".into()))?;
    if &head[..8] != LOG_MAGIC {
        return Err(LogError::Header("not a hashsieve delta log (bad magic)".into()));
    }
    let version = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
    if version != LOG_VERSION {
        return Err(LogError::Header(format!("format version {version}; this build reads {LOG_VERSION}")));
    }
    if u64::from_le_bytes(head[24..32].try_into().expect("8 bytes")) != checksum(&[&head[..24]]) {
        return Err(LogError::Header("checksum mismatch".into()));
    }
    let number = u64::from_le_bytes(head[16..24].try_into().expect("8 bytes"));

    let mut batches = Vec::new();
    let mut at = HEADER_LEN;
    let mut damage = None;
    while at < bytes.len() {
        match read_record(&bytes[at..]) {
            Ok((payload, len)) => match decode_batch(payload) {
                Ok(batch) if batches.last().is_some_and(|last: &Batch| last.seq >= batch.seq) => {
                    damage = Some((at, format!("sequence number {} does not increase", batch.seq)));
                    break;
                }
                Ok(batch) => {
                    batches.push(batch);
                    at += len;
                }
                Err(reason) => {
                    damage = Some((at, format!("record does not decode: {reason}")));
                    break;
                }
            },
            Err(reason) => {
                damage = Some((at, reason));
                break;
            }
        }
    }
    let damage = damage.map(|(offset, reason)| LogDamage {
        offset: offset as u64,
        reason,
        later_records: has_record_after(bytes, offset + 1),
    });
    Ok(LogContents { number, batches, valid_len: at as u64, damage })
}

/// One record's payload and total length, or why the bytes are not one.
fn read_record(bytes: &[u8]) -> Result<(&[u8], usize), String> {
    let head = bytes.get(..RECORD_HEAD).ok_or("truncated record header")?;
    if &head[..4] != RECORD_MAGIC {
        return Err("no record magic".into());
    }
    let len = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes")) as usize;
    if len > MAX_PAYLOAD {
        return Err(format!("record length {len} exceeds the limit"));
    }
    let payload = bytes.get(RECORD_HEAD..RECORD_HEAD + len).ok_or("truncated record")?;
    if u64::from_le_bytes(head[8..16].try_into().expect("8 bytes")) != checksum(&[&head[4..8], payload]) {
        return Err("record checksum mismatch".into());
    }
    Ok((payload, RECORD_HEAD + len))
}

/// Whether a record that checks out starts at or after `from`.
fn has_record_after(bytes: &[u8], from: usize) -> bool {
    let mut at = from;
    while let Some(found) = bytes.get(at..).and_then(|rest| rest.windows(4).position(|w| w == RECORD_MAGIC)) {
        if read_record(&bytes[at + found..]).is_ok() {
            return true;
        }
        at += found + 1;
    }
    false
}

/// A batch as a record, ready to append.
pub fn encode_record(batch: &Batch) -> Vec<u8> {
    let mut out = vec![0u8; RECORD_HEAD];
    out[..4].copy_from_slice(RECORD_MAGIC);
    let mut writer = Writer(&mut out);
    writer.u64(batch.seq);
    writer.u64(batch.time_ms);
    writer.opt_str(batch.actor.as_deref());
    writer.u32(batch.changes.len() as u32);
    for change in &batch.changes {
        writer.change(change);
    }
    let len = (out.len() - RECORD_HEAD) as u32;
    out[4..8].copy_from_slice(&len.to_le_bytes());
    let sum = checksum(&[&out[4..8], &out[RECORD_HEAD..]]);
    out[8..16].copy_from_slice(&sum.to_le_bytes());
    out
}

/// The bytes a batch's record takes.
pub fn record_len(payload: usize) -> usize {
    RECORD_HEAD + payload
}

struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    fn u8(&mut self, value: u8) {
        self.0.push(value);
    }
    fn u16(&mut self, value: u16) {
        self.0.extend(value.to_le_bytes());
    }
    fn u32(&mut self, value: u32) {
        self.0.extend(value.to_le_bytes());
    }
    fn u64(&mut self, value: u64) {
        self.0.extend(value.to_le_bytes());
    }
    fn str(&mut self, text: &str) {
        self.u32(text.len() as u32);
        self.0.extend(text.as_bytes());
    }
    fn opt_str(&mut self, text: Option<&str>) {
        match text {
            None => self.u8(0),
            Some(text) => {
                self.u8(1);
                self.str(text);
            }
        }
    }
    fn hash(&mut self, kind: HashKind, value: &[u8]) {
        self.u8(kind.code());
        self.0.extend(value);
    }
    fn change(&mut self, change: &Change) {
        match change {
            Change::DefineList(list) => {
                self.u8(1);
                self.str(&list.name);
                self.u8(match list.role {
                    ListRole::Block => 0,
                    ListRole::Allow => 1,
                });
                self.u16(list.pdq_threshold as u16);
                self.u16(list.hamming_threshold as u16);
                let (metric, threshold) = match list.photodna {
                    None => (0, 0),
                    Some(VectorDistance { metric: Metric::L1, threshold }) => (1, threshold),
                    Some(VectorDistance { metric: Metric::L2, threshold }) => (2, threshold),
                };
                self.u8(metric);
                self.u32(threshold);
            }
            Change::Add { list, entry } => {
                self.u8(2);
                self.str(list);
                self.hash(entry.kind, &entry.value);
                self.u8(entry.quality.unwrap_or(255));
                self.opt_str(entry.id.as_deref());
                self.opt_str(entry.category.as_deref());
                self.opt_str(entry.source.as_deref());
            }
            Change::Remove(removal) => {
                self.u8(3);
                self.opt_str(removal.list.as_deref());
                match &removal.hash {
                    None => self.u8(0),
                    Some((kind, value)) => {
                        self.u8(1);
                        self.hash(*kind, value);
                    }
                }
                self.opt_str(removal.entry_id.as_deref());
            }
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("ends early".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn str(&mut self) -> Result<String, String> {
        let len = self.u32()? as usize;
        if len > MAX_STRING {
            return Err(format!("string of {len} bytes"));
        }
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| "string is not UTF-8".to_string())
    }
    fn opt_str(&mut self) -> Result<Option<String>, String> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.str().map(Some),
            flag => Err(format!("optional flag {flag}")),
        }
    }
    fn hash(&mut self) -> Result<(HashKind, Vec<u8>), String> {
        let code = self.u8()?;
        let kind = HashKind::ALL
            .into_iter()
            .find(|kind| kind.code() == code)
            .ok_or_else(|| format!("hash kind code {code}"))?;
        Ok((kind, self.take(kind.value_len())?.to_vec()))
    }
    fn change(&mut self) -> Result<Change, String> {
        match self.u8()? {
            1 => {
                let name = self.str()?;
                let role = match self.u8()? {
                    0 => ListRole::Block,
                    1 => ListRole::Allow,
                    role => return Err(format!("list role {role}")),
                };
                let pdq_threshold = u32::from(self.u16()?);
                let hamming_threshold = u32::from(self.u16()?);
                let (metric, threshold) = (self.u8()?, self.u32()?);
                let photodna = match metric {
                    0 if threshold == 0 => None,
                    0 => return Err("a PhotoDNA threshold without a metric".into()),
                    1 => Some(VectorDistance { metric: Metric::L1, threshold }),
                    2 => Some(VectorDistance { metric: Metric::L2, threshold }),
                    metric => return Err(format!("PhotoDNA metric {metric}")),
                };
                Ok(Change::DefineList(ListOptions { name, role, pdq_threshold, hamming_threshold, photodna }))
            }
            2 => {
                let list = self.str()?;
                let (kind, value) = self.hash()?;
                let quality = Some(self.u8()?).filter(|&q| q != 255);
                let (id, category, source) = (self.opt_str()?, self.opt_str()?, self.opt_str()?);
                Ok(Change::Add { list, entry: ImportedEntry { kind, value, id, category, source, quality } })
            }
            3 => {
                let list = self.opt_str()?;
                let hash = match self.u8()? {
                    0 => None,
                    1 => Some(self.hash()?),
                    flag => return Err(format!("hash flag {flag}")),
                };
                let entry_id = self.opt_str()?;
                Ok(Change::Remove(Removal { list, hash, entry_id }))
            }
            tag => Err(format!("change tag {tag}")),
        }
    }
}

/// Decodes a record's payload (the bytes after its 16-byte head), whose checksum matched.
pub fn decode_batch(payload: &[u8]) -> Result<Batch, String> {
    let mut reader = Reader(payload);
    let seq = reader.u64()?;
    let time_ms = reader.u64()?;
    let actor = reader.opt_str()?;
    let count = reader.u32()? as usize;
    // Every change takes at least three bytes, so a lying count cannot make us allocate more
    // than the payload justifies.
    let mut changes = Vec::with_capacity(count.min(payload.len() / 3));
    for _ in 0..count {
        changes.push(reader.change()?);
    }
    if !reader.0.is_empty() {
        return Err(format!("{} bytes after the last change", reader.0.len()));
    }
    Ok(Batch { seq, time_ms, actor, changes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_durable_mark_round_trips_and_any_changed_byte_is_refused() {
        let mark = DurableMark { number: 7, len: 1 << 40 };
        let bytes = mark.encode();
        assert_eq!(DurableMark::decode(&bytes), Ok(mark));
        for at in 0..MARK_LEN {
            let mut changed = bytes;
            changed[at] ^= 0x10;
            assert!(DurableMark::decode(&changed).is_err(), "byte {at} changed");
        }
        assert!(DurableMark::decode(&bytes[..31]).is_err());
    }

    fn sample_batches() -> Vec<Batch> {
        let md5 = ImportedEntry::new(HashKind::Md5, vec![7; 16]).with_id("a-1").with_category("A1");
        let pdq = ImportedEntry { quality: Some(90), ..ImportedEntry::new(HashKind::Pdq, vec![0xa5; 32]) };
        vec![
            Batch {
                seq: 1,
                time_ms: 1_700_000_000_000,
                actor: Some("analyst-3".into()),
                changes: vec![
                    Change::DefineList(ListOptions {
                        photodna: Some(VectorDistance { metric: Metric::L2, threshold: 1800 }),
                        ..ListOptions::new("hotline")
                    }),
                    Change::Add { list: "hotline".into(), entry: md5 },
                ],
            },
            Batch {
                seq: 2,
                time_ms: 1_700_000_000_500,
                actor: None,
                changes: vec![
                    Change::Add { list: "hotline".into(), entry: pdq },
                    Change::Remove(Removal {
                        list: Some("hotline".into()),
                        hash: None,
                        entry_id: Some("a-1".into()),
                    }),
                    Change::Remove(Removal {
                        list: None,
                        hash: Some((HashKind::Sha1, vec![1; 20])),
                        entry_id: None,
                    }),
                ],
            },
        ]
    }

    fn log_of(batches: &[Batch]) -> Vec<u8> {
        let mut bytes = header(5).to_vec();
        for batch in batches {
            bytes.extend(encode_record(batch));
        }
        bytes
    }

    #[test]
    fn batches_round_trip() {
        let batches = sample_batches();
        let bytes = log_of(&batches);
        let read = read_log(&bytes).unwrap();
        assert_eq!(read.number, 5);
        assert_eq!(read.batches, batches);
        assert_eq!(read.valid_len, bytes.len() as u64);
        assert_eq!(read.damage, None);
    }

    #[test]
    fn a_torn_tail_is_cut_at_the_last_whole_batch() {
        let batches = sample_batches();
        let bytes = log_of(&batches);
        let first_end = HEADER_LEN + encode_record(&batches[0]).len();
        for cut in HEADER_LEN..bytes.len() {
            let read = read_log(&bytes[..cut]).unwrap();
            let whole = if cut >= first_end { 1 } else { 0 };
            assert_eq!(read.batches, batches[..whole], "cut at {cut}");
            let expected_len = if whole == 1 { first_end } else { HEADER_LEN };
            assert_eq!(read.valid_len, expected_len as u64);
            assert_eq!(read.damage.is_some(), cut != expected_len, "cut at {cut}");
            assert!(!read.damage.is_some_and(|d| d.later_records), "cut at {cut}");
        }
        // Zeros after a torn write (a file extended but not filled) are a torn tail too.
        let mut zeros = bytes.clone();
        zeros.extend([0u8; 4096]);
        let read = read_log(&zeros).unwrap();
        assert_eq!(read.batches, batches);
        assert!(!read.damage.unwrap().later_records);
    }

    #[test]
    fn every_flipped_bit_stops_reading_and_damage_before_valid_records_is_corruption() {
        let batches = sample_batches();
        let bytes = log_of(&batches);
        let first_end = HEADER_LEN + encode_record(&batches[0]).len();
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            match read_log(&flipped) {
                Err(LogError::Header(_)) => assert!(bit / 8 < HEADER_LEN, "bit {bit}"),
                Ok(read) => {
                    let damage = read.damage.expect("a flipped bit is noticed");
                    if bit / 8 < first_end {
                        assert_eq!(read.batches, []);
                        assert!(damage.later_records, "bit {bit}: the second record is intact");
                    } else {
                        assert_eq!(read.batches, batches[..1]);
                        assert!(!damage.later_records, "bit {bit}");
                    }
                }
            }
        }
    }

    #[test]
    fn lying_lengths_and_counts_are_refused_without_allocating() {
        let mut record = encode_record(&sample_batches()[0]);
        // A change count of four billion in a small payload.
        let count_at = RECORD_HEAD + 8 + 8 + 1 + 4 + "analyst-3".len();
        record[count_at..count_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let sum = checksum(&[&record[4..8], &record[RECORD_HEAD..]]);
        record[8..16].copy_from_slice(&sum.to_le_bytes());
        let mut bytes = header(1).to_vec();
        bytes.extend(&record);
        let damage = read_log(&bytes).unwrap().damage.unwrap();
        assert!(damage.reason.contains("does not decode"), "{}", damage.reason);

        let mut bytes = header(1).to_vec();
        bytes.extend(RECORD_MAGIC);
        bytes.extend(u32::MAX.to_le_bytes());
        bytes.extend([0u8; 8]);
        assert!(read_log(&bytes).unwrap().damage.unwrap().reason.contains("exceeds the limit"));
    }

    #[test]
    fn sequence_numbers_must_increase() {
        let mut batches = sample_batches();
        batches[1].seq = 1;
        let read = read_log(&log_of(&batches)).unwrap();
        assert_eq!(read.batches.len(), 1);
        assert!(read.damage.unwrap().reason.contains("does not increase"));
    }
}
