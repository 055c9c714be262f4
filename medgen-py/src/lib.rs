//! Python bindings for medgen: see the Python issue. Only compiles for now.
pub use medgen::VERSION;
