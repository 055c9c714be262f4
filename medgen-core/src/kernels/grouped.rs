//! GGUF blocks of the types without kernels of their own (Q5_0, Q5_1 and the K-quants Q2_K to
//! Q6_K), multiplied through one unpacked form: a block's values as `scale[g] * q[i] +
//! offset[g]` over groups `g` of 16 values, each `q` an unsigned integer below 64. Each type
//! unpacks in a few integer operations into the stack; one f32 kernel and one 8-bit kernel
//! then multiply every type. The f32 kernel uses the file's values exactly: `scale * q` and
//! its sum with `offset` are exact in f32 for every type (few significant bits), so they equal
//! [`crate::formats::quants::dequantize`]'s. With AVX2 the common types skip the stack: Q5_0
//! and Q5_1 are multiplied in registers (f32 here, 8-bit in [`super::int8`]), and Q4_K, Q5_K
//! and Q6_K unpack into vectors, multiplied by 8-bit activations in registers.

use std::ops::Range;

use super::f16_at;
use super::int8::Quantized;
use crate::formats::quants::{q3_k_scales, scale_min_k4, GgmlType};

/// One block unpacked: up to 256 values, 16 groups of 16.
pub(crate) struct Groups {
    q: [u8; 256],
    scale: [f32; 16],
    offset: [f32; 16],
}

impl Groups {
    fn new() -> Self {
        Groups { q: [0; 256], scale: [0.0; 16], offset: [0.0; 16] }
    }
}

/// Whether `ty`'s blocks are read through [`Groups`].
pub(crate) fn reads(ty: GgmlType) -> bool {
    use GgmlType::*;
    matches!(ty, Q5_0 | Q5_1 | Q2_K | Q3_K | Q4_K | Q5_K | Q6_K)
}

