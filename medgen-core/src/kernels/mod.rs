//! Matrix-vector products for CPU decode steps.
//!
//! A decode step multiplies one activation row by every weight matrix, so its speed is the
//! speed of streaming the weights from memory. libtorch sends a one-row `linear` through its
//! general GEMM, which on small CPUs reads the weights well below memory bandwidth; these
//! kernels stream each weight row once with AVX2/FMA (f32 or bf16 weights, f32 accumulation),
//! rows split across a rayon pool. GGUF weights stay in their blocks (Q8_0, Q4_0, Q4_1 with
//! kernels of their own; Q5_0, Q5_1 and the K-quants through [`grouped`]): each block is
//! dequantized in registers and multiplied in f32, which reads 4 to 7 times fewer bytes, or,
//! with 8-bit activations, multiplied in integers ([`int8`]).
//! Prefill (many rows) stays with libtorch's GEMM on dense weights.

pub(crate) mod gemm;
pub(crate) mod grouped;
pub(crate) mod int8;

use rayon::prelude::*;

use crate::formats::quants::GgmlType;

/// Weight rows the kernel can read: contiguous `[out, in]` data in CPU memory.
#[derive(Clone, Copy)]
pub(crate) enum Rows<'a> {
    F32(&'a [f32]),
    /// bf16 bit patterns.
    Bf16(&'a [u16]),
    /// GGML blocks of 32: f16 scale, 32 int8.
    Q8_0(&'a [u8]),
    /// f16 scale, 16 bytes of 4-bit values offset by 8.
    Q4_0(&'a [u8]),
    /// f16 scale, f16 minimum, 16 bytes of 4-bit values.
    Q4_1(&'a [u8]),
    /// Blocks of another type, read through [`grouped`] (Q5_0, Q5_1, Q2_K to Q6_K).
    Grouped(GgmlType, &'a [u8]),
}

impl<'a> Rows<'a> {
    /// The stored GGUF blocks of a weight as rows the kernels read, or `None` for a block
    /// type they do not multiply (such weights are dequantized at load). This is the one
    /// list of block types the kernels read.
    pub fn from_blocks(ty: GgmlType, blocks: &'a [u8]) -> Option<Self> {
        match ty {
            GgmlType::Q8_0 => Some(Rows::Q8_0(blocks)),
            GgmlType::Q4_0 => Some(Rows::Q4_0(blocks)),
            GgmlType::Q4_1 => Some(Rows::Q4_1(blocks)),
            ty if grouped::reads(ty) => Some(Rows::Grouped(ty, blocks)),
            _ => None,
        }
    }

    /// Elements (`n` per row) to storage units of the slice; block sizes from the format's list.
    fn row_len(&self, n: usize) -> usize {
        let ty = match self {
            Rows::F32(_) | Rows::Bf16(_) => return n,
            Rows::Q8_0(_) => GgmlType::Q8_0,
            Rows::Q4_0(_) => GgmlType::Q4_0,
            Rows::Q4_1(_) => GgmlType::Q4_1,
            Rows::Grouped(ty, _) => *ty,
        };
        let (elements, bytes) = ty.block();
        n / elements * bytes
    }
}

/// Whether the kernels multiply weights stored in `ty`'s blocks directly.
pub(crate) fn reads_blocks(ty: GgmlType) -> bool {
    Rows::from_blocks(ty, &[]).is_some()
}

/// `bytes` (whole blocks of `ty`) dequantized into `out`, `out.len()` values: [`dequantize`]
/// where it runs, else the scalar dequantizer.
pub(crate) fn dequantize_blocks(ty: GgmlType, bytes: &[u8], out: &mut [f32]) -> crate::error::Result<()> {
    match Rows::from_blocks(ty, bytes) {
        Some(rows) if dequantize(rows, out) => Ok(()),
        _ => crate::formats::quants::dequantize_into(ty, bytes, out),
    }
}

/// `w`'s blocks dequantized into `out` (as many blocks as both hold): the
/// values of [`crate::formats::quants::dequantize`], with AVX2 where the CPU has it. `false`
/// (nothing written) without AVX2 or for rows that are not blocks.
pub(crate) fn dequantize(w: Rows, out: &mut [f32]) -> bool {
    if let Rows::Grouped(ty, bytes) = w {
        return grouped::dequantize(ty, bytes, out);
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 and F16C are present; the loops stop at the shorter of blocks and `out`.
        return unsafe { avx2::dequantize(w, out) };
    }
    let _ = (w, out);
    false
}

/// `y[o] = dot(w[o, :], x)` for every row `o`.
/// Quantized rows need `x.len()` to be a multiple of 32.
#[cfg(test)]
pub(crate) fn matvec(w: Rows, x: &[f32], y: &mut [f32]) {
    matmul(w, x, 1, y, false);
}

/// `y[r, o] = dot(w[o, :], x[r, :])` for the `m` rows of `x` (`[m, n]`), into `y`
/// (`[m, out]`). Each weight row is read from memory once for all `m` rows, so a few rows
/// (beams, a small batch) cost about what one costs; each row's result is the same as
/// `matvec` of that row alone. With `int8`, weights in GGUF blocks multiply the rows of `x`
/// quantized to 8 bits, in integers ([`int8`]); otherwise, and for dense weights, in f32.
pub(crate) fn matmul(w: Rows, x: &[f32], m: usize, y: &mut [f32], int8: bool) {
    let (n, out) = (x.len() / m, y.len() / m);
    let stride = w.row_len(n);
    let blocks = match w {
        Rows::Q8_0(b) => Some((GgmlType::Q8_0, b)),
        Rows::Q4_0(b) => Some((GgmlType::Q4_0, b)),
        Rows::Q4_1(b) => Some((GgmlType::Q4_1, b)),
        Rows::Grouped(ty, b) => Some((ty, b)),
        Rows::F32(_) | Rows::Bf16(_) => None,
    };
    let quantized = (int8 && blocks.is_some()).then(|| int8::quantize(x));
    let isa = int8::Isa::chosen();
    // Q4_0's offset and Q4_1's minimum multiply the sum of x over each block.
    let block_sums: Vec<f32> = match (w, &quantized) {
        (Rows::Q4_0(_) | Rows::Q4_1(_), None) => x.chunks_exact(32).map(|c| c.iter().sum()).collect(),
        _ => Vec::new(),
    };
    let dot = |o: usize, r: usize| {
        let (row, xr) = (o * stride, &x[r * n..(r + 1) * n]);
        let end = row + stride;
        if let (Some(q), Some((ty, b))) = (&quantized, blocks) {
            return int8::dot(isa, ty, &b[row..end], q, r * n / 32..(r + 1) * n / 32);
        }
        let sums = block_sums.get(r * n / 32..(r + 1) * n / 32).unwrap_or(&[]);
        match w {
            Rows::F32(w) => dot_f32(&w[row..end], xr),
            Rows::Bf16(w) => dot_bf16(&w[row..end], xr),
            Rows::Q8_0(w) => dot_q8_0(&w[row..end], xr),
            Rows::Q4_0(w) => dot_q4(&w[row..end], xr, sums, false),
            Rows::Q4_1(w) => dot_q4(&w[row..end], xr, sums, true),
            Rows::Grouped(ty, w) => grouped::dot_f32(ty, &w[row..end], xr),
        }
    };
    // Enough weight rows per task to amortise scheduling, enough tasks to balance the threads.
    let rows_per_task = (out / (4 * rayon::current_num_threads())).clamp(16, 1024);
    if m == 1 {
        y.par_chunks_mut(rows_per_task).enumerate().for_each(|(task, ys)| {
            let first = task * rows_per_task;
            for (c, ys) in ys.chunks_mut(4).enumerate() {
                let o = first + 4 * c;
                match (w, ys.len(), &quantized, blocks) {
                    (Rows::F32(wf), 4, _, _) => {
                        let row = |j: usize| &wf[(o + j) * stride..(o + j + 1) * stride];
                        // The products commute: one activation row with four weight rows.
                        ys.copy_from_slice(&dot4_f32(x, [row(0), row(1), row(2), row(3)]));
                    }
                    (_, 4, Some(q), Some((ty, b))) => {
                        let row = |j: usize| &b[(o + j) * stride..(o + j + 1) * stride];
                        ys.copy_from_slice(&int8::dot4(isa, ty, [row(0), row(1), row(2), row(3)], q, 0..n / 32));
                    }
                    _ => ys.iter_mut().enumerate().for_each(|(j, y)| *y = dot(o + j, 0)),
                }
            }
        });
        return;
    }
    // Weight row by weight row, all `m` products of each: `[out, m]`, transposed after. Blocks
    // multiplied in f32 are dequantized a row at a time into a buffer of the task's (exact
    // values, in the cache), which the rows of `x` then read as dense weights: the blocks are
    // decoded once, not once per row of `x`.
    let dequantized = blocks.is_some() && quantized.is_none();
    let mut t = vec![0.0f32; out * m];
    t.par_chunks_mut(rows_per_task * m).enumerate().for_each(|(task, ts)| {
        let mut buffer = vec![0.0f32; if dequantized { n } else { 0 }];
        for (i, ys) in ts.chunks_mut(m).enumerate() {
            let o = task * rows_per_task + i;
            let dense = match (blocks, dequantized) {
                (Some((ty, b)), true) => {
                    // Whole blocks of `ty` for `n` values: this cannot fail.
                    let _ = dequantize_blocks(ty, &b[o * stride..(o + 1) * stride], &mut buffer);
                    Some(buffer.as_slice())
                }
                _ => match w {
                    Rows::F32(wf) => Some(&wf[o * stride..(o + 1) * stride]),
                    _ => None,
                },
            };
            for (c, ys) in ys.chunks_mut(4).enumerate() {
                let r = 4 * c;
                let xr = |j: usize| &x[(r + j) * n..(r + j + 1) * n];
                match (dense, <&mut [f32; 4]>::try_from(ys)) {
                    (Some(wr), Ok(ys4)) => *ys4 = dot4_f32(wr, [xr(0), xr(1), xr(2), xr(3)]),
                    (None, Ok(ys4)) => ys4.iter_mut().enumerate().for_each(|(j, y)| *y = dot(o, r + j)),
                    (_, Err(_)) => {}
                }
            }
            // Rows past the last four.
            for r in (m / 4 * 4)..m {
                ys[r] = match dense {
                    Some(wr) => dot_f32(wr, &x[r * n..(r + 1) * n]),
                    None => dot(o, r),
                };
            }
        }
    });
    for (o, ys) in t.chunks(m).enumerate() {
        ys.iter().enumerate().for_each(|(r, &v)| y[r * out + o] = v);
    }
}

pub(crate) fn rms_norm(x: &[f32], w: &[f32], eps: f64, out: &mut [f32]) {
    let mean = x.iter().map(|v| (v * v) as f64).sum::<f64>() / x.len().max(1) as f64;
    let scale = (1.0 / (mean + eps).sqrt()) as f32;
    for ((o, v), w) in out.iter_mut().zip(x).zip(w) {
        *o = v * scale * w;
    }
}

/// The rows of `x` (`[m, w.len()]`) through [`rms_norm`] with weight `w`.
pub(crate) fn rms_norm_rows(x: &[f32], w: &[f32], eps: f64) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    x.chunks_exact(w.len()).zip(out.chunks_exact_mut(w.len())).for_each(|(x, o)| rms_norm(x, w, eps, o));
    out
}

/// The rows of `x` (`[m, w.len()]`) through a LayerNorm with weight `w` and bias `b`.
pub(crate) fn layer_norm_rows(x: &[f32], w: &[f32], b: &[f32], eps: f64) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    for (x, o) in x.chunks_exact(w.len()).zip(out.chunks_exact_mut(w.len())) {
        let n = x.len() as f64;
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        let inv = 1.0 / (var + eps).sqrt();
        for (((o, &v), &w), &b) in o.iter_mut().zip(x).zip(w).zip(b) {
            *o = ((v as f64 - mean) * inv) as f32 * w + b;
        }
    }
    out
}

/// `x += y`, element by element.
pub(crate) fn add_to(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(x, y)| *x += y);
}

/// Rotates each `d`-wide head of `x` in the "rotate half" layout by the angles whose cosines
/// and sines (`d / 2` each) are given.
pub(crate) fn rope(x: &mut [f32], d: usize, cos: &[f32], sin: &[f32]) {
    let half = d / 2;
    for head in x.chunks_exact_mut(d) {
        let (a, b) = head.split_at_mut(half);
        for i in 0..half {
            let (x1, x2) = (a[i], b[i]);
            a[i] = x1 * cos[i] - x2 * sin[i];
            b[i] = x2 * cos[i] + x1 * sin[i];
        }
    }
}

/// Keys or values of a batch: `[rows, kv_heads, positions, head_dim]` with strides (in
/// elements) between rows, heads and positions; the last dimension is contiguous.
pub(crate) struct Cached<'a> {
    pub data: &'a [f32],
    pub row_stride: usize,
    pub head_stride: usize,
    pub pos_stride: usize,
}

impl<'a> Cached<'a> {
    /// The positions from `first` on, as positions from 0.
    pub fn from_position(&self, first: usize) -> Cached<'a> {
        Cached { data: &self.data[first * self.pos_stride..], ..*self }
    }

    fn at(&self, row: usize, head: usize, pos: usize, d: usize) -> &[f32] {
        let start = row * self.row_stride + head * self.head_stride + pos * self.pos_stride;
        &self.data[start..start + d]
    }
}

