//! Everything hashsieve can compute about one input, in one value.
//!
//! A hash list may name content by a cryptographic digest (MD5, SHA-1, …) or by a perceptual
//! hash (PDQ, pHash, …), so a check needs both from the same bytes. [`Signals`] gathers them:
//! the bytes are read once for every requested digest, decoded once (within
//! [`DecodeLimits`]) for every requested perceptual hash, and each
//! signal that cannot be computed is recorded as a [`SignalError`] instead of failing the whole
//! input — a file that is not an image still gets its digests, and a digest match still counts.
//!
//! [`signals_for_paths`] computes many inputs in parallel on rayon's pool.
//!
//! ```
//! use hashsieve_core::digest::{DigestKind, DigestSet};
//! use hashsieve_core::signals::{SignalOptions, Signals};
//!
//! let options = SignalOptions::digests_only(DigestSet::NONE.with(DigestKind::Md5));
//! let signals = Signals::from_bytes(b"abc", &options);
//! assert_eq!(signals.size, 3);
//! assert_eq!(hex::encode(signals.digests.md5.unwrap()), "900150983cd24fb0d6963f7d28e17f72");
//! assert!(signals.pdq.is_none() && signals.errors.is_empty());
//! ```

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::decode::{self, DecodeError, DecodeLimits};
use crate::digest::{self, DigestSet, Digests};
use crate::keypoints::Keypoints;
use crate::pdq::{self, Dihedral, PdqHash};
use crate::perceptual::{self, ImageHash64, ImageHashKind};

/// Inputs larger than this are digested but not decoded, by default (see
/// [`SignalOptions::max_image_bytes`]).
pub const DEFAULT_MAX_IMAGE_BYTES: u64 = 128 << 20;

/// Which PDQ output to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PdqMode {
    /// No PDQ hash.
    Off,
    /// The PDQ hash and its quality.
    #[default]
    Hash,
    /// The PDQ hash, its quality and the seven other dihedral variants (rotations and mirror
    /// images), which cost one extra pass over the 16×16 DCT coefficients.
    Dihedral,
}

/// What to compute for each input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalOptions {
    /// Cryptographic digests, computed from a single pass over the bytes.
    pub digests: DigestSet,
    /// Whether to compute PDQ, and with or without its dihedral variants.
    pub pdq: PdqMode,
    /// 64-bit perceptual hashes of the img_hash family, in the order they are reported.
    pub image_hashes: Vec<ImageHashKind>,
    /// Whether to compute [`Keypoints`] (with mirrored descriptors), which find cropped copies
    /// of a picture; a hotline's verdict memory compares them, hash lists do not carry them.
    pub keypoints: bool,
    /// Limits on the decoded image (dimensions, pixels, allocation).
    pub limits: DecodeLimits,
    /// Inputs larger than this many bytes are not read into memory for decoding: they get
    /// their digests (streamed) and a [`SignalError::TooLargeToDecode`].
    pub max_image_bytes: u64,
}

impl Default for SignalOptions {
    /// All four digests and the PDQ hash: what the hash lists in circulation are made of.
    fn default() -> Self {
        SignalOptions {
            digests: DigestSet::ALL,
            pdq: PdqMode::Hash,
            image_hashes: Vec::new(),
            keypoints: false,
            limits: DecodeLimits::default(),
            max_image_bytes: DEFAULT_MAX_IMAGE_BYTES,
        }
    }
}

impl SignalOptions {
    /// Only the given digests: nothing is decoded.
    pub fn digests_only(digests: DigestSet) -> Self {
        SignalOptions { digests, pdq: PdqMode::Off, ..SignalOptions::default() }
    }

    /// Whether any requested signal needs the decoded image.
    pub fn needs_image(&self) -> bool {
        self.pdq != PdqMode::Off || !self.image_hashes.is_empty() || self.keypoints
    }
}

/// The decoded image's format and dimensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// The format detected from the content, e.g. `"png"`.
    pub format: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// The PDQ hash of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PdqSignal {
    /// The hash of the image as stored (no EXIF orientation applied).
    pub hash: PdqHash,
    /// The reference's integer quality score, 0..=100; below 50 the hash is weak.
    pub quality: u8,
    /// All eight dihedral variants in the reference's order (the first equals `hash`), when
    /// [`PdqMode::Dihedral`] was requested.
    pub dihedral: Option<[PdqHash; 8]>,
}

