//! include/medgen.h must be what cbindgen makes from this crate today.
//! `MEDGEN_UPDATE_HEADER=1 cargo test -p medgen-c --test header` (or `make header`) rewrites it.

use std::path::Path;

#[test]
fn committed_header_matches_cbindgen_output() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen runs")
        .write(&mut generated);
    let header = crate_dir.join("../include/medgen.h");
    if std::env::var_os("MEDGEN_UPDATE_HEADER").is_some() {
        std::fs::write(&header, &generated).expect("write include/medgen.h");
    }
    let committed = std::fs::read(&header).unwrap_or_default();
    assert!(
        committed == generated,
        "include/medgen.h is out of date: run `make header` and commit it"
    );
}
