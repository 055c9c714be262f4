//! De-identification of protected health information (filled in by issue 6).
