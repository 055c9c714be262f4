//! The extension finds libtorch next to it in site-packages (`medgen/` beside `torch/lib`),
//! wherever the wheel is installed; `medgen/__init__.py` also imports torch first. libtorch_cuda
//! stays linked so that CUDA works where a GPU exists.
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN/../torch/lib");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else { return };
    if Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}