/// A signal that could not be computed for an input whose bytes were read.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    /// The bytes are not an image hashsieve can decode, or the image breaks a limit.
    #[error("image not decoded: {0}")]
    Decode(#[from] DecodeError),
    /// The input is too large to be read into memory for decoding.
    #[error("image not decoded: the input is {size} bytes, over the {limit}-byte limit")]
    TooLargeToDecode {
        /// The input's size in bytes, as far as it was read.
        size: u64,
        /// [`SignalOptions::max_image_bytes`].
        limit: u64,
    },
}

/// An input that could not be read at all.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct ReadError {
    /// The file that could not be read.
    pub path: PathBuf,
    /// What went wrong.
    #[source]
    pub source: io::Error,
}

/// Everything computed for one input; the default is an empty input with nothing computed, a
/// starting point for hashes computed elsewhere.
#[derive(Debug, Default)]
pub struct Signals {
    /// The input's length in bytes.
    pub size: u64,
    /// The requested digests.
    pub digests: Digests,
    /// Format and dimensions, when the input was decoded as an image.
    pub image: Option<ImageInfo>,
    /// The PDQ hash, when requested and the input decoded.
    pub pdq: Option<PdqSignal>,
    /// The requested img_hash-family hashes that could be computed, in the requested order.
    pub image_hashes: Vec<(ImageHashKind, ImageHash64)>,
    /// The keypoints, when requested and the input decoded (empty for images too small or
    /// too flat to have any).
    pub keypoints: Option<Keypoints>,
    /// Signals that were requested but could not be computed.
    pub errors: Vec<SignalError>,
}

impl Signals {
    /// Computes the requested signals of an in-memory input.
    pub fn from_bytes(bytes: &[u8], options: &SignalOptions) -> Signals {
        let mut signals = Signals {
            size: bytes.len() as u64,
            digests: digest::digest_bytes(bytes, options.digests),
            image: None,
            pdq: None,
            image_hashes: Vec::new(),
            keypoints: None,
            errors: Vec::new(),
        };
        if options.needs_image() {
            if signals.size > options.max_image_bytes {
                signals.errors.push(SignalError::TooLargeToDecode {
                    size: signals.size,
                    limit: options.max_image_bytes,
                });
            } else {
                match decode::decode_rgb(bytes, &options.limits) {
                    Ok(image) => signals.add_image_signals(&image, options),
                    Err(err) => signals.errors.push(err.into()),
                }
            }
        }
        signals
    }

    /// The memory [`Signals::from_bytes`] needs for `bytes` beyond the bytes themselves, at its
    /// peak: what decoding takes (see [`decode::decode_memory`]), or 0 when nothing is decoded.
    /// The perceptual hashes work on the decoded pixels in place or on small scaled copies.
    pub fn decode_memory(bytes: &[u8], options: &SignalOptions) -> u64 {
        if !options.needs_image() || bytes.len() as u64 > options.max_image_bytes {
            return 0;
        }
        decode::decode_memory(bytes, &options.limits).unwrap_or(0)
    }

    /// Computes the requested signals of a stream. Only what decoding needs is held in memory:
    /// at most [`SignalOptions::max_image_bytes`] + 1 bytes, and nothing at all when no
    /// perceptual hash is requested.
    pub fn from_reader<R: Read>(mut reader: R, options: &SignalOptions) -> io::Result<Signals> {
        if !options.needs_image() {
            let (digests, size) = digest::digest_reader(reader, options.digests)?;
            return Ok(Signals::digests_only(digests, size));
        }
        let mut head = Vec::new();
        (&mut reader).take(options.max_image_bytes.saturating_add(1)).read_to_end(&mut head)?;
        if head.len() as u64 <= options.max_image_bytes {
            return Ok(Signals::from_bytes(&head, options));
        }
        // Too large to decode: finish the digests over what was read and the rest of the stream.
        let (digests, size) = digest::digest_reader(io::Cursor::new(head).chain(reader), options.digests)?;
        let mut signals = Signals::digests_only(digests, size);
        signals.errors.push(SignalError::TooLargeToDecode { size, limit: options.max_image_bytes });
        Ok(signals)
    }

