//! GGML tensor types and their dequantization to f32.
//!
//! Block layouts follow ggml's `ggml-common.h` (`block_q4_0`, `block_q4_K`, ...); the
//! arithmetic follows `dequantize_row_*` in ggml-quants.c, which the `gguf` Python package
//! mirrors. Each block is decoded independently, so rows are split across threads.

use half::{bf16, f16};

use crate::error::{MedgenError, Result};

/// A GGML tensor type, with its on-disk id.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    Q8_K,
    IQ2_XXS,
    IQ2_XS,
    IQ3_XXS,
    IQ1_S,
    IQ4_NL,
    IQ3_S,
    IQ2_S,
    IQ4_XS,
    I8,
    I16,
    I32,
    I64,
    F64,
    IQ1_M,
    BF16,
    TQ1_0,
    TQ2_0,
}

const QK_K: usize = 256;

impl GgmlType {
    pub fn from_id(id: u32) -> Option<Self> {
        use GgmlType::*;
        Some(match id {
            0 => F32,
            1 => F16,
            2 => Q4_0,
            3 => Q4_1,
            6 => Q5_0,
            7 => Q5_1,
            8 => Q8_0,
            9 => Q8_1,
            10 => Q2_K,
            11 => Q3_K,
            12 => Q4_K,
            13 => Q5_K,
            14 => Q6_K,
            15 => Q8_K,
            16 => IQ2_XXS,
            17 => IQ2_XS,
            18 => IQ3_XXS,
            19 => IQ1_S,
            20 => IQ4_NL,
            21 => IQ3_S,
            22 => IQ2_S,
            23 => IQ4_XS,
            24 => I8,
            25 => I16,
            26 => I32,
            27 => I64,
            28 => F64,
            29 => IQ1_M,
            30 => BF16,
            34 => TQ1_0,
            35 => TQ2_0,
            _ => return None,
        })
    }

    /// (elements per block, bytes per block).
    pub fn block(self) -> (usize, usize) {
        use GgmlType::*;
        match self {
            F32 | I32 => (1, 4),
            F16 | BF16 | I16 => (1, 2),
            I8 => (1, 1),
            I64 | F64 => (1, 8),
            Q4_0 | IQ4_NL => (32, 18),
            Q4_1 => (32, 20),
            Q5_0 => (32, 22),
            Q5_1 => (32, 24),
            Q8_0 => (32, 34),
            Q8_1 => (32, 36),
            Q2_K => (QK_K, 84),
            Q3_K => (QK_K, 110),
            Q4_K => (QK_K, 144),
            Q5_K => (QK_K, 176),
            Q6_K => (QK_K, 210),
            Q8_K => (QK_K, 292),
            IQ2_XXS => (QK_K, 66),
            IQ2_XS => (QK_K, 74),
            IQ3_XXS => (QK_K, 98),
            IQ1_S => (QK_K, 50),
            IQ3_S => (QK_K, 110),
            IQ2_S => (QK_K, 82),
            IQ4_XS => (QK_K, 136),
            IQ1_M => (QK_K, 56),
            TQ1_0 => (QK_K, 54),
            TQ2_0 => (QK_K, 66),
        }
    }
}

type BlockFn = fn(&[u8], &mut [f32]);

