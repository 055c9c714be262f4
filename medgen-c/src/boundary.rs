//! What every exported function shares: the status codes, the per-thread last error, the
//! panic guard and the checked reading of C arguments.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use engine::MedgenError;

/// The result of every function that can fail. The values are stable: new ones are only
/// ever added at the end.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum medgen_status {
    /// Success.
    MEDGEN_OK = 0,
    /// A pointer argument that must not be NULL was NULL.
    MEDGEN_ERR_NULL_ARGUMENT = 1,
    /// A string argument is not valid UTF-8.
    MEDGEN_ERR_INVALID_UTF8 = 2,
    /// An argument or parameter is out of range or malformed.
    MEDGEN_ERR_INVALID_ARGUMENT = 3,
    /// A file could not be opened or read.
    MEDGEN_ERR_IO = 4,
    /// A model file or folder is malformed.
    MEDGEN_ERR_MODEL_LOAD = 5,
    /// A well-formed model uses something medgen does not implement.
    MEDGEN_ERR_UNSUPPORTED = 6,
    /// The prompt, or the prompt plus the tokens asked for, exceeds the model's context.
    MEDGEN_ERR_CONTEXT_LENGTH = 7,
    /// The requested device is not available.
    MEDGEN_ERR_DEVICE = 8,
    /// The streaming callback returned non-zero; nothing is written to `out`.
    MEDGEN_ERR_CANCELLED = 9,
    /// An output buffer is too small; the message gives the size needed.
    MEDGEN_ERR_BUFFER_TOO_SMALL = 10,
    /// The tokenizer or the chat template failed.
    MEDGEN_ERR_TOKENIZER = 11,
    /// libtorch reported an error.
    MEDGEN_ERR_TORCH = 12,
    /// A bug in medgen (a caught panic); the message says where.
    MEDGEN_ERR_INTERNAL = 13,
    /// A review log fails its hash chain: a line was changed, removed, inserted or moved.
    MEDGEN_ERR_AUDIT_TAMPERED = 14,
}

use medgen_status::*;

/// A failure on its way to C: a status and its message.
pub(crate) struct Failure(pub medgen_status, pub String);

pub(crate) type FfiResult<T> = Result<T, Failure>;

impl From<MedgenError> for Failure {
    fn from(e: MedgenError) -> Self {
        let status = match &e {
            MedgenError::Io { .. } => MEDGEN_ERR_IO,
            MedgenError::ModelFormat(_) => MEDGEN_ERR_MODEL_LOAD,
            MedgenError::Unsupported(_) => MEDGEN_ERR_UNSUPPORTED,
            MedgenError::InvalidArgument { .. } => MEDGEN_ERR_INVALID_ARGUMENT,
            MedgenError::ContextLength { .. } => MEDGEN_ERR_CONTEXT_LENGTH,
            MedgenError::Device(_) => MEDGEN_ERR_DEVICE,
            MedgenError::Tokenizer(_) | MedgenError::Template(_) => MEDGEN_ERR_TOKENIZER,
            MedgenError::Torch(_) => MEDGEN_ERR_TORCH,
            MedgenError::Internal(_) => MEDGEN_ERR_INTERNAL,
            MedgenError::AuditTampered { .. } => MEDGEN_ERR_AUDIT_TAMPERED,
            _ => MEDGEN_ERR_INTERNAL,
        };
        Failure(status, e.to_string())
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    // A message never holds NUL bytes in practice; if one does, it is cut there.
    let bytes: Vec<u8> = message.bytes().take_while(|&b| b != 0).collect();
    let message = CString::new(bytes).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = message);
}

/// Runs the body of an exported function: a panic becomes `MEDGEN_ERR_INTERNAL`, a failure
/// is recorded as this thread's last error.
pub(crate) fn ffi_boundary(body: impl FnOnce() -> FfiResult<()>) -> medgen_status {
    let failure = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return MEDGEN_OK,
        Ok(Err(failure)) => failure,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Failure(MEDGEN_ERR_INTERNAL, format!("internal error (a bug in medgen): {what}"))
        }
    };
    set_last_error(&failure.1);
    failure.0
}

/// Like [`ffi_boundary`] for functions that cannot fail but must not unwind: a panic gives
/// `fallback`.
pub(crate) fn guard<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

pub(crate) fn null(name: &str) -> Failure {
    Failure(MEDGEN_ERR_NULL_ARGUMENT, format!("`{name}` is NULL"))
}

/// A reference from a pointer that must not be NULL.
///
/// # Safety
/// `p` is NULL or points to a live, properly aligned `T`.
pub(crate) unsafe fn arg<'a, T>(p: *const T, name: &str) -> FfiResult<&'a T> {
    unsafe { p.as_ref() }.ok_or_else(|| null(name))
}

