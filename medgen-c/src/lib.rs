//! C ABI for medgen: see the C ABI issue. Only compiles for now.
pub use medgen::VERSION;
