//! Clinical task templates (filled in by issue 6).
