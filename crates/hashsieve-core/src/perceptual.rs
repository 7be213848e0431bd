//! STUB — replaced by the decoding helper.
use crate::decode::RgbImage;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageHashKind {
    PHash,
    DHash,
    AHash,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageHash64(pub u64);

pub fn image_hash(_image: &RgbImage, _kind: ImageHashKind) -> ImageHash64 {
    todo!()
}
