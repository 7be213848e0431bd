//! The kinds of hash that hash lists carry, and parsing their values.
//!
//! A list entry is only useful if its kind is certain: 64 hex digits could be a SHA-256, a
//! BLAKE3 or a PDQ hash, and matching one as the other finds nothing. So the kind is always
//! declared by whoever imports the list — never guessed from the value's length — and a value
//! that does not fit its declared kind is an error.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;

/// A kind of hash found in hash lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashKind {
    /// MD5 digest, 16 bytes; matched by equality.
    Md5,
    /// SHA-1 digest, 20 bytes; matched by equality.
    Sha1,
    /// SHA-256 digest, 32 bytes; matched by equality.
    Sha256,
    /// BLAKE3 digest, 32 bytes; matched by equality.
    Blake3,
    /// PDQ, 256 bits; matched by Hamming distance.
    Pdq,
    /// 64-bit pHash; matched by Hamming distance.
    PHash,
    /// 64-bit dHash; matched by Hamming distance.
    DHash,
    /// 64-bit aHash; matched by Hamming distance.
    AHash,
    /// PhotoDNA, 144 bytes computed elsewhere; an opaque vector matched by a distance the list
    /// declares.
    PhotoDna,
}

impl HashKind {
    /// Every kind.
    pub const ALL: [HashKind; 9] = [
        HashKind::Md5,
        HashKind::Sha1,
        HashKind::Sha256,
        HashKind::Blake3,
        HashKind::Pdq,
        HashKind::PHash,
        HashKind::DHash,
        HashKind::AHash,
        HashKind::PhotoDna,
    ];

    /// The lower-case name used on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            HashKind::Md5 => "md5",
            HashKind::Sha1 => "sha1",
            HashKind::Sha256 => "sha256",
            HashKind::Blake3 => "blake3",
            HashKind::Pdq => "pdq",
            HashKind::PHash => "phash",
            HashKind::DHash => "dhash",
            HashKind::AHash => "ahash",
            HashKind::PhotoDna => "photodna",
        }
    }

    /// The kind's number in index files; never changes once assigned.
    pub fn code(self) -> u8 {
        match self {
            HashKind::Md5 => 1,
            HashKind::Sha1 => 2,
            HashKind::Sha256 => 3,
            HashKind::Blake3 => 4,
            HashKind::Pdq => 5,
            HashKind::PHash => 6,
            HashKind::DHash => 7,
            HashKind::AHash => 8,
            HashKind::PhotoDna => 9,
        }
    }

    /// Whether matching is by equality (cryptographic digests) rather than by distance.
    pub fn is_exact(self) -> bool {
        matches!(self, HashKind::Md5 | HashKind::Sha1 | HashKind::Sha256 | HashKind::Blake3)
    }

    /// The value's length in bytes.
    pub fn value_len(self) -> usize {
        match self {
            HashKind::Md5 => 16,
            HashKind::Sha1 => 20,
            HashKind::Sha256 | HashKind::Blake3 | HashKind::Pdq => 32,
            HashKind::PHash | HashKind::DHash | HashKind::AHash => 8,
            HashKind::PhotoDna => 144,
        }
    }

    /// Parses a value of this kind from text: hex for every kind, and for PhotoDNA also the
    /// base64 form that list exports use (144 bytes is 192 base64 characters, 288 hex digits).
    pub fn parse_value(self, text: &str) -> Result<Vec<u8>, ParseValueError> {
        let text = text.trim();
        let len = self.value_len();
        if text.len() == 2 * len {
            return hex::decode(text).map_err(|_| ParseValueError::NotHex { kind: self });
        }
        if self == HashKind::PhotoDna && text.len() == 192 {
            return base64::engine::general_purpose::STANDARD
                .decode(text)
                .ok()
                .filter(|bytes| bytes.len() == len)
                .ok_or(ParseValueError::NotBase64 { kind: self });
        }
        Err(ParseValueError::Length { kind: self, expected: 2 * len, found: text.len() })
    }
}

impl fmt::Display for HashKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for HashKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for HashKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// A name that is not a hash kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown hash kind {0:?} (expected one of md5, sha1, sha256, blake3, pdq, phash, dhash, ahash, photodna)"
)]
pub struct UnknownHashKind(pub String);

impl FromStr for HashKind {
    type Err = UnknownHashKind;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        HashKind::ALL
            .into_iter()
            .find(|kind| kind.name().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| UnknownHashKind(name.to_string()))
    }
}

/// A value that does not fit its declared kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseValueError {
    /// Wrong number of characters.
    #[error("a {kind} value has {expected} hex digits, not {found} characters")]
    Length {
        /// The declared kind.
        kind: HashKind,
        /// Hex digits expected.
        expected: usize,
        /// Characters found.
        found: usize,
    },
    /// Right length, but not hex.
    #[error("a {kind} value has only hex digits")]
    NotHex {
        /// The declared kind.
        kind: HashKind,
    },
    /// Right length for base64, but not valid base64 of the right size.
    #[error("a {kind} value in base64 is 192 characters of standard base64")]
    NotBase64 {
        /// The declared kind.
        kind: HashKind,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_by_declared_kind_only() {
        let sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(HashKind::Sha256.parse_value(sha256).unwrap().len(), 32);
        assert_eq!(HashKind::Pdq.parse_value(sha256).unwrap().len(), 32, "same text, declared PDQ");
        assert_eq!(
            HashKind::Md5.parse_value(sha256),
            Err(ParseValueError::Length { kind: HashKind::Md5, expected: 32, found: 64 })
        );
        assert_eq!(
            HashKind::Md5.parse_value("zz41d8cd98f00b204e9800998ecf8427"),
            Err(ParseValueError::NotHex { kind: HashKind::Md5 })
        );
        assert_eq!(
            HashKind::AHash.parse_value(" 0123456789ABCDEF ").unwrap(),
            hex::decode("0123456789abcdef").unwrap()
        );
    }

    #[test]
    fn photodna_accepts_hex_and_base64() {
        let bytes: Vec<u8> = (0..144u32).map(|i| (i * 37 % 256) as u8).collect();
        let hex = hex::encode(&bytes);
        assert_eq!(HashKind::PhotoDna.parse_value(&hex).unwrap(), bytes);
        // Encoded independently: Python's base64.b64encode(bytes((i * 37) % 256 for i in range(144))).
        let b64 = encode_base64_for_test(&bytes);
        assert_eq!(b64.len(), 192);
        assert_eq!(HashKind::PhotoDna.parse_value(&b64).unwrap(), bytes);
        let mut bad = b64.clone();
        bad.replace_range(0..1, "*");
        assert_eq!(
            HashKind::PhotoDna.parse_value(&bad),
            Err(ParseValueError::NotBase64 { kind: HashKind::PhotoDna })
        );
    }

    /// A straightforward encoder, written separately from the decoder under test.
    fn encode_base64_for_test(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().fold(0u32, |n, &b| (n << 8) | u32::from(b)) << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
            out.extend(std::iter::repeat_n('=', 3 - chunk.len()));
        }
        out
    }

    #[test]
    fn kinds_parse_by_name() {
        for kind in HashKind::ALL {
            assert_eq!(kind.name().to_uppercase().parse::<HashKind>(), Ok(kind));
        }
        assert!("sha512".parse::<HashKind>().is_err());
    }
}
