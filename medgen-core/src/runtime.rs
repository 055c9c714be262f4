//! Where and how a model computes: its device, and the thread pool medgen's kernels and
//! libtorch calls run on.

use std::str::FromStr;
use std::sync::Arc;

use tch::{Device, Kind};

use crate::error::{MedgenError, Result};

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    #[default]
    Cpu,
    /// A CUDA device by index.
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = MedgenError;
    /// "cpu", "cuda" or "cuda:N".
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceSpec::Cuda)
                .ok_or_else(|| MedgenError::invalid("device", format!("`{s}` is not cpu, cuda or cuda:N"))),
        }
    }
}

/// The floating-point type of weights and activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    #[default]
    F32,
    BF16,
    F16,
}

impl FromStr for DType {
    type Err = MedgenError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" | "float32" => Ok(DType::F32),
            "bf16" | "bfloat16" => Ok(DType::BF16),
            "f16" | "float16" => Ok(DType::F16),
            _ => Err(MedgenError::invalid("dtype", format!("`{s}` is not f32, bf16 or f16"))),
        }
    }
}

/// GGUF blocks that linear layers' weights are quantized to at load
/// ([`LoadOptions::quantize`]), with ggml's reference rounding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Quantization {
    /// Blocks of 32: an f16 scale (the largest magnitude / 127) and 32 int8.
    Q8_0,
    /// Blocks of 32: an f16 scale (the value of largest magnitude / -8) and 32 4-bit values.
    Q4_0,
}

impl FromStr for Quantization {
    type Err = MedgenError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "q8_0" => Ok(Quantization::Q8_0),
            "q4_0" => Ok(Quantization::Q4_0),
            _ => Err(MedgenError::invalid("quantize", format!("`{s}` is not q8_0 or q4_0"))),
        }
    }
}

impl Quantization {
    pub(crate) fn ggml(self) -> crate::formats::quants::GgmlType {
        match self {
            Quantization::Q8_0 => crate::formats::quants::GgmlType::Q8_0,
            Quantization::Q4_0 => crate::formats::quants::GgmlType::Q4_0,
        }
    }
}

impl DType {
    pub(crate) fn kind(self) -> Kind {
        match self {
            DType::F32 => Kind::Float,
            DType::BF16 => Kind::BFloat16,
            DType::F16 => Kind::Half,
        }
    }
}

/// How to load a model.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// (default: cpu)
    pub device: DeviceSpec,
    /// (default: f32)
    pub dtype: DType,
    /// CPU threads medgen computes with, 1 to 1024 (default: the number of CPUs). medgen
    /// splits matrix products across a pool of its own threads, in each of which libtorch's
    /// OpenMP team is one thread (libtorch's idle OpenMP workers otherwise spin against
    /// them). Loading a model changes no setting of the calling thread or of the process:
    /// the host's `torch.get_num_threads()` stays what it was.
    pub threads: Option<usize>,
    /// A LoRA adapter folder (PEFT's `adapter_config.json` and `adapter_model.safetensors`)
    /// to run with the model (default: none), folded into the adapted layers' weights at load
    /// (PEFT's `merge_and_unload`), so that medgen's CPU kernels run them.
    pub adapter: Option<std::path::PathBuf>,
    /// Decode steps on the CPU multiply weights kept in GGUF blocks (Q8_0, Q4_0, Q4_1, Q5_0,
    /// Q5_1, Q2_K to Q6_K) by
    /// the activations quantized to 8 bits per block of 32, in integers, as llama.cpp does
    /// (default: false: in f32, on the file's exact values). Faster; the logits move by
    /// about what llama.cpp's move (README, "Performance"). No effect on dense weights,
    /// prefill or GPUs.
    pub int8_activations: bool,
    /// Quantize the linear layers' weights (and the output head) to GGUF blocks at load, for
    /// the CPU decode kernels (default: none). For HF models, whose weights are dense, and for
    /// the GGUF block types the kernels do not read (IQ types, F16: dequantized, then
    /// quantized again); weights in blocks the kernels read keep theirs. Layers whose
    /// input width is not a multiple of 32 stay dense. The prompt's pass keeps the dense
    /// weights (libtorch's GEMM). No effect on GPUs or training.
    pub quantize: Option<Quantization>,
}

/// A loaded model's device and thread pool, shared by its networks.
#[derive(Clone)]
pub(crate) struct Runtime {
    pub pool: Arc<rayon::ThreadPool>,
    pub device: Device,
    /// [`LoadOptions::int8_activations`].
    pub int8: bool,
    /// [`LoadOptions::quantize`].
    pub quantize: Option<Quantization>,
    /// The process that made the pool: a child of `fork()` has none of its threads.
    pid: u32,
}