/// Attention of one new position of a single sequence (row 0): `q` is `[heads, d]`, keys
/// and values hold `positions` cached positions of `kv_heads` heads (query head h reads kv
/// head h / (heads / kv_heads)); writes `[heads, d]` to `out`. The query heads that share a
/// key/value head go together, so that its keys and values are read once for them; the
/// key/value heads are split across the threads once there are enough positions to pay for it.
pub(crate) fn attend_one(q: &[f32], k: &Cached, v: &Cached, shape: [usize; 3], positions: usize, out: &mut [f32]) {
    let [heads, kv_heads, d] = shape;
    let scale = 1.0 / (d as f32).sqrt();
    if kv_heads == 0 || heads % kv_heads != 0 {
        let group = (heads / kv_heads.max(1)).max(1);
        for (h, (qh, oh)) in q.chunks_exact(d).zip(out.chunks_exact_mut(d)).take(heads).enumerate() {
            attend_head(qh, [k, v], [0, h / group], positions, scale, &[&[]], oh);
        }
        return;
    }
    let group = heads / kv_heads;
    let no_bias: Vec<&[f32]> = vec![&[]; group];
    let head = |(h, (qg, og)): (usize, (&[f32], &mut [f32]))| attend_head(qg, [k, v], [0, h], positions, scale, &no_bias, og);
    let (qs, outs) = (&q[..heads * d], &mut out[..heads * d]);
    if positions * heads * d >= PARALLEL_ATTENTION && kv_heads > 1 {
        qs.par_chunks_exact(group * d).zip(outs.par_chunks_exact_mut(group * d)).enumerate().for_each(head);
    } else {
        qs.chunks_exact(group * d).zip(outs.chunks_exact_mut(group * d)).enumerate().for_each(head);
    }
}

