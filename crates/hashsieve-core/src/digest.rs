//! STUB — replaced by the digests helper.
use std::io::Read;
use std::path::Path;

/// One cryptographic digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DigestKind {
    Md5,
    Sha1,
    Sha256,
    Blake3,
}

/// A set of digest kinds the caller wants computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DigestSet(u8);

impl DigestSet {
    pub const NONE: DigestSet = DigestSet(0);
    pub const ALL: DigestSet = DigestSet(0b1111);
    pub fn with(self, kind: DigestKind) -> DigestSet {
        DigestSet(self.0 | (1 << kind as u8))
    }
    pub fn contains(self, kind: DigestKind) -> bool {
        self.0 & (1 << kind as u8) != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// The digests computed for one input; a field is `Some` iff its kind was requested.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Digests {
    pub md5: Option<[u8; 16]>,
    pub sha1: Option<[u8; 20]>,
    pub sha256: Option<[u8; 32]>,
    pub blake3: Option<[u8; 32]>,
}

pub fn digest_bytes(_bytes: &[u8], _which: DigestSet) -> Digests {
    todo!()
}

pub fn digest_reader<R: Read>(_reader: R, _which: DigestSet) -> std::io::Result<(Digests, u64)> {
    todo!()
}

pub fn digest_file(_path: &Path, _which: DigestSet) -> std::io::Result<(Digests, u64)> {
    todo!()
}
