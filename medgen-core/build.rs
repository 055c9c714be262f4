//! Lets medgen's binaries and tests find libtorch without LD_LIBRARY_PATH (an rpath to the
//! torch that tch was built against), keeps libtorch_cuda linked so CUDA works where a GPU
//! exists, and records that Python environment's site-packages for the default model.
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else { return };
    let lib = Path::new(&lib);
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
    // .../site-packages/torch/lib → .../site-packages
    if let Some(site) = lib.parent().and_then(Path::parent) {
        println!("cargo:rustc-env=MEDGEN_SITE_PACKAGES={}", site.display());
    }
}
