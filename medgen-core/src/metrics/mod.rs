//! ROUGE and BLEU (filled in by issue 6).