fn block_fn(ty: GgmlType) -> Option<BlockFn> {
    use GgmlType::*;
    Some(match ty {
        F32 => |b, y| y[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        F16 => |b, y| y[0] = f16_at(b, 0),
        BF16 => |b, y| y[0] = bf16::from_le_bytes([b[0], b[1]]).to_f32(),
        Q4_0 => q4_0,
        Q4_1 => q4_1,
        Q5_0 => q5_0,
        Q5_1 => q5_1,
        Q8_0 => q8_0,
        Q2_K => q2_k,
        Q3_K => q3_k,
        Q4_K => q4_k,
        Q5_K => q5_k,
        Q6_K => q6_k,
        _ => return None,
    })
}

/// `x` (a multiple of 32 long) quantized to Q8_0 or Q4_0 blocks as ggml's reference
/// quantizers round (`quantize_row_q8_0_ref`, `quantize_row_q4_0_ref`).
pub fn quantize(ty: GgmlType, x: &[f32]) -> Result<Vec<u8>> {
    let (_, size) = ty.block();
    if x.len() % 32 != 0 || !matches!(ty, GgmlType::Q8_0 | GgmlType::Q4_0) {
        return Err(MedgenError::Unsupported(format!("quantizing {} values to {ty:?}", x.len())));
    }
    let mut out = vec![0u8; x.len() / 32 * size];
    for (b, xs) in out.chunks_exact_mut(size).zip(x.chunks_exact(32)) {
        // The value of largest magnitude, with its sign.
        let max = xs.iter().fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
        let d = if ty == GgmlType::Q8_0 { max.abs() / 127.0 } else { max / -8.0 };
        let inv = if d != 0.0 { 1.0 / d } else { 0.0 };
        b[..2].copy_from_slice(&half::f16::from_f32(d).to_le_bytes());
        if ty == GgmlType::Q8_0 {
            for (q, &v) in b[2..].iter_mut().zip(xs) {
                *q = (v * inv).round() as i8 as u8;
            }
        } else {
            let q4 = |v: f32| ((v * inv + 8.5) as i8).min(15) as u8;
            for j in 0..16 {
                b[2 + j] = q4(xs[j]) | (q4(xs[j + 16]) << 4);
            }
        }
    }
    Ok(out)
}

/// Whether [`dequantize`] handles this type.
pub fn is_supported(ty: GgmlType) -> bool {
    block_fn(ty).is_some()
}

/// Dequantizes `n` elements of type `ty` from `bytes` (exactly `n / block * block_bytes`).
pub fn dequantize(ty: GgmlType, bytes: &[u8], n: usize) -> Result<Vec<f32>> {
    let (qk, size) = ty.block();
    checked_block_fn(ty, bytes, n)?;
    let mut out = vec![0f32; n];
    let n_blocks = n / qk;
    let threads = std::thread::available_parallelism().map_or(1, |p| p.get());
    let per_thread = n_blocks.div_ceil(threads).max(4096 / qk.max(1));
    if per_thread >= n_blocks {
        dequantize_into(ty, bytes, &mut out)?;
        return Ok(out);
    }
    // Whole blocks per chunk, lengths checked above: no chunk can fail.
    std::thread::scope(|s| {
        for (ys, bs) in out.chunks_mut(per_thread * qk).zip(bytes.chunks(per_thread * size)) {
            s.spawn(move || dequantize_into(ty, bs, ys));
        }
    });
    Ok(out)
}

/// Dequantizes `bytes` into `out` on the calling thread, `out.len()` elements.
pub fn dequantize_into(ty: GgmlType, bytes: &[u8], out: &mut [f32]) -> Result<()> {
    let f = checked_block_fn(ty, bytes, out.len())?;
    let (qk, size) = ty.block();
    for (y, b) in out.chunks_exact_mut(qk).zip(bytes.chunks_exact(size)) {
        f(b, y);
    }
    Ok(())
}

/// `ty`'s block dequantizer, when `bytes` hold exactly `n` elements of it.
fn checked_block_fn(ty: GgmlType, bytes: &[u8], n: usize) -> Result<BlockFn> {
    let f = block_fn(ty).ok_or_else(|| MedgenError::Unsupported(format!("GGUF tensor type {ty:?}")))?;
    let (qk, size) = ty.block();
    if n % qk != 0 || bytes.len() != n / qk * size {
        return Err(MedgenError::format(format!("{ty:?} data of {} bytes does not hold {n} elements", bytes.len())));
    }
    Ok(f)
}

fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

// block_q4_0: f16 d; u8 qs[16]. Low nibbles are elements 0..16, high nibbles 16..32.
fn q4_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for (j, &q) in b[2..18].iter().enumerate() {
        y[j] = ((q & 0xF) as i32 - 8) as f32 * d;
        y[j + 16] = ((q >> 4) as i32 - 8) as f32 * d;
    }
}

// block_q4_1: f16 d, f16 m; u8 qs[16].
fn q4_1(b: &[u8], y: &mut [f32]) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    for (j, &q) in b[4..20].iter().enumerate() {
        y[j] = (q & 0xF) as f32 * d + m;
        y[j + 16] = (q >> 4) as f32 * d + m;
    }
}

// block_q5_0: f16 d; u32 qh (the fifth bits); u8 qs[16].
fn q5_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    for (j, &q) in b[6..22].iter().enumerate() {
        let h0 = (((qh >> j) << 4) & 0x10) as u8;
        let h1 = ((qh >> (j + 12)) & 0x10) as u8;
        y[j] = (((q & 0xF) | h0) as i32 - 16) as f32 * d;
        y[j + 16] = (((q >> 4) | h1) as i32 - 16) as f32 * d;
    }
}

// block_q5_1: f16 d, f16 m; u32 qh; u8 qs[16].
fn q5_1(b: &[u8], y: &mut [f32]) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    for (j, &q) in b[8..24].iter().enumerate() {
        let h0 = (((qh >> j) << 4) & 0x10) as u8;
        let h1 = ((qh >> (j + 12)) & 0x10) as u8;
        y[j] = ((q & 0xF) | h0) as f32 * d + m;
        y[j + 16] = ((q >> 4) | h1) as f32 * d + m;
    }
}

// block_q8_0: f16 d; i8 qs[32].
fn q8_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for (j, &q) in b[2..34].iter().enumerate() {
        y[j] = (q as i8) as f32 * d;
    }
}

/// The 6-bit scale and min of sub-block j, packed into 12 bytes (ggml's get_scale_min_k4).
pub(crate) fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