/// Below this many query-key products a decode step's attention stays on one thread: waking
/// another costs more.
const PARALLEL_ATTENTION: usize = 1 << 16;

/// One attention head for queries that share their keys and values (a prompt's beams in
/// cross-attention): `softmax(q_i · k_j · scale + bias_i[j]) v_j` over the first `positions`
/// keys of row `at[0]`, head `at[1]` of `kv`, for each query `q_i`, the `i`th of the
/// `bias.len()` equal pieces of `q`, into the same piece of `out`. Each `bias_i` is empty or
/// holds one additive term per position (masks, T5's position bias). Each key and value
/// is read from memory once for all the queries.
pub(crate) fn attend_head(q: &[f32], kv: [&Cached; 2], at: [usize; 2], positions: usize, scale: f32, bias: &[&[f32]], out: &mut [f32]) {
    let g = bias.len().max(1);
    let d = q.len() / g;
    #[cfg(target_arch = "x86_64")]
    if has_avx2() && d % 8 == 0 && out.len() == q.len() {
        // SAFETY: the CPU has AVX2 and FMA; `q` and `out` hold `g` pieces of `d`, a multiple
        // of 8, and every key and value `Cached::at` returns is `d` long.
        return unsafe { avx2::attend_head(q, kv, at, positions, scale, bias, out) };
    }
    let ([k, v], [row, head]) = (kv, at);
    let mut p = vec![0f32; g * positions];
    for j in 0..positions {
        let kj = k.at(row, head, j, d);
        for i in 0..g {
            let term = bias.get(i).and_then(|b| b.get(j)).copied().unwrap_or(0.0);
            p[i * positions + j] = dot_f32(kj, &q[i * d..(i + 1) * d]) * scale + term;
        }
    }
    p.chunks_exact_mut(positions.max(1)).for_each(softmax_in_place);
    out.fill(0.0);
    for j in 0..positions {
        let vj = v.at(row, head, j, d);
        for (i, o) in out.chunks_exact_mut(d).enumerate() {
            let pij = p[i * positions + j];
            o.iter_mut().zip(vj).for_each(|(o, v)| *o += pij * v);
        }
    }
}