    /// Computes the requested signals of a file.
    pub fn from_path(path: &Path, options: &SignalOptions) -> Result<Signals, ReadError> {
        let read_error = |source| ReadError { path: path.to_path_buf(), source };
        let file = File::open(path).map_err(read_error)?;
        Signals::from_reader(file, options).map_err(read_error)
    }

    fn digests_only(digests: Digests, size: u64) -> Signals {
        Signals { size, digests, ..Signals::default() }
    }

    fn add_image_signals(&mut self, image: &decode::RgbImage, options: &SignalOptions) {
        self.image =
            Some(ImageInfo { format: image.format.to_string(), width: image.width, height: image.height });
        let (width, height) = (image.width as usize, image.height as usize);
        self.pdq = match options.pdq {
            PdqMode::Off => None,
            PdqMode::Hash => {
                let out = pdq::hash_rgb(&image.pixels, width, height);
                Some(PdqSignal { hash: out.hash, quality: out.quality, dihedral: None })
            }
            PdqMode::Dihedral => {
                let out = pdq::dihedral_rgb(&image.pixels, width, height);
                Some(PdqSignal { hash: out.hashes[0], quality: out.quality, dihedral: Some(out.hashes) })
            }
        };
        self.image_hashes =
            options.image_hashes.iter().map(|&kind| (kind, perceptual::image_hash(image, kind))).collect();
        if options.keypoints {
            self.keypoints = Some(Keypoints::from_rgb(&image.pixels, width, height));
        }
    }
}

/// The signals of content that arrives in pieces — a body read from a socket — computed as it
/// arrives. What decoding needs is held, at most [`SignalOptions::max_image_bytes`]; past that
/// the held bytes are handed to the digests and later pieces go straight through them, so a
/// large body costs no more memory than a small one. The result equals
/// [`Signals::from_bytes`] over the whole content.
pub struct SignalStream {
    options: SignalOptions,
    size: u64,
    state: StreamState,
}

enum StreamState {
    /// Held for decoding; digested in one pass at the end.
    Held(Vec<u8>),
    /// Too large to decode, or nothing to decode: digests only.
    Digesting(Box<digest::Digester>),
}

impl SignalStream {
    /// Starts the signals `options` asks for.
    pub fn new(options: SignalOptions) -> SignalStream {
        let state = if options.needs_image() {
            StreamState::Held(Vec::new())
        } else {
            StreamState::Digesting(Box::new(digest::Digester::new(options.digests)))
        };
        SignalStream { options, size: 0, state }
    }

    /// Adds the next piece of the content.
    pub fn update(&mut self, bytes: &[u8]) {
        self.size += bytes.len() as u64;
        match &mut self.state {
            StreamState::Held(held) if self.size <= self.options.max_image_bytes => {
                held.extend_from_slice(bytes)
            }
            StreamState::Held(held) => {
                let mut digester = digest::Digester::new(self.options.digests);
                digester.update(held);
                digester.update(bytes);
                self.state = StreamState::Digesting(Box::new(digester));
            }
            StreamState::Digesting(digester) => digester.update(bytes),
        }
    }

    /// What [`SignalStream::finish`] will need for decoding, as [`Signals::decode_memory`]
    /// says for the content added so far.
    pub fn decode_memory(&self) -> u64 {
        match &self.state {
            StreamState::Held(held) => Signals::decode_memory(held, &self.options),
            StreamState::Digesting(_) => 0,
        }
    }

    /// The content's length so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The signals of everything added. Decoding and perceptual hashing happen here: call it
    /// where CPU-bound work belongs.
    pub fn finish(self) -> Signals {
        match self.state {
            StreamState::Held(held) => Signals::from_bytes(&held, &self.options),
            StreamState::Digesting(digester) => {
                let mut signals = Signals::digests_only(digester.finish(), self.size);
                if self.options.needs_image() {
                    signals.errors.push(SignalError::TooLargeToDecode {
                        size: self.size,
                        limit: self.options.max_image_bytes,
                    });
                }
                signals
            }
        }
    }
}

/// Computes the signals of many files in parallel on rayon's thread pool. The iterator is
/// indexed, so collecting it keeps the order of `paths`.
pub fn signals_for_paths<'a>(
    paths: &'a [PathBuf],
    options: &'a SignalOptions,
) -> impl IndexedParallelIterator<Item = Result<Signals, ReadError>> + 'a {
    paths.par_iter().map(move |path| Signals::from_path(path, options))
}

