//! One module per subcommand: its arguments and how it runs.

pub mod hash;
pub mod index;
pub mod list;
pub mod manual;
pub mod scan;
#[cfg(feature = "serve")]
pub mod serve;
#[cfg(feature = "takedown")]
pub mod takedown;
