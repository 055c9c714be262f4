//! Integer dot products of GGUF weight blocks (Q8_0, Q4_0, Q4_1 and Q5_0/Q5_1 here; the other
//! types in [`super::grouped`]) with activations quantized to 8 bits per block of 32, as
//! llama.cpp multiplies them: each block's products are summed in integers and scaled once,
//! which costs far fewer instructions than dequantizing the weights to f32. The activations
//! lose precision (one part in 254 of each block's largest value); the weights are used as
//! stored.
//!
//! The instructions are chosen once per process: AVX-512 VNNI or AVX-VNNI (`vpdpbusd`, a
//! multiply-add of 8-bit integers into 32-bit sums), else AVX2 (`vpmaddubsw` + `vpmaddwd`),
//! else plain Rust. `MEDGEN_KERNELS=scalar|avx2|avxvnni|avx512vnni` picks a lower set (one
//! the CPU lacks is ignored), as the tests do to check each.

use std::ops::Range;

use super::f16_at;
use crate::formats::quants::GgmlType;

/// Instruction sets of the integer kernels, best last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Isa {
    Scalar,
    Avx2,
    AvxVnni,
    Avx512Vnni,
}

impl Isa {
    const ALL: [Isa; 4] = [Isa::Scalar, Isa::Avx2, Isa::AvxVnni, Isa::Avx512Vnni];

    fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::AvxVnni => "avxvnni",
            Isa::Avx512Vnni => "avx512vnni",
        }
    }

    /// Whether this CPU runs the set.
    fn present(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            let avx2 = has!("avx2") && has!("fma") && has!("f16c");
            match self {
                Isa::Scalar => true,
                Isa::Avx2 => avx2,
                Isa::AvxVnni => avx2 && has!("avxvnni"),
                Isa::Avx512Vnni => avx2 && has!("avx512vnni") && has!("avx512vl"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        matches!(self, Isa::Scalar)
    }

    /// Every set this CPU runs, scalar first.
    pub fn available() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.present()).collect()
    }

    /// The set the kernels use: the best present, or the one `MEDGEN_KERNELS` names.
    pub fn chosen() -> Isa {
        static CHOSEN: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *CHOSEN.get_or_init(|| {
            let best = Isa::available().into_iter().max().unwrap_or(Isa::Scalar);
            let named = std::env::var("MEDGEN_KERNELS").ok();
            Isa::ALL.into_iter().find(|i| named.as_deref() == Some(i.name()) && i.present()).unwrap_or(best)
        })
    }
}

/// Activation rows quantized in blocks of 32: `qs[i] = round(x[i] / d[b])` with
/// `d[b] = max |x| / 127` over block `b`, and `sums[b] = d[b] * sum of qs over b` (what Q4_0's
/// offset and Q4_1's minimum multiply); `half_sums` the same over each half block of 16 (what
/// the offsets of [`super::grouped`]'s groups multiply).
pub(crate) struct Quantized {
    pub qs: Vec<i8>,
    pub d: Vec<f32>,
    pub sums: Vec<f32>,
    pub half_sums: Vec<f32>,
}

/// `x` (a multiple of 32 long) in 8-bit blocks.
pub(crate) fn quantize(x: &[f32]) -> Quantized {
    let blocks = x.len() / 32;
    let mut q = Quantized { qs: vec![0; blocks * 32], d: vec![0.0; blocks], sums: vec![0.0; blocks], half_sums: vec![0.0; 2 * blocks] };
    for (b, xs) in x.chunks_exact(32).enumerate() {
        let amax = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
        let mut sums = [0i32; 2];
        for (i, (q, &v)) in q.qs[32 * b..32 * (b + 1)].iter_mut().zip(xs).enumerate() {
            *q = (v * inv).round() as i8;
            sums[i / 16] += *q as i32;
        }
        q.d[b] = d;
        q.sums[b] = d * (sums[0] + sums[1]) as f32;
        q.half_sums[2 * b] = d * sums[0] as f32;
        q.half_sums[2 * b + 1] = d * sums[1] as f32;
    }
    q
}