// block_q2_K: u8 scales[16] (low nibble scale, high nibble min); u8 qs[64]; f16 d, dmin.
fn q2_k(b: &[u8], y: &mut [f32]) {
    let (scales, qs) = (&b[0..16], &b[16..80]);
    let (d, dmin) = (f16_at(b, 80), f16_at(b, 82));
    let mut is = 0;
    for (half, q) in qs.chunks_exact(32).enumerate() {
        for shift in [0u32, 2, 4, 6] {
            let base = half * 128 + shift as usize / 2 * 32;
            for part in 0..2 {
                let sc = scales[is];
                is += 1;
                let (dl, ml) = (d * (sc & 0xF) as f32, dmin * (sc >> 4) as f32);
                for l in 0..16 {
                    let v = (q[part * 16 + l] >> shift) & 3;
                    y[base + part * 16 + l] = dl * v as f32 - ml;
                }
            }
        }
    }
}

/// Q3_K's 16 six-bit scales, packed into 12 bytes, each less 32.
pub(crate) fn q3_k_scales(packed: &[u8]) -> [i8; 16] {
    let mut scales = [0i8; 16];
    for (i, s) in scales.iter_mut().enumerate() {
        let low = if i < 8 { packed[i] & 0xF } else { packed[i - 8] >> 4 };
        let high = (packed[8 + i % 4] >> (2 * (i / 4))) & 3;
        *s = (low | (high << 4)) as i8 - 32;
    }
    scales
}

// block_q3_K: u8 hmask[32]; u8 qs[64]; u8 scales[12] (16 six-bit scales); f16 d.
fn q3_k(b: &[u8], y: &mut [f32]) {
    let (hmask, qs, packed) = (&b[0..32], &b[32..96], &b[96..108]);
    let d = f16_at(b, 108);
    let scales = q3_k_scales(packed);
    let mut is = 0;
    let mut m = 1u8;
    for (half, q) in qs.chunks_exact(32).enumerate() {
        for shift in [0u32, 2, 4, 6] {
            let base = half * 128 + shift as usize / 2 * 32;
            for part in 0..2 {
                let dl = d * scales[is] as f32;
                is += 1;
                for l in 0..16 {
                    let k = part * 16 + l;
                    let low = ((q[k] >> shift) & 3) as i32;
                    let v = low - if hmask[k] & m != 0 { 0 } else { 4 };
                    y[base + k] = dl * v as f32;
                }
            }
            m <<= 1;
        }
    }
}

// block_q4_K: f16 d, dmin; u8 scales[12]; u8 qs[128]. Four chunks of 64 elements.
fn q4_k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let (scales, qs) = (&b[4..16], &b[16..144]);
    for (c, q) in qs.chunks_exact(32).enumerate() {
        let (s1, m1) = scale_min_k4(2 * c, scales);
        let (s2, m2) = scale_min_k4(2 * c + 1, scales);
        let (d1, m1, d2, m2) = (d * s1 as f32, dmin * m1 as f32, d * s2 as f32, dmin * m2 as f32);
        for l in 0..32 {
            y[c * 64 + l] = d1 * (q[l] & 0xF) as f32 - m1;
            y[c * 64 + 32 + l] = d2 * (q[l] >> 4) as f32 - m2;
        }
    }
}

// block_q5_K: f16 d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128].
fn q5_k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let (scales, qh, qs) = (&b[4..16], &b[16..48], &b[48..176]);
    for (c, q) in qs.chunks_exact(32).enumerate() {
        let (u1, u2) = (1u8 << (2 * c), 2u8 << (2 * c));
        let (s1, m1) = scale_min_k4(2 * c, scales);
        let (s2, m2) = scale_min_k4(2 * c + 1, scales);
        let (d1, m1, d2, m2) = (d * s1 as f32, dmin * m1 as f32, d * s2 as f32, dmin * m2 as f32);
        for l in 0..32 {
            let h1 = if qh[l] & u1 != 0 { 16 } else { 0 };
            let h2 = if qh[l] & u2 != 0 { 16 } else { 0 };
            y[c * 64 + l] = d1 * ((q[l] & 0xF) + h1) as f32 - m1;
            y[c * 64 + 32 + l] = d2 * ((q[l] >> 4) + h2) as f32 - m2;
        }
    }
}

// block_q6_K: u8 ql[128] (low 4 bits); u8 qh[64] (high 2 bits); i8 scales[16]; f16 d.
fn q6_k(b: &[u8], y: &mut [f32]) {
    let (ql, qh, sc) = (&b[0..128], &b[128..192], &b[192..208]);
    let d = f16_at(b, 208);
    for n in 0..2 {
        let (ql, qh, sc, y) = (&ql[n * 64..], &qh[n * 32..], &sc[n * 8..], &mut y[n * 128..]);
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            let s = |k: usize| d * (sc[k] as i8) as f32;
            y[l] = s(is) * q1 as f32;
            y[l + 32] = s(is + 2) * q2 as f32;
            y[l + 64] = s(is + 4) * q3 as f32;
            y[l + 96] = s(is + 6) * q4 as f32;
        }
    }
}