/// Serialises as one flat JSON object: `size`, a hex field per digest (`md5`, …), `image`
/// (`format`, `width`, `height`), `pdq` (`hash`, `quality`, and `dihedral` keyed by
/// [`Dihedral::name`]), a hex field per img_hash kind (`phash`, …), `keypoints` (how many;
/// the descriptors have a byte form of their own) and `errors` (messages).
/// Fields that were not requested or could not be computed are left out.
impl Serialize for Signals {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("size", &self.size)?;
        for (kind, value) in self.digests.iter() {
            map.serialize_entry(kind.name(), &hex::encode(value))?;
        }
        if let Some(image) = &self.image {
            map.serialize_entry("image", &ImageJson(image))?;
        }
        if let Some(pdq) = &self.pdq {
            map.serialize_entry("pdq", &PdqJson(pdq))?;
        }
        for (kind, hash) in &self.image_hashes {
            map.serialize_entry(kind.name(), &hash.to_string())?;
        }
        if let Some(keypoints) = &self.keypoints {
            map.serialize_entry("keypoints", &keypoints.len())?;
        }
        if !self.errors.is_empty() {
            let messages: Vec<String> = self.errors.iter().map(ToString::to_string).collect();
            map.serialize_entry("errors", &messages)?;
        }
        map.end()
    }
}

struct ImageJson<'a>(&'a ImageInfo);

impl Serialize for ImageJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("format", &self.0.format)?;
        map.serialize_entry("width", &self.0.width)?;
        map.serialize_entry("height", &self.0.height)?;
        map.end()
    }
}

struct PdqJson<'a>(&'a PdqSignal);

impl Serialize for PdqJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("hash", &self.0.hash.to_hex())?;
        map.serialize_entry("quality", &self.0.quality)?;
        if let Some(hashes) = &self.0.dihedral {
            map.serialize_entry("dihedral", &DihedralJson(hashes))?;
        }
        map.end()
    }
}

struct DihedralJson<'a>(&'a [PdqHash; 8]);

impl Serialize for DihedralJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(Dihedral::ALL.iter().map(|d| d.name()).zip(self.0.iter().map(PdqHash::to_hex)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../samples/images/q1050.jpg")).unwrap()
    }

    fn streamed(bytes: &[u8], options: &SignalOptions, piece: usize) -> Signals {
        let mut stream = SignalStream::new(options.clone());
        for chunk in bytes.chunks(piece) {
            stream.update(chunk);
        }
        assert_eq!(stream.size(), bytes.len() as u64);
        stream.finish()
    }

    #[test]
    fn a_streamed_image_has_the_signals_of_the_whole() {
        let bytes = sample();
        let options = SignalOptions { pdq: PdqMode::Dihedral, ..SignalOptions::default() };
        let whole = Signals::from_bytes(&bytes, &options);
        assert!(whole.pdq.is_some());
        for piece in [1, 7, 4096, bytes.len()] {
            let signals = streamed(&bytes, &options, piece);
            assert_eq!(signals.digests, whole.digests);
            assert_eq!(signals.pdq, whole.pdq);
            assert_eq!(signals.image, whole.image);
        }
    }

    #[test]
    fn a_stream_past_the_decode_limit_keeps_its_digests_only() {
        let bytes = sample();
        let options = SignalOptions { max_image_bytes: 1000, ..SignalOptions::default() };
        let signals = streamed(&bytes, &options, 333);
        assert_eq!(signals.digests, digest::digest_bytes(&bytes, DigestSet::ALL));
        assert!(signals.pdq.is_none());
        let too_large = SignalError::TooLargeToDecode { size: bytes.len() as u64, limit: 1000 };
        assert_eq!(format!("{:?}", signals.errors), format!("{:?}", [too_large]));
        // Exactly at the limit is still decoded.
        let at_limit = SignalOptions { max_image_bytes: bytes.len() as u64, ..options };
        assert!(streamed(&bytes, &at_limit, 333).pdq.is_some());
    }

    #[test]
    fn a_stream_without_image_signals_is_only_digested() {
        let options = SignalOptions::digests_only(DigestSet::ALL);
        let signals = streamed(b"not an image at all", &options, 3);
        assert_eq!(signals.digests, digest::digest_bytes(b"not an image at all", DigestSet::ALL));
        assert!(signals.errors.is_empty() && signals.image.is_none());
    }
}
