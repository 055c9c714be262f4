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
    /// CPU threads medgen computes with (default: the number of CPUs). On the CPU, medgen
    /// splits matrix products across its own threads and sets libtorch's process-wide
    /// intra-op thread count to 1: libtorch's idle OpenMP workers otherwise spin against them.
    pub threads: Option<usize>,
    /// A LoRA adapter folder (PEFT's `adapter_config.json` and `adapter_model.safetensors`)
    /// to run with the model (default: none), folded into the adapted layers' weights at load
    /// (PEFT's `merge_and_unload`), so that medgen's CPU kernels run them.
    pub adapter: Option<std::path::PathBuf>,
}

/// A loaded model's device and thread pool, shared by its networks.
#[derive(Clone)]
pub(crate) struct Runtime {
    pub pool: Arc<rayon::ThreadPool>,
    pub device: Device,
}

impl Runtime {
    /// The thread pool and device that `opts` ask for. On the CPU, libtorch's own intra-op
    /// threads are set to 1 (see [`LoadOptions::threads`]).
    pub(crate) fn new(opts: &LoadOptions) -> Result<Self> {
        let threads = match opts.threads {
            Some(n) if n == 0 || n > 1024 => {
                return Err(MedgenError::invalid("threads", format!("{n} is outside 1..=1024")))
            }
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("medgen-{i}"))
            // OpenMP's thread count is per thread: libtorch calls made on a worker would
            // otherwise start OpenMP teams of their own, whose spinning workers compete with
            // the pool's (a quarter of a T5 encoder's time went to them).
            .start_handler(|_| tch::set_num_threads(1))
            .build()
            .map_err(|e| MedgenError::invalid("threads", e.to_string()))?;
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
        if device == Device::Cpu {
            tch::set_num_threads(1);
        }
        Ok(Runtime { pool: Arc::new(pool), device })
    }

    /// Runs `f` on the pool, without autograd.
    pub fn run<R: Send>(&self, f: impl FnOnce() -> Result<R> + Send) -> Result<R> {
        self.pool.install(|| tch::no_grad(f))
    }
}