/// The dot product of one weight row (`w`: whole blocks of `ty`) with the quantized
/// activation blocks `blocks` of `x`.
pub(crate) fn dot(isa: Isa, ty: GgmlType, w: &[u8], x: &Quantized, blocks: Range<usize>) -> f32 {
    dots(isa, ty, [w], x, blocks)[0]
}

/// [`dot`] of four weight rows with the same activations: each block of `x` is read once for
/// the four. Each result equals [`dot`]'s of its row, to the bit.
pub(crate) fn dot4(isa: Isa, ty: GgmlType, w: [&[u8]; 4], x: &Quantized, blocks: Range<usize>) -> [f32; 4] {
    dots(isa, ty, w, x, blocks)
}

fn dots<const R: usize>(isa: Isa, ty: GgmlType, w: [&[u8]; R], x: &Quantized, blocks: Range<usize>) -> [f32; R] {
    #[cfg(target_arch = "x86_64")]
    if isa != Isa::Scalar {
        // SAFETY: `isa` is one that `Isa::present` found on this CPU (callers pass
        // `Isa::chosen()` or a member of `Isa::available()`), and each path reads whole blocks
        // of `w` and `x` within their lengths.
        return unsafe { x86::dots(isa, ty, w, x, blocks) };
    }
    let _ = isa;
    w.map(|w| dot_scalar(ty, w, x, blocks.clone()))
}