/// A parameter struct that can grow: its first field is `size_t struct_size`, the struct's
/// size as the caller's header declared it, and fields are only ever added at the end.
///
/// # Safety
/// `Self` is `#[repr(C)]`, starts with a `usize` `struct_size`, and every field of it takes
/// any bit pattern a C caller can store in its C type (no Rust enums); `default()` sets
/// `struct_size` to `size_of::<Self>()`.
pub(crate) unsafe trait Params: Copy + Default {
    /// The size of the struct's first version: a smaller `struct_size` was never valid.
    const MIN_SIZE: usize;
    /// The offsets and names of its `bool` fields: a byte other than 0 or 1 there (from a
    /// memcpy, a union, another language's binding) is refused before the struct is read,
    /// since a Rust `bool` holding it is undefined behaviour.
    const BOOLS: &'static [(usize, &'static str)] = &[];
}

/// The parameters the caller passed, read as far as its header declared them; fields added
/// since keep their defaults. A `struct_size` below the first version's (a struct not
/// started from its `*_default()`, such as one zero-filled), one that ends inside a field, or
/// above this library's with
/// any of the unknown bytes set (a program built against a newer medgen.h using a newer
/// field), is `MEDGEN_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `p` is NULL or points to `struct_size` readable bytes that start with `struct_size`.
pub(crate) unsafe fn read_params<T: Params>(p: *const T, name: &str) -> FfiResult<T> {
    if p.is_null() {
        return Err(null(name));
    }
    let size = unsafe { p.cast::<usize>().read_unaligned() };
    let known = std::mem::size_of::<T>();
    let type_name = std::any::type_name::<T>().rsplit("::").next().unwrap_or("params");
    if size < T::MIN_SIZE {
        return Err(Failure(
            MEDGEN_ERR_INVALID_ARGUMENT,
            format!("`{name}`: struct_size {size} is below {} ({type_name}): start from {type_name}_default()", T::MIN_SIZE),
        ));
    }
    // A size that ends inside a field (a struct packed with `#pragma pack(1)`, a hand-written
    // size) would mix the caller's bytes of that field with the default's: a pointer made of
    // two would crash. Sizes a header ever declared are the first version's and whole
    // multiples of the struct's alignment (no field of eight bytes or fewer crosses one).
    if size < known && size != T::MIN_SIZE && size % std::mem::align_of::<T>() != 0 {
        return Err(Failure(
            MEDGEN_ERR_INVALID_ARGUMENT,
            format!("`{name}`: struct_size {size} is no size {type_name} ever had (it ends inside a field; is the header included under #pragma pack?): start from {type_name}_default()"),
        ));
    }
    let bytes = p.cast::<u8>();
    if size > known && (known..size).any(|i| unsafe { bytes.add(i).read() } != 0) {
        return Err(Failure(
            MEDGEN_ERR_INVALID_ARGUMENT,
            format!("`{name}`: a field past this library's {known} bytes of {type_name} is set (built against a newer medgen.h)"),
        ));
    }
    for &(offset, field) in T::BOOLS.iter().filter(|(offset, _)| *offset < size.min(known)) {
        let byte = unsafe { bytes.add(offset).read() };
        if byte > 1 {
            return Err(Failure(MEDGEN_ERR_INVALID_ARGUMENT, format!("`{name}.{field}` holds {byte}, not a bool (0 or 1)")));
        }
    }
    let mut out = T::default();
    unsafe { std::ptr::copy_nonoverlapping(bytes, (&raw mut out).cast::<u8>(), size.min(known)) };
    Ok(out)
}

/// Fills `size` bytes at `p` with the defaults of the fields they hold (zero past this
/// library's struct) and sets `struct_size` to `size`: what the header's inline
/// `*_default()` functions call with the caller's `sizeof`.
///
/// # Safety
/// `p` is NULL or writable for `size` bytes.
pub(crate) unsafe fn init_params<T: Params>(p: *mut T, size: usize) -> medgen_status {
    ffi_boundary(|| {
        if p.is_null() {
            return Err(null("p"));
        }
        if size < T::MIN_SIZE {
            return Err(Failure(MEDGEN_ERR_INVALID_ARGUMENT, format!("size {size} is below the struct's first version ({})", T::MIN_SIZE)));
        }
        let known = std::mem::size_of::<T>();
        let defaults = T::default();
        let bytes = p.cast::<u8>();
        unsafe {
            std::ptr::copy_nonoverlapping((&raw const defaults).cast::<u8>(), bytes, size.min(known));
            if size > known {
                std::ptr::write_bytes(bytes.add(known), 0, size - known);
            }
            p.cast::<usize>().write_unaligned(size);
        }
        Ok(())
    })
}

