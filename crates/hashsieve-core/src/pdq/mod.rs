//! STUB — replaced by the PDQ helper.

/// A 256-bit PDQ hash. Byte 0 holds the first two hex digits of the reference's hex form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PdqHash(pub [u8; 32]);

/// A PDQ hash with the reference's integer quality score (0..=100).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PdqOutput {
    pub hash: PdqHash,
    pub quality: u8,
}

/// The eight dihedral hashes in the reference's order (original, rot90, rot180, rot270, flipx,
/// flipy, flipplus1, flipminus1) and the quality.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PdqDihedral {
    pub hashes: [PdqHash; 8],
    pub quality: u8,
}

pub fn hash_rgb(_rgb: &[u8], _width: usize, _height: usize) -> PdqOutput {
    todo!()
}

pub fn dihedral_rgb(_rgb: &[u8], _width: usize, _height: usize) -> PdqDihedral {
    todo!()
}