/// Block `b` of `ty` (one that [`reads`]) into `g`; layouts as in `formats::quants`.
#[inline(always)]
fn unpack(ty: GgmlType, b: &[u8], g: &mut Groups) {
    use GgmlType::*;
    match ty {
        Q5_0 | Q5_1 => {
            // f16 d (and Q5_1's minimum), u32 of fifth bits, 16 bytes of two nibbles.
            let d = f16_at(b, 0);
            let (offset, at) = if ty == Q5_0 { (-16.0 * d, 2) } else { (f16_at(b, 2), 4) };
            let qh = u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
            for (j, &q) in b[at + 4..at + 20].iter().enumerate() {
                g.q[j] = (q & 0xF) | ((((qh >> j) & 1) as u8) << 4);
                g.q[j + 16] = (q >> 4) | ((((qh >> (j + 16)) & 1) as u8) << 4);
            }
            g.scale[..2].fill(d);
            g.offset[..2].fill(offset);
        }
        Q4_K | Q5_K => {
            // f16 d and dmin, 12 bytes of six-bit scales and minimums, (Q5_K: 32 bytes of
            // fifth bits,) 128 bytes of nibbles: four chunks of 64 values.
            let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
            let (high, qs) = if ty == Q4_K { (None, &b[16..144]) } else { (Some(&b[16..48]), &b[48..176]) };
            for (c, q) in qs.chunks_exact(32).enumerate() {
                for (l, &v) in q.iter().enumerate() {
                    let h = high.map_or(0, |h| h[l] >> (2 * c));
                    g.q[64 * c + l] = (v & 0xF) | ((h & 1) << 4);
                    g.q[64 * c + 32 + l] = (v >> 4) | ((h & 2) << 3);
                }
                for s in 0..2 {
                    let (sc, m) = scale_min_k4(2 * c + s, &b[4..16]);
                    g.scale[4 * c + 2 * s..4 * c + 2 * s + 2].fill(d * sc as f32);
                    g.offset[4 * c + 2 * s..4 * c + 2 * s + 2].fill(-dmin * m as f32);
                }
            }
        }
        Q6_K => {
            // 128 bytes of low nibbles, 64 of high two bits, 16 signed scales, f16 d.
            let (ql, qh, sc, d) = (&b[0..128], &b[128..192], &b[192..208], f16_at(b, 208));
            for n in 0..2 {
                let (ql, qh, q) = (&ql[64 * n..], &qh[32 * n..], &mut g.q[128 * n..]);
                for l in 0..32 {
                    q[l] = (ql[l] & 0xF) | ((qh[l] & 3) << 4);
                    q[l + 32] = (ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4);
                    q[l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
                    q[l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
                }
            }
            for (k, &s) in sc.iter().enumerate() {
                g.scale[k] = d * (s as i8) as f32;
                g.offset[k] = -32.0 * g.scale[k];
            }
        }
        Q2_K | Q3_K => {
            // Q2_K: 16 bytes of four-bit scales and minimums, 64 bytes of two-bit values, f16
            // d and dmin. Q3_K: 32 bytes of third bits, 64 of two-bit values, 12 of six-bit
            // scales, f16 d. Two halves of 128 values, each four shifts of two 16-value groups.
            let qs = if ty == Q2_K { &b[16..80] } else { &b[32..96] };
            for half in 0..2 {
                for shift in 0..4 {
                    for l in 0..32 {
                        let v = (qs[32 * half + l] >> (2 * shift)) & 3;
                        let third = if ty == Q3_K { ((b[l] >> (4 * half + shift)) & 1) << 2 } else { 0 };
                        g.q[128 * half + 32 * shift + l] = v | third;
                    }
                }
            }
            if ty == Q2_K {
                let (d, dmin) = (f16_at(b, 80), f16_at(b, 82));
                for (k, &s) in b[..16].iter().enumerate() {
                    g.scale[k] = d * (s & 0xF) as f32;
                    g.offset[k] = -dmin * (s >> 4) as f32;
                }
            } else {
                let d = f16_at(b, 108);
                for (k, s) in q3_k_scales(&b[96..108]).into_iter().enumerate() {
                    g.scale[k] = d * s as f32;
                    g.offset[k] = -4.0 * g.scale[k];
                }
            }
        }
        _ => unreachable!("{ty:?} is not read through groups"),
    }
}

/// The dot product of a row of `ty`'s blocks with `x` (as many values as the blocks hold).
pub(crate) fn dot_f32(ty: GgmlType, w: &[u8], x: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2() {
        // SAFETY: AVX2, FMA and F16C are present; the loop stops at the shorter of w and x.
        return unsafe { x86::dot_f32(ty, w, x) };
    }
    dot_f32_scalar(ty, w, x)
}

fn dot_f32_scalar(ty: GgmlType, w: &[u8], x: &[f32]) -> f32 {
    let (qk, size) = ty.block();
    let mut g = Groups::new();
    let mut total = 0.0;
    for (b, xs) in w.chunks_exact(size).zip(x.chunks_exact(qk)) {
        unpack(ty, b, &mut g);
        for (k, xs) in xs.chunks_exact(16).enumerate() {
            total += g.q[16 * k..].iter().zip(xs).map(|(&q, x)| (g.scale[k] * q as f32 + g.offset[k]) * x).sum::<f32>();
        }
    }
    total
}

/// The dot product of a row of `ty`'s blocks with the 8-bit activation blocks `blocks` of `x`,
/// in integers, without vector instructions ([`super::int8::dot`] chooses).
pub(crate) fn dot_int8_scalar(ty: GgmlType, w: &[u8], x: &Quantized, blocks: Range<usize>) -> f32 {
    let (qk, size) = ty.block();
    let mut g = Groups::new();
    let mut total = 0.0;
    for (i, wb) in w.chunks_exact(size).take(blocks.len() * 32 / qk).enumerate() {
        unpack(ty, wb, &mut g);
        let first = blocks.start + i * qk / 32;
        for k in 0..qk / 16 {
            let (b, q) = (first + k / 2, &g.q[16 * k..16 * k + 16]);
            let xq = &x.qs[16 * (2 * first + k)..];
            let isum: i32 = q.iter().zip(xq).map(|(&q, &v)| q as i32 * v as i32).sum();
            total += g.scale[k] * x.d[b] * isum as f32 + g.offset[k] * x.half_sums[2 * first + k];
        }
    }
    total
}

/// `bytes` (whole blocks of `ty`) dequantized into `out`, as many blocks as both hold, with
/// AVX2: `false` (nothing written) without it.
pub(crate) fn dequantize(ty: GgmlType, bytes: &[u8], out: &mut [f32]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2() {
        // SAFETY: AVX2, FMA and F16C are present; the loop stops at the shorter of the two.
        unsafe { x86::dequantize(ty, bytes, out) };
        return true;
    }
    let _ = (ty, bytes, out);
    false
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use std::arch::x86_64::*;
    use std::ops::Range;

    use super::super::avx2::hsum;
    use super::{unpack, Groups, Quantized};
    use crate::formats::quants::{scale_min_k4, GgmlType};

    /// Group `k`'s 16 values `scale * q + offset`, as two vectors of eight (exact: see the module).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn values(g: &Groups, k: usize) -> [__m256; 2] {
        let (s, o) = (_mm256_set1_ps(g.scale[k]), _mm256_set1_ps(g.offset[k]));
        let q = g.q.as_ptr().add(16 * k);
        let at = |p: *const u8| _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(p as *const __m128i)));
        [_mm256_fmadd_ps(s, at(q), o), _mm256_fmadd_ps(s, at(q.add(8)), o)]
    }

    /// The 32 five-bit values of a Q5_0 or Q5_1 block of `size` bytes at `b` (16 bytes of
    /// nibbles last, the 32 fifth bits in the four bytes before), one per byte.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn q5_values(b: *const u8, size: usize) -> __m256i {
        let qs = _mm_loadu_si128(b.add(size - 16) as *const __m128i);
        let nibbles = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(qs, 4), qs), _mm256_set1_epi8(0x0F));
        // Byte i gets the byte of `qh` that holds bit i, then all ones where that bit is set.
        let qh = _mm256_set1_epi32((b.add(size - 20) as *const i32).read_unaligned());
        let spread = _mm256_shuffle_epi8(qh, _mm256_setr_epi64x(0, 0x0101_0101_0101_0101, 0x0202_0202_0202_0202, 0x0303_0303_0303_0303));
        let others = _mm256_set1_epi64x(0x7FBF_DFEF_F7FB_FDFE);
        let set = _mm256_cmpeq_epi8(_mm256_or_si256(spread, others), _mm256_set1_epi8(-1));
        _mm256_or_si256(nibbles, _mm256_and_si256(set, _mm256_set1_epi8(0x10)))
    }

    /// Q5_0 and Q5_1 in registers: `d * q + offset` (exact, as in [`values`]) times x.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot_q5(ty: GgmlType, w: &[u8], x: &[f32]) -> f32 {
        let size = ty.block().1;
        let mut acc = [_mm256_setzero_ps(); 2];
        for (b, xs) in w.chunks_exact(size).zip(x.chunks_exact(32)) {
            _mm_prefetch::<_MM_HINT_T0>((b.as_ptr() as *const i8).wrapping_add(1024));
            let q = q5_values(b.as_ptr(), size);
            let d = f16(b.as_ptr());
            let o = if ty == GgmlType::Q5_0 { -16.0 * d } else { f16(b.as_ptr().add(2)) };
            let (d, o) = (_mm256_set1_ps(d), _mm256_set1_ps(o));
            let (lo, hi) = (_mm256_castsi256_si128(q), _mm256_extracti128_si256::<1>(q));
            for (k, part) in [lo, _mm_srli_si128::<8>(lo), hi, _mm_srli_si128::<8>(hi)].into_iter().enumerate() {
                let v = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(part)), o);
                acc[k & 1] = _mm256_fmadd_ps(v, _mm256_loadu_ps(xs.as_ptr().add(8 * k)), acc[k & 1]);
            }
        }
        hsum(_mm256_add_ps(acc[0], acc[1]))
    }

    /// The 256 values of a Q4_K, Q5_K or Q6_K block at `p`, 32 a vector (one per byte), in order.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn k_values(ty: GgmlType, p: *const u8) -> [__m256i; 8] {
        let load = |at: usize| _mm256_loadu_si256(p.add(at) as *const __m256i);
        let nibble = _mm256_set1_epi8(0x0F);
        let mut v = [_mm256_setzero_si256(); 8];
        if ty == GgmlType::Q6_K {
            let two = _mm256_set1_epi8(0x30);
            for n in 0..2 {
                let (ql0, ql1, qh) = (load(64 * n), load(64 * n + 32), load(128 + 32 * n));
                let top = [_mm256_slli_epi16(qh, 4), _mm256_slli_epi16(qh, 2), qh, _mm256_srli_epi16(qh, 2)];
                let low = [ql0, ql1, _mm256_srli_epi16(ql0, 4), _mm256_srli_epi16(ql1, 4)];
                for s in 0..4 {
                    v[4 * n + s] = _mm256_or_si256(_mm256_and_si256(low[s], nibble), _mm256_and_si256(top[s], two));
                }
            }
            return v;
        }
        let (high, qs) = if ty == GgmlType::Q4_K { (_mm256_setzero_si256(), 16) } else { (load(16), 48) };
        let fifth = |h: __m256i| _mm256_slli_epi16(_mm256_and_si256(h, _mm256_set1_epi8(1)), 4);
        for c in 0..4 {
            let q = load(qs + 32 * c);
            // The fifth bits of chunk c: bit 2c of each byte of `high` for the low nibbles,
            // bit 2c + 1 for the high ones.
            let h = _mm256_srl_epi16(high, _mm_cvtsi32_si128(2 * c as i32));
            v[2 * c] = _mm256_or_si256(_mm256_and_si256(q, nibble), fifth(h));
            v[2 * c + 1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), nibble), fifth(_mm256_srli_epi16(h, 1)));
        }
        v
    }

    /// [`unpack`] with vector instructions for the K-quants' values (the scales stay scalar).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn unpack_fast(ty: GgmlType, b: &[u8], g: &mut Groups) {
        let p = b.as_ptr();
        match ty {
            GgmlType::Q4_K | GgmlType::Q5_K => {
                let (d, dmin) = (f16(p), f16(p.add(2)));
                for j in 0..8 {
                    let (sc, m) = scale_min_k4(j, &b[4..16]);
                    g.scale[2 * j..2 * j + 2].fill(d * sc as f32);
                    g.offset[2 * j..2 * j + 2].fill(-dmin * m as f32);
                }
            }
            GgmlType::Q6_K => {
                let d = f16(p.add(208));
                for (k, &s) in b[192..208].iter().enumerate() {
                    g.scale[k] = d * (s as i8) as f32;
                    g.offset[k] = -32.0 * g.scale[k];
                }
            }
            _ => return unpack(ty, b, g),
        }
        for (l, v) in k_values(ty, p).into_iter().enumerate() {
            _mm256_storeu_si256(g.q.as_mut_ptr().add(32 * l) as *mut __m256i, v);
        }
    }

    /// Q4_K, Q5_K and Q6_K by 8-bit activations in registers: each 32 values' products are
    /// multiplied by their groups' integer scales in the same multiply-add that sums them,
    /// then by `d` times the activations' block scale; the minimums (Q6_K: the offset of 32)
    /// by the activations' block (half-block) sums, eight (sixteen) at a time.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot_int8_k(ty: GgmlType, w: &[u8], x: &Quantized, blocks: Range<usize>) -> f32 {
        let size = ty.block().1;
        let n = blocks.len() / 8;
        assert!(w.len() >= n * size && x.d.len() >= blocks.end && x.qs.len() >= 32 * blocks.end && x.half_sums.len() >= 2 * blocks.end);
        let mut acc = [_mm256_setzero_ps(); 2];
        let mut offsets = _mm256_setzero_ps();
        let i16x2 = |a: i16, b: i16| _mm256_set_m128i(_mm_set1_epi16(b), _mm_set1_epi16(a));
        for (i, b) in w.chunks_exact(size).take(n).enumerate() {
            let p = b.as_ptr();
            _mm_prefetch::<_MM_HINT_T0>((p as *const i8).wrapping_add(1024));
            let first = blocks.start + 8 * i;
            let mut scales = [_mm256_setzero_si256(); 8];
            let d = if ty == GgmlType::Q6_K {
                let (d, sc) = (f16(p.add(208)), &b[192..208]);
                for (l, s) in scales.iter_mut().enumerate() {
                    *s = i16x2(sc[2 * l] as i8 as i16, sc[2 * l + 1] as i8 as i16);
                }
                let f = |at: usize| _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(sc.as_ptr().add(at) as *const __m128i)));
                let hs = x.half_sums.as_ptr().add(2 * first);
                let t = _mm256_fmadd_ps(f(0), _mm256_loadu_ps(hs), _mm256_mul_ps(f(8), _mm256_loadu_ps(hs.add(8))));
                offsets = _mm256_fmadd_ps(_mm256_set1_ps(-32.0 * d), t, offsets);
                d
            } else {
                let (d, dmin) = (f16(p), f16(p.add(2)));
                let mut mins = [0f32; 8];
                for (j, (s, m)) in scales.iter_mut().zip(mins.iter_mut()).enumerate() {
                    let (sc, mn) = scale_min_k4(j, &b[4..16]);
                    (*s, *m) = (_mm256_set1_epi16(sc as i16), mn as f32);
                }
                let sums = _mm256_loadu_ps(x.sums.as_ptr().add(first));
                offsets = _mm256_fmadd_ps(_mm256_set1_ps(-dmin), _mm256_mul_ps(_mm256_loadu_ps(mins.as_ptr()), sums), offsets);
                d
            };
            let ds = _mm256_mul_ps(_mm256_set1_ps(d), _mm256_loadu_ps(x.d.as_ptr().add(first)));
            for (l, v) in k_values(ty, p).into_iter().enumerate() {
                let xq = _mm256_loadu_si256(x.qs.as_ptr().add(32 * (first + l)) as *const __m256i);
                let prod = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(v, xq), scales[l]));
                let s = _mm256_permutevar8x32_ps(ds, _mm256_set1_epi32(l as i32));
                acc[l & 1] = _mm256_fmadd_ps(s, prod, acc[l & 1]);
            }
        }
        hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), offsets))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn f16(p: *const u8) -> f32 {
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128((p as *const u16).read_unaligned() as i32)))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_f32(ty: GgmlType, w: &[u8], x: &[f32]) -> f32 {
        if matches!(ty, GgmlType::Q5_0 | GgmlType::Q5_1) {
            return dot_q5(ty, w, x);
        }
        let (qk, size) = ty.block();
        let mut g = Groups::new();
        let mut acc = [_mm256_setzero_ps(); 2];
        for (b, xs) in w.chunks_exact(size).zip(x.chunks_exact(qk)) {
            _mm_prefetch::<_MM_HINT_T0>((b.as_ptr() as *const i8).wrapping_add(1024));
            unpack_fast(ty, b, &mut g);
            for k in 0..qk / 16 {
                let [v0, v1] = values(&g, k);
                let xp = xs.as_ptr().add(16 * k);
                acc[0] = _mm256_fmadd_ps(v0, _mm256_loadu_ps(xp), acc[0]);
                acc[1] = _mm256_fmadd_ps(v1, _mm256_loadu_ps(xp.add(8)), acc[1]);
            }
        }
        hsum(_mm256_add_ps(acc[0], acc[1]))
    }

    /// Each 32 values' integer products in eight lanes (four per group of 16), scaled by
    /// their group's scale times the activations' block scale.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_int8(ty: GgmlType, w: &[u8], x: &Quantized, blocks: Range<usize>) -> f32 {
        if matches!(ty, GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K) {
            return dot_int8_k(ty, w, x, blocks);
        }
        let (qk, size) = ty.block();
        let n = blocks.len() * 32 / qk;
        assert!(w.len() >= n * size && x.d.len() >= blocks.end && x.qs.len() >= 32 * blocks.end);
        let mut g = Groups::new();
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); 2];
        let mut offsets = _mm256_setzero_ps();
        let mut offset = 0.0;
        for (i, wb) in w.chunks_exact(size).take(n).enumerate() {
            _mm_prefetch::<_MM_HINT_T0>((wb.as_ptr() as *const i8).wrapping_add(1024));
            unpack_fast(ty, wb, &mut g);
            let first = blocks.start + i * qk / 32;
            for l in 0..qk / 32 {
                let b = first + l;
                let q = _mm256_loadu_si256(g.q.as_ptr().add(32 * l) as *const __m256i);
                let xq = _mm256_loadu_si256(x.qs.as_ptr().add(32 * b) as *const __m256i);
                let p = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(q, xq), ones));
                let xd = *x.d.get_unchecked(b);
                let s = _mm256_set_m128(_mm_set1_ps(g.scale[2 * l + 1] * xd), _mm_set1_ps(g.scale[2 * l] * xd));
                acc[l & 1] = _mm256_fmadd_ps(s, p, acc[l & 1]);
            }
            let sums = &x.half_sums[2 * first..2 * first + qk / 16];
            if qk == 256 {
                for h in 0..2 {
                    let o = _mm256_loadu_ps(g.offset.as_ptr().add(8 * h));
                    offsets = _mm256_fmadd_ps(o, _mm256_loadu_ps(sums.as_ptr().add(8 * h)), offsets);
                }
            } else {
                offset += g.offset[0] * sums[0] + g.offset[1] * sums[1];
            }
        }
        hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), offsets)) + offset
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dequantize(ty: GgmlType, bytes: &[u8], out: &mut [f32]) {
        let (qk, size) = ty.block();
        let mut g = Groups::new();
        for (b, y) in bytes.chunks_exact(size).zip(out.chunks_exact_mut(qk)) {
            unpack_fast(ty, b, &mut g);
            for k in 0..qk / 16 {
                let [v0, v1] = values(&g, k);
                _mm256_storeu_ps(y.as_mut_ptr().add(16 * k), v0);
                _mm256_storeu_ps(y.as_mut_ptr().add(16 * k + 8), v1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::quants::dequantize as reference;
    use crate::kernels::int8::{dot as dot_int8, quantize, Isa};

    /// Blocks of `ty` from seeded bytes, with every f16 (scales, minimums) a plausible value.
    fn blocks(ty: GgmlType, n: usize, seed: usize) -> Vec<u8> {
        let (qk, size) = ty.block();
        let mut bytes: Vec<u8> = (0..n / qk * size).map(|i| (((i + seed) * 2654435761usize) >> 9) as u8).collect();
        let halves: &[usize] = match ty {
            GgmlType::Q5_0 | GgmlType::Q6_K => &[if ty == GgmlType::Q5_0 { 0 } else { 208 }],
            GgmlType::Q2_K => &[80, 82],
            GgmlType::Q3_K => &[108],
            _ => &[0, 2],
        };
        for (b, block) in bytes.chunks_exact_mut(size).enumerate() {
            for (k, &at) in halves.iter().enumerate() {
                let v = if k == 0 { 0.001 + ((b + seed) % 11) as f32 * 0.0007 } else { 0.0005 + ((b + seed) % 5) as f32 * 0.0003 };
                let v = if ty == GgmlType::Q5_1 && k == 1 { -40.0 * v } else { v };
                block[at..at + 2].copy_from_slice(&half::f16::from_f32(v).to_le_bytes());
            }
        }
        bytes
    }

    const TYPES: [GgmlType; 7] = [GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K];

    /// The unpacked values equal the dequantizer's (itself checked against `gguf`), on the
    /// scalar and the vector path (a zero may differ in sign).
    #[test]
    fn unpacked_values_are_the_dequantizers() {
        for ty in TYPES {
            let n = 4 * 256;
            let w = blocks(ty, n, 7);
            let want = reference(ty, &w, n).unwrap();
            let (qk, size) = ty.block();
            let mut g = Groups::new();
            for (b, block) in w.chunks_exact(size).enumerate() {
                unpack(ty, block, &mut g);
                for i in 0..qk {
                    let v = g.scale[i / 16] * g.q[i] as f32 + g.offset[i / 16];
                    assert!(v == want[b * qk + i], "{ty:?} block {b} value {i}: {v} vs {}", want[b * qk + i]);
                }
            }
            let mut fast = vec![f32::NAN; n];
            if dequantize(ty, &w, &mut fast) {
                assert!(fast.iter().zip(&want).all(|(a, b)| a == b), "{ty:?}");
            }
        }
    }

    /// Both kernels, on every path this CPU has, against the f64 dot product of the dequantized
    /// weights with the activations (the 8-bit kernel: with the activations it multiplies).
    #[test]
    fn dot_products_equal_the_f64_dot_of_dequantized_weights() {
        for ty in TYPES {
            for (n, seed) in [(256, 1), (768, 2), (2048, 3)] {
                let w = blocks(ty, n, seed);
                let dense = reference(ty, &w, n).unwrap();
                let mut x: Vec<f32> = (0..n).map(|i| (((i + seed) * 104729) % 997) as f32 / 498.0 - 1.0).collect();
                x[..32].fill(0.0);
                x.iter_mut().skip(40).step_by(9).for_each(|v| *v *= 50.0);
                let want: f64 = dense.iter().zip(&x).map(|(a, b)| *a as f64 * *b as f64).sum();
                let scale: f64 = dense.iter().zip(&x).map(|(a, b)| (*a as f64 * *b as f64).abs()).sum();
                let mut got = vec![dot_f32_scalar(ty, &w, &x)];
                #[cfg(target_arch = "x86_64")]
                if super::super::has_avx2() {
                    got.push(unsafe { x86::dot_f32(ty, &w, &x) });
                }
                for g in got {
                    assert!((g as f64 - want).abs() <= 1e-5 * scale + 1e-6, "{ty:?} n {n}: {g} vs {want}");
                }
                // Offset by one row of blocks: the activation blocks named are used.
                let mut xx = vec![0.5f32; n];
                xx.extend_from_slice(&x);
                let q = quantize(&xx);
                let xd: Vec<f64> = q.qs.iter().enumerate().map(|(i, &v)| v as f64 * q.d[i / 32] as f64).skip(n).collect();
                let want: f64 = dense.iter().zip(&xd).map(|(a, b)| *a as f64 * b).sum();
                for isa in Isa::available() {
                    let g = dot_int8(isa, ty, &w, &q, n / 32..2 * n / 32) as f64;
                    assert!((g - want).abs() <= 1e-5 * scale + 1e-6, "{ty:?} {isa:?} n {n}: {g} vs {want}");
                }
            }
        }
    }
}
