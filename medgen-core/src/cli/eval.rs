//! `medgen eval` (scaffold: replaced by issue 6's work).

use medgen::{MedgenError, Result};

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> Result<()> {
    Err(MedgenError::Unsupported("medgen eval is not built yet".into()))
}
