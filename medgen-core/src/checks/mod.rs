//! Safety checks of a generated draft against its source note (filled in by issue 6).