/// Scores to probabilities, in place.
pub(crate) fn softmax_in_place(scores: &mut [f32]) {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for s in scores.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    scores.iter_mut().for_each(|s| *s /= sum);
}

/// `Σ exp(x_i - shift)`, summed in f64: log-softmax's denominator over a vocabulary, which
/// beam search needs for every beam at every step.
pub(crate) fn sum_exp(x: &[f32], shift: f32) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        return unsafe { avx2::sum_exp(x, shift) };
    }
    x.iter().map(|&v| (v - shift).exp() as f64).sum()
}

fn dot_f32(w: &[f32], x: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU has AVX2 and FMA (checked above); slices are equal length.
        return unsafe { avx2::dot_f32(w, x) };
    }
    w.iter().zip(x).map(|(a, b)| a * b).sum()
}

fn dot4_f32(w: &[f32], x: [&[f32]; 4]) -> [f32; 4] {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: as in dot_f32; every slice is at least as long as the shortest.
        return unsafe { avx2::dot4_f32(w, x) };
    }
    x.map(|x| dot_f32(w, x))
}

fn dot_bf16(w: &[u16], x: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: as in dot_f32.
        return unsafe { avx2::dot_bf16(w, x) };
    }
    w.iter().zip(x).map(|(&a, b)| f32::from_bits((a as u32) << 16) * b).sum()
}

/// Whether the AVX2 kernels run: on a CPU with AVX2, FMA and F16C, unless the environment
/// variable `MEDGEN_SCALAR_KERNELS` is set when the first kernel runs (how the tests check
/// the scalar paths that CPUs without AVX2 take).
fn has_avx2() -> bool {
    static AVX2: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVX2.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        return std::env::var_os("MEDGEN_SCALAR_KERNELS").is_none()
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c");
        #[allow(unreachable_code)]
        false
    })
}

fn f16_at(b: &[u8], i: usize) -> f32 {
    half::f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

fn dot_q8_0(w: &[u8], x: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 and FMA are present; `w` holds x.len() / 32 whole blocks.
        return unsafe { avx2::dot_q8_0(w, x) };
    }
    w.chunks_exact(GgmlType::Q8_0.block().1)
        .zip(x.chunks_exact(32))
        .map(|(b, xs)| f16_at(b, 0) * b[2..].iter().zip(xs).map(|(&q, v)| (q as i8) as f32 * v).sum::<f32>())
        .sum()
}

