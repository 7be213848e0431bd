//! STUB — replaced by the decoding helper.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    pub max_width: u32,
    pub max_height: u32,
    pub max_pixels: u64,
    pub max_alloc_bytes: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits { max_width: 32768, max_height: 32768, max_pixels: 100_000_000, max_alloc_bytes: 512 << 20 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not a recognised image format")]
    UnknownFormat,
}

/// A decoded image as 8-bit RGB, row-major, 3 bytes per pixel.
pub struct RgbImage {
    pub width: u32,
    pub height: u32,
    pub format: &'static str,
    pub pixels: Vec<u8>,
}

pub fn decode_rgb(_bytes: &[u8], _limits: &DecodeLimits) -> Result<RgbImage, DecodeError> {
    todo!()
}