/// The most items of any array passed to medgen (prompts, messages, stop strings, token ids,
/// texts to score): `MEDGEN_MAX_ITEMS`.
pub const MEDGEN_MAX_ITEMS: usize = 1 << 26;

/// An array argument of `n` items: NULL only when `n` is 0, and `n` at most
/// `MEDGEN_MAX_ITEMS` (past it, or past what the address space can hold, a slice would be
/// undefined behaviour before a single item is read).
///
/// # Safety
/// `p` is NULL or readable for `n` items that live for `'a`.
pub(crate) unsafe fn slice_arg<'a, T>(p: *const T, n: usize, name: &str) -> FfiResult<&'a [T]> {
    if n > MEDGEN_MAX_ITEMS {
        return Err(Failure(MEDGEN_ERR_INVALID_ARGUMENT, format!("`{name}` has {n} items, more than MEDGEN_MAX_ITEMS ({MEDGEN_MAX_ITEMS})")));
    }
    if n == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(null(name));
    }
    Ok(unsafe { std::slice::from_raw_parts(p, n) })
}

/// A NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that lives for `'a`.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char, name: &str) -> FfiResult<&'a str> {
    if p.is_null() {
        return Err(null(name));
    }
    let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
    std::str::from_utf8(bytes).map_err(|e| {
        Failure(MEDGEN_ERR_INVALID_UTF8, format!("`{name}` is not valid UTF-8 (at byte {})", e.valid_up_to()))
    })
}

/// Writes an output through a pointer checked for NULL before any work is done.
///
/// # Safety
/// `out` points to writable memory for a `T`.
pub(crate) unsafe fn write_out<T>(out: *mut T, value: T) {
    unsafe { out.write(value) }
}

/// The library's version, for example "0.1.0" (a static string).
#[no_mangle]
pub extern "C" fn medgen_version() -> *const c_char {
    static VERSION: &CStr = match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(v) => v,
        Err(_) => c"unknown",
    };
    VERSION.as_ptr()
}

/// The message of the last failure of a medgen function on this thread ("" if none); a
/// successful call does not clear it. The string stays valid until the next failing medgen
/// call on this thread; do not free it.
#[no_mangle]
pub extern "C" fn medgen_last_error_message() -> *const c_char {
    guard(c"".as_ptr(), || LAST_ERROR.with(|e| e.borrow().as_ptr()))
}

/// A static name for a status, for example "MEDGEN_ERR_IO"; "MEDGEN_UNKNOWN_STATUS" for a
/// value that is not a status. Do not free it.
#[no_mangle]
pub extern "C" fn medgen_status_str(status: i32) -> *const c_char {
    let name: &'static CStr = match status {
        0 => c"MEDGEN_OK",
        1 => c"MEDGEN_ERR_NULL_ARGUMENT",
        2 => c"MEDGEN_ERR_INVALID_UTF8",
        3 => c"MEDGEN_ERR_INVALID_ARGUMENT",
        4 => c"MEDGEN_ERR_IO",
        5 => c"MEDGEN_ERR_MODEL_LOAD",
        6 => c"MEDGEN_ERR_UNSUPPORTED",
        7 => c"MEDGEN_ERR_CONTEXT_LENGTH",
        8 => c"MEDGEN_ERR_DEVICE",
        9 => c"MEDGEN_ERR_CANCELLED",
        10 => c"MEDGEN_ERR_BUFFER_TOO_SMALL",
        11 => c"MEDGEN_ERR_TOKENIZER",
        12 => c"MEDGEN_ERR_TORCH",
        13 => c"MEDGEN_ERR_INTERNAL",
        14 => c"MEDGEN_ERR_AUDIT_TAMPERED",
        _ => c"MEDGEN_UNKNOWN_STATUS",
    };
    name.as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_its_own_name() {
        for s in 0..=14 {
            let name = unsafe { CStr::from_ptr(medgen_status_str(s)) }.to_str().unwrap();
            assert!(name.starts_with("MEDGEN_") && name != "MEDGEN_UNKNOWN_STATUS", "{s}: {name}");
        }
        let name = unsafe { CStr::from_ptr(medgen_status_str(MEDGEN_ERR_INTERNAL as i32)) };
        assert_eq!(name.to_str().unwrap(), "MEDGEN_ERR_INTERNAL");
        let unknown = unsafe { CStr::from_ptr(medgen_status_str(-4)) };
        assert_eq!(unknown.to_str().unwrap(), "MEDGEN_UNKNOWN_STATUS");
    }

    #[test]
    fn a_panic_becomes_an_internal_error_with_its_message() {
        let status = ffi_boundary(|| panic!("boom"));
        assert_eq!(status, MEDGEN_ERR_INTERNAL);
        let msg = unsafe { CStr::from_ptr(medgen_last_error_message()) }.to_str().unwrap();
        assert!(msg.contains("boom"), "{msg}");
    }
}
