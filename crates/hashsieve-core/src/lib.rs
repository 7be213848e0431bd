//! hashsieve-core: hashing and matching for known-CSAM detection.
//!
//! (crate documentation is written at integration time)

pub mod decode;
pub mod digest;
pub mod pdq;
pub mod perceptual;
pub mod signals;