fn dot_scalar(ty: GgmlType, w: &[u8], x: &Quantized, blocks: Range<usize>) -> f32 {
    if super::grouped::reads(ty) {
        return super::grouped::dot_int8_scalar(ty, w, x, blocks);
    }
    let size = ty.block().1;
    let mut total = 0.0;
    for (b, wb) in blocks.zip(w.chunks_exact(size)) {
        let xq = &x.qs[32 * b..32 * (b + 1)];
        let d = f16_at(wb, 0);
        let isum: i32 = match ty {
            GgmlType::Q8_0 => wb[2..].iter().zip(xq).map(|(&q, &v)| (q as i8) as i32 * v as i32).sum(),
            _ => {
                let qs = &wb[size - 16..];
                (0..16).map(|j| (qs[j] & 0xF) as i32 * xq[j] as i32 + (qs[j] >> 4) as i32 * xq[j + 16] as i32).sum()
            }
        };
        total += d * x.d[b] * isum as f32
            + match ty {
                GgmlType::Q4_0 => -8.0 * d * x.sums[b],
                GgmlType::Q4_1 => f16_at(wb, 2) * x.sums[b],
                _ => 0.0,
            };
    }
    total
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::ops::Range;

    use super::super::avx2::hsum;
    use super::super::grouped::x86::q5_values;
    use super::{Isa, Quantized};
    use crate::formats::quants::GgmlType;

    /// The eight 32-bit sums of `w · x` over 32 unsigned (`w`) by signed (`x`) bytes.
    macro_rules! products {
        (Avx2, $w:expr, $x:expr) => {
            _mm256_madd_epi16(_mm256_maddubs_epi16($w, $x), _mm256_set1_epi16(1))
        };
        (AvxVnni, $w:expr, $x:expr) => {
            _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), $w, $x)
        };
        (Avx512Vnni, $w:expr, $x:expr) => {
            _mm256_dpbusd_epi32(_mm256_setzero_si256(), $w, $x)
        };
    }

    /// The 32 integer products of the block at `b` with the activations `xv`, summed in eight
    /// lanes, as f32.
    macro_rules! block {
        ($isa:ident, $ty:expr, $size:expr, $b:expr, $xv:expr) => {{
            let (b, xv) = ($b, $xv);
            let ints = if $ty == Q8_0 {
                let wv = _mm256_loadu_si256(b.add(2) as *const __m256i);
                // Signed by signed: |w| times x with w's sign.
                products!($isa, _mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv))
            } else if $ty == Q5_0 || $ty == Q5_1 {
                products!($isa, q5_values(b, $size), xv)
            } else {
                let q = _mm_loadu_si128(b.add($size - 16) as *const __m128i);
                let wv = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0x0F));
                products!($isa, wv, xv)
            };
            _mm256_cvtepi32_ps(ints)
        }};
    }

    /// One instance of the block loop per instruction set, block type and number of weight
    /// rows (`R`, which share each block of activations): the weights' 32 values of a block as
    /// bytes, multiplied with the activations' in integers, scaled in f32. Each row sums its
    /// even and its odd blocks apart, so that their latencies overlap, in the same order
    /// whatever `R` is.
    macro_rules! dot_fn {
        ($name:ident, $isa:ident, $features:literal) => {
            #[target_feature(enable = $features)]
            unsafe fn $name<const TY: u8, const R: usize>(w: [&[u8]; R], x: &Quantized, blocks: Range<usize>) -> [f32; R] {
                let size = match TY {
                    Q8_0 => 34,
                    Q4_0 => 18,
                    Q4_1 => 20,
                    Q5_0 => 22,
                    _ => 24,
                };
                let n = blocks.len();
                assert!(w.iter().all(|w| w.len() >= n * size) && x.d.len() >= blocks.end && x.qs.len() >= 32 * blocks.end);
                let (wp, xq) = (w.map(<[u8]>::as_ptr), x.qs.as_ptr().add(32 * blocks.start));
                let (xd, xs) = (x.d.as_ptr().add(blocks.start), x.sums.as_ptr().add(blocks.start));
                // The offset of Q4_0 (-8 d), Q5_0 (-16 d), or Q4_1 and Q5_1 (their minimums)
                // times the block's sum of x.
                let offset = |d: f32, b: *const u8, i: usize| match TY {
                    Q4_0 => -8.0 * d * *xs.add(i),
                    Q5_0 => -16.0 * d * *xs.add(i),
                    Q4_1 | Q5_1 => f16(b.add(2)) * *xs.add(i),
                    _ => 0.0,
                };
                let (mut even, mut odd, mut off) = ([_mm256_setzero_ps(); R], [_mm256_setzero_ps(); R], [0.0f32; R]);
                // Eight blocks a step: their scales (and Q4_1's minimums) gathered and
                // converted as one vector, each block's products scaled by its lane.
                let stride = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(size as i32));
                let mut scales = [[0.0f32; 8]; R];
                let mut i = 0;
                while i + 8 <= n {
                    let (xscale, sums) = (_mm256_loadu_ps(xd.add(i)), _mm256_loadu_ps(xs.add(i)));
                    for j in 0..R {
                        // The blocks a few steps on (past the row's end too: the rows follow
                        // each other in memory, and a prefetch never faults).
                        let ahead = (wp[j] as *const i8).wrapping_add(i * size + PREFETCH);
                        for line in (0..8 * size).step_by(64) {
                            _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line));
                        }
                        let heads = _mm256_i32gather_epi32::<1>(wp[j].add(i * size) as *const i32, stride);
                        let (d, m) = halves_f32(heads);
                        _mm256_storeu_ps(scales[j].as_mut_ptr(), _mm256_mul_ps(d, xscale));
                        even[j] = match TY {
                            Q4_0 => _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(-8.0)), sums, even[j]),
                            Q5_0 => _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(-16.0)), sums, even[j]),
                            Q4_1 | Q5_1 => _mm256_fmadd_ps(m, sums, even[j]),
                            _ => even[j],
                        };
                    }
                    for k in (0..8).step_by(2) {
                        let xv0 = _mm256_loadu_si256(xq.add(32 * (i + k)) as *const __m256i);
                        let xv1 = _mm256_loadu_si256(xq.add(32 * (i + k + 1)) as *const __m256i);
                        for j in 0..R {
                            let p0 = block!($isa, TY, size, wp[j].add((i + k) * size), xv0);
                            let p1 = block!($isa, TY, size, wp[j].add((i + k + 1) * size), xv1);
                            even[j] = _mm256_fmadd_ps(_mm256_broadcast_ss(&scales[j][k]), p0, even[j]);
                            odd[j] = _mm256_fmadd_ps(_mm256_broadcast_ss(&scales[j][k + 1]), p1, odd[j]);
                        }
                    }
                    i += 8;
                }
                while i < n {
                    let xv = _mm256_loadu_si256(xq.add(32 * i) as *const __m256i);
                    for j in 0..R {
                        let b = wp[j].add(i * size);
                        let d = f16(b);
                        let p = block!($isa, TY, size, b, xv);
                        let acc = if i % 2 == 0 { &mut even[j] } else { &mut odd[j] };
                        *acc = _mm256_fmadd_ps(_mm256_set1_ps(d * *xd.add(i)), p, *acc);
                        off[j] += offset(d, b, i);
                    }
                    i += 1;
                }
                std::array::from_fn(|j| hsum(_mm256_add_ps(even[j], odd[j])) + off[j])
            }
        };
    }

    /// How far ahead of the blocks being multiplied their successors are prefetched, in bytes.
    const PREFETCH: usize = 1024;

    const Q8_0: u8 = 0;
    const Q4_0: u8 = 1;
    const Q4_1: u8 = 2;
    const Q5_0: u8 = 3;
    const Q5_1: u8 = 4;

    dot_fn!(dot_avx2, Avx2, "avx2,fma,f16c");
    dot_fn!(dot_avxvnni, AvxVnni, "avx2,fma,f16c,avxvnni");
    dot_fn!(dot_avx512vnni, Avx512Vnni, "avx2,fma,f16c,avx512vnni,avx512vl");

    /// # Safety
    /// The CPU runs `isa`; `w` and `x` hold the blocks named.
    pub unsafe fn dots<const R: usize>(isa: Isa, ty: GgmlType, w: [&[u8]; R], x: &Quantized, blocks: Range<usize>) -> [f32; R] {
        macro_rules! by_type {
            ($f:ident) => {
                match ty {
                    GgmlType::Q8_0 => $f::<Q8_0, R>(w, x, blocks),
                    GgmlType::Q4_0 => $f::<Q4_0, R>(w, x, blocks),
                    GgmlType::Q4_1 => $f::<Q4_1, R>(w, x, blocks),
                    GgmlType::Q5_0 => $f::<Q5_0, R>(w, x, blocks),
                    GgmlType::Q5_1 => $f::<Q5_1, R>(w, x, blocks),
                    // SAFETY: AVX2 is present with `isa`.
                    _ => w.map(|w| super::super::grouped::x86::dot_int8(ty, w, x, blocks.clone())),
                }
            };
        }
        match isa {
            Isa::Avx512Vnni => by_type!(dot_avx512vnni),
            Isa::AvxVnni => by_type!(dot_avxvnni),
            _ => by_type!(dot_avx2),
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn f16(p: *const u8) -> f32 {
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128((p as *const u16).read_unaligned() as i32)))
    }

    /// The low and the high f16 of each 32-bit lane, as f32.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn halves_f32(v: __m256i) -> (__m256, __m256) {
        // Per 128-bit lane: four low halves, then four high halves; then lanes reordered.
        let packed = _mm256_packus_epi32(_mm256_and_si256(v, _mm256_set1_epi32(0xFFFF)), _mm256_srli_epi32(v, 16));
        let packed = _mm256_permute4x64_epi64::<0b11_01_10_00>(packed);
        (_mm256_cvtph_ps(_mm256_castsi256_si128(packed)), _mm256_cvtph_ps(_mm256_extracti128_si256::<1>(packed)))
    }

}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::quants::dequantize;

    /// Random-looking blocks of `ty` with plausible scales (and minimums).
    fn blocks(ty: GgmlType, n: usize, seed: usize) -> Vec<u8> {
        let size = ty.block().1;
        let mut bytes: Vec<u8> = (0..n / 32 * size).map(|i| (((i + seed) * 2654435761usize) >> 9) as u8).collect();
        for (b, block) in bytes.chunks_exact_mut(size).enumerate() {
            block[..2].copy_from_slice(&half::f16::from_f32(0.002 + ((b + seed) % 11) as f32 * 0.004).to_le_bytes());
            if ty == GgmlType::Q4_1 {
                block[2..4].copy_from_slice(&half::f16::from_f32(-0.06 + ((b + seed) % 5) as f32 * 0.02).to_le_bytes());
            }
        }
        bytes
    }

    #[test]
    fn integer_dot_equals_the_f64_dot_of_dequantized_weights_and_activations_on_every_path() {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            assert!(Isa::available().contains(&Isa::Avx2), "the AVX2 path would go untested");
        }
        // Odd block counts, a block of zeros, large and tiny magnitudes.
        for (n, seed) in [(32, 1), (96, 2), (544, 3), (1536, 4)] {
            let mut x: Vec<f32> = (0..n).map(|i| (((i + seed) * 104729) % 997) as f32 / 498.0 - 1.0).collect();
            x[..32].iter_mut().for_each(|v| *v = 0.0);
            x.iter_mut().skip(32).step_by(7).for_each(|v| *v *= 1e3);
            let q = quantize(&x);
            let xd: Vec<f64> = q.qs.iter().enumerate().map(|(i, &v)| v as f64 * q.d[i / 32] as f64).collect();
            for (i, v) in x.iter().enumerate() {
                assert!((*v as f64 - xd[i]).abs() <= q.d[i / 32] as f64 / 2.0 * 1.0001, "x[{i}] {v} vs {}", xd[i]);
            }
            for ty in [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1] {
                let w = blocks(ty, n, seed);
                let dense = dequantize(ty, &w, n).unwrap();
                let want: f64 = dense.iter().zip(&xd).map(|(a, b)| *a as f64 * b).sum();
                let scale: f64 = dense.iter().zip(&xd).map(|(a, b)| (*a as f64 * b).abs()).sum();
                for isa in Isa::available() {
                    let got = dot(isa, ty, &w, &q, 0..n / 32) as f64;
                    assert!((got - want).abs() <= 1e-5 * scale + 1e-6, "{ty:?} {isa:?} n {n}: {got} vs {want}");
                }
            }
        }
    }

    #[test]
    fn four_rows_at_once_equal_each_row_alone_to_the_bit() {
        // Block counts below, at and past the eight of a step, on every block type.
        for blocks in [1, 3, 8, 9, 18, 27] {
            let n = 32 * blocks;
            let x: Vec<f32> = (0..n).map(|i| ((i * 7919) % 613) as f32 / 306.0 - 1.0).collect();
            let q = quantize(&x);
            for ty in [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1] {
                let rows: Vec<Vec<u8>> = (0..4).map(|r| blocks_of_any(ty, n, 5 + r)).collect();
                let w = [&rows[0][..], &rows[1][..], &rows[2][..], &rows[3][..]];
                for isa in Isa::available() {
                    let alone = w.map(|w| dot(isa, ty, w, &q, 0..blocks).to_bits());
                    assert_eq!(dot4(isa, ty, w, &q, 0..blocks).map(f32::to_bits), alone, "{ty:?} {isa:?} {blocks} blocks");
                }
            }
        }
    }

    /// Blocks of any type, from random-looking bytes with plausible f16 scales (and minimums).
    fn blocks_of_any(ty: GgmlType, n: usize, seed: usize) -> Vec<u8> {
        let size = ty.block().1;
        let mut bytes: Vec<u8> = (0..n / 32 * size).map(|i| (((i + seed) * 2654435761usize) >> 11) as u8).collect();
        for (b, block) in bytes.chunks_exact_mut(size).enumerate() {
            block[..2].copy_from_slice(&half::f16::from_f32(0.001 + ((b + seed) % 13) as f32 * 0.003).to_le_bytes());
            if matches!(ty, GgmlType::Q4_1 | GgmlType::Q5_1) {
                block[2..4].copy_from_slice(&half::f16::from_f32(-0.05 + ((b + seed) % 7) as f32 * 0.01).to_le_bytes());
            }
        }
        bytes
    }

    #[test]
    fn quantization_rounds_each_block_to_its_largest_value_over_127() {
        let mut x = vec![0.0f32; 64];
        x[3] = -2.54;
        x[4] = 1.0;
        x[40] = 0.5;
        let q = quantize(&x);
        assert_eq!((q.d[0], q.qs[3], q.qs[4], q.d[1], q.qs[40]), (0.02, -127, 50, 0.5 / 127.0, 127));
        assert!((q.sums[0] - 0.02 * -77.0).abs() < 1e-6);
    }
}