/// Q4_0 (values offset by 8) or Q4_1 (`with_min`: a minimum per block); `sums` holds the
/// sum of x over each block of 32.
fn dot_q4(w: &[u8], x: &[f32], sums: &[f32], with_min: bool) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2, FMA and F16C are present; `w` holds x.len() / 32 whole blocks.
        return unsafe { avx2::dot_q4(w, x, sums, with_min) };
    }
    let size = if with_min { GgmlType::Q4_1 } else { GgmlType::Q4_0 }.block().1;
    let mut total = 0.0;
    for (i, (b, xs)) in w.chunks_exact(size).zip(x.chunks_exact(32)).enumerate() {
        let qs = &b[size - 16..];
        let dot: f32 = (0..16).map(|j| (qs[j] & 0xF) as f32 * xs[j] + (qs[j] >> 4) as f32 * xs[j + 16]).sum();
        let d = f16_at(b, 0);
        total += d * dot + if with_min { f16_at(b, 2) } else { -8.0 * d } * sums[i];
    }
    total
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::GgmlType;

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    /// Four independent accumulators hide the FMA latency.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_f32(w: &[f32], x: &[f32]) -> f32 {
        let n = w.len().min(x.len());
        let (wp, xp) = (w.as_ptr(), x.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= n {
            for (j, a) in acc.iter_mut().enumerate() {
                let k = i + 8 * j;
                *a = _mm256_fmadd_ps(_mm256_loadu_ps(wp.add(k)), _mm256_loadu_ps(xp.add(k)), *a);
            }
            i += 32;
        }
        while i + 8 <= n {
            acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(wp.add(i)), _mm256_loadu_ps(xp.add(i)), acc[0]);
            i += 8;
        }
        let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let mut total = hsum(sum);
        for k in i..n {
            total += w[k] * x[k];
        }
        total
    }

    /// `dot_f32` of one row with four others (a weight row with four activation rows, or an
    /// activation row with four weight rows): each vector of `w` is loaded once for four
    /// FMAs, two chunks at a time for eight independent accumulators.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot4_f32(w: &[f32], x: [&[f32]; 4]) -> [f32; 4] {
        let n = x.iter().fold(w.len(), |n, x| n.min(x.len()));
        let wp = w.as_ptr();
        let xp = x.map(<[f32]>::as_ptr);
        let mut acc = [[_mm256_setzero_ps(); 4]; 2];
        let mut i = 0;
        while i + 16 <= n {
            for (h, acc) in acc.iter_mut().enumerate() {
                let k = i + 8 * h;
                let wv = _mm256_loadu_ps(wp.add(k));
                for r in 0..4 {
                    acc[r] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xp[r].add(k)), acc[r]);
                }
            }
            i += 16;
        }
        let mut out = [0.0; 4];
        for r in 0..4 {
            out[r] = hsum(_mm256_add_ps(acc[0][r], acc[1][r]));
            for k in i..n {
                out[r] += w[k] * x[r][k];
            }
        }
        out
    }

    /// [`super::attend_head`] for `d` a multiple of 8: the same arithmetic in FMA
    /// vectors. Dot products run eight keys at a time and weighted sums keep up to 64
    /// output values in registers, so that independent FMAs fill the pipeline instead of
    /// each waiting for the one before.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn attend_head(q: &[f32], kv: [&super::Cached; 2], at: [usize; 2], positions: usize, scale: f32, bias: &[&[f32]], out: &mut [f32]) {
        let ([k, v], [row, head]) = (kv, at);
        let g = bias.len().max(1);
        let d = q.len() / g;
        let mut p = vec![0f32; g * positions];
        for i in 0..g {
            let qp = q.as_ptr().add(i * d);
            let scores = &mut p[i * positions..(i + 1) * positions];
            let mut j = 0;
            while j + 8 <= positions {
                let kp: [*const f32; 8] = std::array::from_fn(|u| k.at(row, head, j + u, d).as_ptr());
                let mut acc = [_mm256_setzero_ps(); 8];
                for c in (0..d).step_by(8) {
                    let qv = _mm256_loadu_ps(qp.add(c));
                    for u in 0..8 {
                        acc[u] = _mm256_fmadd_ps(_mm256_loadu_ps(kp[u].add(c)), qv, acc[u]);
                    }
                }
                _mm256_storeu_ps(scores.as_mut_ptr().add(j), hsum8(acc));
                j += 8;
            }
            for (j, s) in scores.iter_mut().enumerate().skip(j) {
                let kp = k.at(row, head, j, d).as_ptr();
                let mut acc = _mm256_setzero_ps();
                for c in (0..d).step_by(8) {
                    acc = _mm256_fmadd_ps(_mm256_loadu_ps(kp.add(c)), _mm256_loadu_ps(qp.add(c)), acc);
                }
                *s = hsum(acc);
            }
            let terms = bias.get(i).copied().unwrap_or(&[]);
            for (j, s) in scores.iter_mut().enumerate() {
                *s = *s * scale + terms.get(j).copied().unwrap_or(0.0);
            }
        }
        p.chunks_exact_mut(positions.max(1)).for_each(super::softmax_in_place);
        for (i, o) in out.chunks_exact_mut(d).enumerate() {
            let probs = &p[i * positions..(i + 1) * positions];
            let mut c0 = 0;
            while c0 + 64 <= d {
                let mut acc = [_mm256_setzero_ps(); 8];
                for (j, &pj) in probs.iter().enumerate() {
                    let (pv, vp) = (_mm256_set1_ps(pj), v.at(row, head, j, d).as_ptr().add(c0));
                    for u in 0..8 {
                        acc[u] = _mm256_fmadd_ps(pv, _mm256_loadu_ps(vp.add(8 * u)), acc[u]);
                    }
                }
                for u in 0..8 {
                    _mm256_storeu_ps(o.as_mut_ptr().add(c0 + 8 * u), acc[u]);
                }
                c0 += 64;
            }
            while c0 < d {
                let mut acc = _mm256_setzero_ps();
                for (j, &pj) in probs.iter().enumerate() {
                    acc = _mm256_fmadd_ps(_mm256_set1_ps(pj), _mm256_loadu_ps(v.at(row, head, j, d).as_ptr().add(c0)), acc);
                }
                _mm256_storeu_ps(o.as_mut_ptr().add(c0), acc);
                c0 += 8;
            }
        }
    }

    /// The sums of eight vectors' elements, as one vector.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum8(a: [__m256; 8]) -> __m256 {
        // After two rounds of pairwise sums, lane i holds vector i's (or i - 4's) half sums.
        let t0 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
        let t1 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
        _mm256_add_ps(_mm256_permute2f128_ps(t0, t1, 0x20), _mm256_permute2f128_ps(t0, t1, 0x31))
    }

    /// `exp` of eight values, as Cephes' `expf` computes it (within 2 ulp): `2^n e^r` with
    /// `n` the nearest integer to `x / ln 2` and a degree-6 polynomial for `e^r`. Inputs are
    /// clamped to ±88.38, where f32 ends.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn exp8(x: __m256) -> __m256 {
        let x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.376_26)), _mm256_set1_ps(-88.376_26));
        let n = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E), _mm256_set1_ps(0.5)));
        // x - n ln 2, with ln 2 in two parts for precision.
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
        let mut y = _mm256_set1_ps(1.987_569_1e-4);
        for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5] {
            y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(c));
        }
        let y = _mm256_add_ps(_mm256_fmadd_ps(y, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0));
        let pow2n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
        _mm256_mul_ps(y, _mm256_castsi256_ps(pow2n))
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn sum_exp(x: &[f32], shift: f32) -> f64 {
        let (n, xp, s) = (x.len(), x.as_ptr(), _mm256_set1_ps(shift));
        let mut acc = _mm256_setzero_pd();
        let mut i = 0;
        while i + 8 <= n {
            let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(xp.add(i)), s));
            let halves = _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(e)), _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
            acc = _mm256_add_pd(acc, halves);
            i += 8;
        }
        let mut parts = [0.0f64; 4];
        _mm256_storeu_pd(parts.as_mut_ptr(), acc);
        parts.iter().sum::<f64>() + x[i..].iter().map(|&v| (v - shift).exp() as f64).sum::<f64>()
    }

    /// The little-endian f16 at `b[i..i + 2]`, converted with F16C.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn f16(b: &[u8], i: usize) -> f32 {
        let bits = u16::from_le_bytes([b[i], b[i + 1]]);
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
    }

    /// Eight bytes at `p`, as signed 8-bit integers, to eight f32.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn i8x8(p: *const u8) -> __m256 {
        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(p as *const __m128i)))
    }

    /// The low eight bytes of `v`, as unsigned 8-bit integers, to eight f32.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn u8x8(v: __m128i) -> __m256 {
        _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q8_0(w: &[u8], x: &[f32]) -> f32 {
        let mut totals = [_mm256_setzero_ps(); 2];
        for (i, (b, xs)) in w.chunks_exact(GgmlType::Q8_0.block().1).zip(x.chunks_exact(32)).enumerate() {
            prefetch(b);
            let (q, xp) = (b.as_ptr().add(2), xs.as_ptr());
            let p01 = _mm256_fmadd_ps(i8x8(q), _mm256_loadu_ps(xp), _mm256_mul_ps(i8x8(q.add(8)), _mm256_loadu_ps(xp.add(8))));
            let p23 = _mm256_fmadd_ps(i8x8(q.add(16)), _mm256_loadu_ps(xp.add(16)), _mm256_mul_ps(i8x8(q.add(24)), _mm256_loadu_ps(xp.add(24))));
            let t = &mut totals[i & 1];
            *t = _mm256_fmadd_ps(_mm256_set1_ps(f16(b, 0)), _mm256_add_ps(p01, p23), *t);
        }
        hsum(_mm256_add_ps(totals[0], totals[1]))
    }

    /// Q4_0's offset of 8 is folded in as `-8 d sum(x)` per block; Q4_1 adds `m sum(x)`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q4(w: &[u8], x: &[f32], sums: &[f32], with_min: bool) -> f32 {
        let size = if with_min { GgmlType::Q4_1 } else { GgmlType::Q4_0 }.block().1;
        let mask = _mm_set1_epi8(0x0F);
        let mut totals = [_mm256_setzero_ps(); 2];
        let mut offsets = 0.0;
        for (i, (b, xs)) in w.chunks_exact(size).zip(x.chunks_exact(32)).enumerate() {
            prefetch(b);
            let qs = _mm_loadu_si128(b.as_ptr().add(size - 16) as *const __m128i);
            let lo = _mm_and_si128(qs, mask); // elements 0..16
            let hi = _mm_and_si128(_mm_srli_epi16(qs, 4), mask); // elements 16..32
            let xp = xs.as_ptr();
            let p0 = _mm256_fmadd_ps(u8x8(lo), _mm256_loadu_ps(xp), _mm256_mul_ps(u8x8(_mm_srli_si128(lo, 8)), _mm256_loadu_ps(xp.add(8))));
            let p1 = _mm256_fmadd_ps(u8x8(hi), _mm256_loadu_ps(xp.add(16)), _mm256_mul_ps(u8x8(_mm_srli_si128(hi, 8)), _mm256_loadu_ps(xp.add(24))));
            let d = f16(b, 0);
            let t = &mut totals[i & 1];
            *t = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_add_ps(p0, p1), *t);
            offsets += if with_min { f16(b, 2) } else { -8.0 * d } * sums[i];
        }
        hsum(_mm256_add_ps(totals[0], totals[1])) + offsets
    }

    /// Multiplies and adds as separately as the scalar dequantizer does, so the values are
    /// the same to the bit.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dequantize(w: super::Rows, out: &mut [f32]) -> bool {
        let (bytes, ty) = match w {
            super::Rows::Q8_0(b) => (b, GgmlType::Q8_0),
            super::Rows::Q4_0(b) => (b, GgmlType::Q4_0),
            super::Rows::Q4_1(b) => (b, GgmlType::Q4_1),
            _ => return false,
        };
        let size = ty.block().1;
        let blocks = bytes.chunks_exact(size).zip(out.chunks_exact_mut(32));
        if ty == GgmlType::Q8_0 {
            for (b, y) in blocks {
                let d = _mm256_set1_ps(f16(b, 0));
                for k in 0..4 {
                    _mm256_storeu_ps(y.as_mut_ptr().add(8 * k), _mm256_mul_ps(i8x8(b.as_ptr().add(2 + 8 * k)), d));
                }
            }
            return true;
        }
        let (mask, eight) = (_mm_set1_epi8(0x0F), _mm256_set1_ps(8.0));
        for (b, y) in blocks {
            let qs = _mm_loadu_si128(b.as_ptr().add(size - 16) as *const __m128i);
            let lo = _mm_and_si128(qs, mask); // elements 0..16
            let hi = _mm_and_si128(_mm_srli_epi16(qs, 4), mask); // elements 16..32
            let quarters = [u8x8(lo), u8x8(_mm_srli_si128(lo, 8)), u8x8(hi), u8x8(_mm_srli_si128(hi, 8))];
            let d = _mm256_set1_ps(f16(b, 0));
            for (k, q) in quarters.into_iter().enumerate() {
                let v = match ty {
                    GgmlType::Q4_1 => _mm256_add_ps(_mm256_mul_ps(q, d), _mm256_set1_ps(f16(b, 2))),
                    _ => _mm256_mul_ps(_mm256_sub_ps(q, eight), d),
                };
                _mm256_storeu_ps(y.as_mut_ptr().add(8 * k), v);
            }
        }
        true
    }

    /// Asks for the memory 1 KiB past a block's start, so that the blocks to come are in the
    /// cache when the loop reaches them: the hardware prefetcher alone leaves these loops
    /// waiting on memory (decode 40 % slower). A prefetch past the weights never faults.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn prefetch(block: &[u8]) {
        _mm_prefetch::<_MM_HINT_T0>((block.as_ptr() as *const i8).wrapping_add(1024));
    }

    /// bf16 to f32 is a 16-bit left shift of the bit pattern.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn load_bf16(p: *const u16) -> __m256 {
        let h = _mm_loadu_si128(p as *const __m128i);
        _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16))
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_bf16(w: &[u16], x: &[f32]) -> f32 {
        let n = w.len().min(x.len());
        let (wp, xp) = (w.as_ptr(), x.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= n {
            for (j, a) in acc.iter_mut().enumerate() {
                let k = i + 8 * j;
                *a = _mm256_fmadd_ps(load_bf16(wp.add(k)), _mm256_loadu_ps(xp.add(k)), *a);
            }
            i += 32;
        }
        while i + 8 <= n {
            acc[0] = _mm256_fmadd_ps(load_bf16(wp.add(i)), _mm256_loadu_ps(xp.add(i)), acc[0]);
            i += 8;
        }
        let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let mut total = hsum(sum);
        for k in i..n {
            total += f32::from_bits((w[k] as u32) << 16) * x[k];
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(w: &[f32], x: &[f32], rows: usize) -> Vec<f64> {
        let n = x.len();
        (0..rows).map(|r| (0..n).map(|i| w[r * n + i] as f64 * x[i] as f64).sum()).collect()
    }

    #[test]
    fn matmul_of_several_rows_equals_matvec_of_each() {
        for (rows, n, m) in [(37, 100, 2), (300, 576, 4), (70, 1543, 7), (64, 512, 16)] {
            let w: Vec<f32> = (0..rows * n).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
            let x: Vec<f32> = (0..m * n).map(|i| ((i * 104729) % 997) as f32 / 498.0 - 1.0).collect();
            // Q4_1 blocks (scale, minimum, nibbles): each row's block sums must be its own.
            let mut q: Vec<u8> = (0..rows * n / 32 * 20).map(|i| ((i * 2654435761usize) >> 7) as u8).collect();
            for block in q.chunks_exact_mut(20) {
                block[..2].copy_from_slice(&half::f16::from_f32(0.01).to_le_bytes());
                block[2..4].copy_from_slice(&half::f16::from_f32(-0.03).to_le_bytes());
            }
            for weights in [Rows::F32(&w), Rows::Q4_1(&q)] {
                if matches!(weights, Rows::Q4_1(_)) && n % 32 != 0 {
                    continue;
                }
                for int8 in [false, true] {
                    let mut y = vec![0.0; m * rows];
                    matmul(weights, &x, m, &mut y, int8);
                    for r in 0..m {
                        let mut one = vec![0.0; rows];
                        matmul(weights, &x[r * n..(r + 1) * n], 1, &mut one, int8);
                        for (a, b) in y[r * rows..(r + 1) * rows].iter().zip(&one) {
                            // Only the order of the f32 additions differs.
                            assert!((a - b).abs() <= 1e-6 * n as f32, "row {r}: {a} vs {b}");
                        }
                    }
                }
            }
        }
    }

    /// Attention of one query over keys and values `[positions, d]`, in f64.
    fn attention_reference(q: &[f32], k: &[f32], v: &[f32], scale: f32, bias: &[f32]) -> Vec<f64> {
        let d = q.len();
        let scores: Vec<f64> = k
            .chunks(d)
            .enumerate()
            .map(|(j, kj)| kj.iter().zip(q).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>() * scale as f64 + bias.get(j).copied().unwrap_or(0.0) as f64)
            .collect();
        let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = scores.iter().map(|s| (s - max).exp()).sum();
        (0..d).map(|c| scores.iter().enumerate().map(|(j, s)| (s - max).exp() / sum * v[j * d + c] as f64).sum()).collect()
    }

    #[test]
    fn attention_of_queries_sharing_keys_equals_each_query_alone() {
        // d 64 and 24 take the vector path, 6 the plain one; 13 and 21 positions leave
        // remainders after the groups of eight keys.
        for (d, positions, g) in [(64, 21, 3), (24, 13, 1), (6, 13, 2), (64, 8, 4)] {
            let (heads, row) = (2, 1);
            // Two rows of `heads` heads of `positions` positions, laid out [row, pos, head, d].
            let cache: Vec<f32> = (0..2 * positions * heads * d).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
            let view = |off: usize| Cached { data: &cache[off..], row_stride: positions * heads * d, head_stride: d, pos_stride: heads * d };
            let (k, v) = (view(0), view(0));
            let q: Vec<f32> = (0..g * d).map(|i| ((i * 104729) % 997) as f32 / 498.0 - 1.0).collect();
            let bias: Vec<Vec<f32>> = (0..g).map(|i| (0..positions).map(|j| if j == i { f32::MIN } else { 0.1 * j as f32 }).collect()).collect();
            let terms: Vec<&[f32]> = bias.iter().map(Vec::as_slice).collect();
            let mut out = vec![0.0; g * d];
            attend_head(&q, [&k, &v], [row, 1], positions, 0.125, &terms, &mut out);
            let kv: Vec<f32> = (0..positions).flat_map(|j| k.at(row, 1, j, d).to_vec()).collect();
            for i in 0..g {
                let want = attention_reference(&q[i * d..(i + 1) * d], &kv, &kv, 0.125, &bias[i]);
                let mut alone = vec![0.0; d];
                attend_head(&q[i * d..(i + 1) * d], [&k, &v], [row, 1], positions, 0.125, &[&bias[i]], &mut alone);
                for c in 0..d {
                    assert!((out[i * d + c] as f64 - want[c]).abs() < 1e-5, "d {d} query {i}: {} vs {}", out[i * d + c], want[c]);
                    assert_eq!(out[i * d + c], alone[c]);
                }
            }
        }
    }

    #[test]
    fn one_position_of_grouped_heads_equals_each_head_alone() {
        // Grouped heads (6 on 2, 8 on 1), one each (3 on 3); few positions (one thread) and
        // enough for the heads to be split across threads.
        for (heads, kv_heads, positions) in [(6, 2, 5), (6, 2, 300), (8, 1, 200), (3, 3, 400)] {
            let d = 64;
            let cache: Vec<f32> = (0..positions * kv_heads * d).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
            let values: Vec<f32> = cache.iter().rev().copied().collect();
            let k = Cached { data: &cache, row_stride: 0, head_stride: d, pos_stride: kv_heads * d };
            let v = Cached { data: &values, ..k };
            let q: Vec<f32> = (0..heads * d).map(|i| ((i * 104729) % 997) as f32 / 498.0 - 1.0).collect();
            let mut out = vec![0.0; heads * d];
            attend_one(&q, &k, &v, [heads, kv_heads, d], positions, &mut out);
            for h in 0..heads {
                let kv = h / (heads / kv_heads);
                let keys: Vec<f32> = (0..positions).flat_map(|j| k.at(0, kv, j, d).to_vec()).collect();
                let vals: Vec<f32> = (0..positions).flat_map(|j| v.at(0, kv, j, d).to_vec()).collect();
                let want = attention_reference(&q[h * d..(h + 1) * d], &keys, &vals, 0.125, &vec![0.0; positions]);
                for c in 0..d {
                    assert!((out[h * d + c] as f64 - want[c]).abs() < 1e-5, "{heads}/{kv_heads} heads, {positions} positions, head {h}");
                }
            }
        }
    }

    #[test]
    fn sum_exp_matches_the_standard_library() {
        for n in [0, 3, 8, 37, 32128] {
            let x: Vec<f32> = (0..n).map(|i| ((i * 7919) % 2001) as f32 / 20.0 - 80.0).collect();
            let shift = x.iter().copied().fold(f32::NEG_INFINITY, f32::max).max(0.0);
            let want: f64 = x.iter().map(|&v| ((v - shift) as f64).exp()).sum();
            let got = sum_exp(&x, shift);
            assert!((got - want).abs() <= 1e-6 * want.max(1e-30), "n {n}: {got} vs {want}");
        }
        // Far below the maximum: no overflow, no NaN, next to nothing.
        assert!(sum_exp(&[0.0, -1e4, f32::NEG_INFINITY], 0.0) - 1.0 < 1e-30);
    }

    #[test]
    fn matvec_matches_a_plain_dot_product_for_odd_sizes() {
        for (rows, n) in [(1, 1), (3, 7), (37, 100), (300, 576), (70, 1543)] {
            let w: Vec<f32> = (0..rows * n).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
            let x: Vec<f32> = (0..n).map(|i| ((i * 104729) % 997) as f32 / 498.0 - 1.0).collect();
            let mut y = vec![0.0; rows];
            matvec(Rows::F32(&w), &x, &mut y);
            for (a, b) in y.iter().zip(reference(&w, &x, rows)) {
                assert!((*a as f64 - b).abs() < 1e-3 * (1.0 + b.abs()), "{a} vs {b}");
            }
            let wb: Vec<u16> = w.iter().map(|v| half::bf16::from_f32(*v).to_bits()).collect();
            let wr: Vec<f32> = wb.iter().map(|&b| half::bf16::from_bits(b).to_f32()).collect();
            matvec(Rows::Bf16(&wb), &x, &mut y);
            for (a, b) in y.iter().zip(reference(&wr, &x, rows)) {
                assert!((*a as f64 - b).abs() < 1e-3 * (1.0 + b.abs()), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn quantized_matvec_equals_dequantize_then_dot() {
        use crate::formats::quants::{dequantize, GgmlType};
        let (rows, n) = (45, 320);
        for (ty, size) in [(GgmlType::Q8_0, 34), (GgmlType::Q4_0, 18), (GgmlType::Q4_1, 20)] {
            let mut bytes: Vec<u8> = (0..rows * n / 32 * size).map(|i| ((i * 2654435761usize) >> 7) as u8).collect();
            for (b, block) in bytes.chunks_exact_mut(size).enumerate() {
                let d = half::f16::from_f32(0.01 + (b % 7) as f32 * 0.003).to_le_bytes();
                let m = half::f16::from_f32(-0.05 + (b % 5) as f32 * 0.02).to_le_bytes();
                block[..2].copy_from_slice(&d);
                if ty == GgmlType::Q4_1 {
                    block[2..4].copy_from_slice(&m);
                }
            }
            let dense = dequantize(ty, &bytes, rows * n).unwrap();
            let x: Vec<f32> = (0..n).map(|i| ((i * 104729) % 997) as f32 / 498.0 - 1.0).collect();
            let mut y = vec![0.0; rows];
            let w = match ty {
                GgmlType::Q8_0 => Rows::Q8_0(&bytes),
                GgmlType::Q4_0 => Rows::Q4_0(&bytes),
                _ => Rows::Q4_1(&bytes),
            };
            matvec(w, &x, &mut y);
            for (a, b) in y.iter().zip(reference(&dense, &x, rows)) {
                assert!((*a as f64 - b).abs() < 1e-4 * (1.0 + b.abs()), "{ty:?}: {a} vs {b}");
            }
            // The vector dequantizer gives the scalar one's values, bit for bit.
            let mut fast = vec![f32::NAN; rows * n];
            if super::dequantize(w, &mut fast) {
                assert!(fast.iter().zip(&dense).all(|(a, b)| a.to_bits() == b.to_bits()), "{ty:?}");
            }
        }
    }
}