impl Runtime {
    /// The thread pool and device that `opts` ask for (see [`LoadOptions::threads`]).
    pub(crate) fn new(opts: &LoadOptions) -> Result<Self> {
        let threads = match opts.threads {
            Some(n) if n == 0 || n > 1024 => {
                return Err(MedgenError::invalid("threads", format!("{n} is outside 1..=1024")))
            }
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        // The device first: an error here starts no thread.
        let device = match opts.device {
            DeviceSpec::Cpu => Device::Cpu,
            DeviceSpec::Cuda(i) => {
                let n = tch::Cuda::device_count() as usize;
                if !tch::Cuda::is_available() || i >= n {
                    return Err(MedgenError::Device(format!(
                        "CUDA device {i} requested, but libtorch sees {n} CUDA device(s)"
                    )));
                }
                Device::Cuda(i)
            }
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("medgen-{i}"))
            // OpenMP's thread count is per thread: libtorch calls made on a worker would
            // otherwise start OpenMP teams of their own, whose spinning workers compete with
            // the pool's (a quarter of a T5 encoder's time went to them).
            .start_handler(|_| omp_threads_of_this_thread(1))
            .build()
            .map_err(|e| MedgenError::invalid("threads", e.to_string()))?;
        // Every thread past its start (a libtorch call) before any error can end the process:
        // a thread still inside libtorch while the process exits can abort it ("Rust cannot
        // catch foreign exceptions", seen once in the test suite under load).
        pool.broadcast(|_| ());
        Ok(Runtime { pool: Arc::new(pool), device, int8: opts.int8_activations, quantize: opts.quantize, pid: std::process::id() })
    }

    /// Runs `f` on the pool, without autograd. In a child of `fork()` the pool's threads do
    /// not exist (fork copies only the calling thread), and waiting for them would hang:
    /// that is an `Unsupported` error saying to load the model in the child.
    pub fn run<R: Send>(&self, f: impl FnOnce() -> Result<R> + Send) -> Result<R> {
        if std::process::id() != self.pid {
            return Err(MedgenError::Unsupported(format!(
                "this model was loaded in process {} and this is process {}, a child of fork(): \
                 a model's threads do not survive fork, so load the model again in the child",
                self.pid,
                std::process::id()
            )));
        }
        self.pool.install(|| tch::no_grad(f))
    }
}

/// Sets the OpenMP team size and MKL's thread count of the calling thread only (libgomp
/// and MKL keep them per thread). libtorch's `set_num_threads` would also record the count
/// process-wide, for every thread libtorch starts later; medgen calls it only where the
/// libraries cannot be found.
pub(crate) fn omp_threads_of_this_thread(n: i32) {
    // libtorch sets a thread's counts from its process-wide one on the thread's first call
    // into it: make that call first, so that it does not undo these.
    tch::get_num_threads();
    let omp = call_loaded(c"libgomp.so.1", c"omp_set_num_threads", n);
    // MKL's C entry point (mkl.h's `mkl_set_num_threads_local` is a macro for it; the
    // lowercase symbol is the Fortran one, which takes a pointer).
    let mkl = call_loaded(c"libtorch_cpu.so", c"MKL_Set_Num_Threads_Local", n);
    if !(omp && mkl) {
        tch::set_num_threads(n);
    }
}

/// The calling thread's OpenMP and MKL thread counts, set for a while (a training run on the
/// caller's thread) and put back when dropped.
pub(crate) struct ThreadsHere(i32);

impl ThreadsHere {
    pub(crate) fn set(n: i32) -> Self {
        let before = tch::get_num_threads();
        omp_threads_of_this_thread(n);
        ThreadsHere(before)
    }
}

impl Drop for ThreadsHere {
    fn drop(&mut self) {
        omp_threads_of_this_thread(self.0);
    }
}

/// Calls `void symbol(int)` of `library` if the process has loaded it; false if not.
fn call_loaded(library: &std::ffi::CStr, symbol: &std::ffi::CStr, n: i32) -> bool {
    #[cfg(target_os = "linux")]
    // SAFETY: dlopen with RTLD_NOLOAD only finds a library the process has loaded (libtorch
    // and its libgomp); both functions take one int in every version.
    unsafe {
        let lib = libc::dlopen(library.as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD);
        if lib.is_null() {
            return false;
        }
        let f = libc::dlsym(lib, symbol.as_ptr());
        if !f.is_null() {
            let f: extern "C" fn(std::ffi::c_int) -> std::ffi::c_int = std::mem::transmute(f);
            f(n);
        }
        libc::dlclose(lib);
        return !f.is_null();
    }
    #[allow(unreachable_code)]
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runtime_leaves_the_callers_thread_count_and_runs_one_openmp_thread_per_worker() {
        tch::set_num_threads(3);
        let rt = Runtime::new(&LoadOptions { threads: Some(2), ..Default::default() }).unwrap();
        assert_eq!(rt.run(|| Ok(tch::get_num_threads())).unwrap(), 1);
        // MKL's own count, which libtorch's matrix products follow, is 1 there too.
        let mkl = || unsafe {
            let lib = libc::dlopen(c"libtorch_cpu.so".as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD);
            let f: extern "C" fn() -> std::ffi::c_int = std::mem::transmute(libc::dlsym(lib, c"MKL_Get_Max_Threads".as_ptr()));
            f()
        };
        assert_eq!(rt.run(|| Ok(mkl())).unwrap(), 1);
        assert_eq!(mkl(), 3);
        assert_eq!(tch::get_num_threads(), 3);
        // A thread libtorch or the host starts later gets the process's count, not the workers'.
        assert_eq!(std::thread::spawn(tch::get_num_threads).join().unwrap(), 3);
        // A training run sets its count on the caller's thread for its length only.
        let during = ThreadsHere::set(2);
        assert_eq!((tch::get_num_threads(), mkl()), (2, 2));
        drop(during);
        assert_eq!((tch::get_num_threads(), mkl()), (3, 3));
    }
}
