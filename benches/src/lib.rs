//! What the comparison programs in `src/bin` share.

pub mod http;
