//! The fuzz targets find libtorch (linked by medgen-core, never called here) through an
//! rpath to the torch they were built against, as the `medgen` program does.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
