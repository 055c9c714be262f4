//! A small dense f32 matrix product for CPU inference of small networks (the PHI tagger):
//! `y[m, n] += x[m, k] · wᵀ` with `w` stored as a linear layer's `[n, k]` weight.
//!
//! The weight is packed once into panels of 16 output columns (`[panel][k][16]`, zero past
//! `n`), so that the inner loop reads 16 consecutive weights per step of `k` and broadcasts
//! one activation per row: six rows by sixteen columns stay in twelve AVX2 registers, enough
//! independent FMAs to hide their latency. One thread; no allocation per call. libtorch's
//! convolution picks and compiles a new kernel for every new shape, which costs more than
//! the arithmetic on notes of a few hundred tokens.

/// Output columns per panel: two AVX2 vectors.
const PANEL: usize = 16;
/// Rows of `x` per step of the AVX2 kernel.
const ROWS: usize = 6;

/// A `[n, k]` weight packed for [`gemm`].
#[derive(Clone, Debug)]
pub(crate) struct Packed {
    pub n: usize,
    pub k: usize,
    data: Vec<f32>,
}

impl Packed {
    /// Packs `w` (`[n, k]`, row-major: row `o` holds output `o`'s weights).
    pub fn new(w: &[f32], n: usize, k: usize) -> Packed {
        assert_eq!(w.len(), n * k, "a weight of [{n}, {k}] holds n * k values");
        let panels = n.div_ceil(PANEL);
        let mut data = vec![0.0; panels * k * PANEL];
        for o in 0..n {
            let (p, c) = (o / PANEL, o % PANEL);
            for i in 0..k {
                data[(p * k + i) * PANEL + c] = w[o * k + i];
            }
        }
        Packed { n, k, data }
    }
}

/// `y[r, o] += Σ_i x[r * ldx + i] * w[o, i]` for rows `r < m` (`y` is `[m, w.n]`). Row `r` of
/// `x` starts at `r * ldx` and holds at least `w.k` values.
pub(crate) fn gemm(x: &[f32], ldx: usize, m: usize, w: &Packed, y: &mut [f32]) {
    if m == 0 || w.n == 0 {
        return;
    }
    assert!(ldx >= w.k && x.len() >= (m - 1) * ldx + w.k && y.len() >= m * w.n, "gemm: slices too short for their shapes");
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2() {
        // SAFETY: AVX2 and FMA are present; the lengths were checked just above, and the
        // kernel reads rows `< m` of `x` (`w.k` values each) and writes rows `< m` of `y`.
        unsafe { avx2::gemm(x, ldx, m, w, y) };
        return;
    }
    for r in 0..m {
        let (xr, yr) = (&x[r * ldx..r * ldx + w.k], &mut y[r * w.n..(r + 1) * w.n]);
        for (o, y) in yr.iter_mut().enumerate() {
            let (p, c) = (o / PANEL, o % PANEL);
            let panel = &w.data[p * w.k * PANEL..];
            *y += xr.iter().enumerate().map(|(i, &v)| v * panel[i * PANEL + c]).sum::<f32>();
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{Packed, PANEL, ROWS};

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn gemm(x: &[f32], ldx: usize, m: usize, w: &Packed, y: &mut [f32]) {
        let mut r = 0;
        while r < m {
            let rows = (m - r).min(ROWS);
            for p in 0..w.n.div_ceil(PANEL) {
                let cols = (w.n - p * PANEL).min(PANEL);
                let args = (x.as_ptr().add(r * ldx), ldx, w.k, w.data.as_ptr().add(p * w.k * PANEL), y.as_mut_ptr().add(r * w.n + p * PANEL), w.n, cols);
                match rows {
                    6 => kernel::<6>(args),
                    5 => kernel::<5>(args),
                    4 => kernel::<4>(args),
                    3 => kernel::<3>(args),
                    2 => kernel::<2>(args),
                    _ => kernel::<1>(args),
                }
            }
            r += rows;
        }
    }

    type Args = (*const f32, usize, usize, *const f32, *mut f32, usize, usize);

    /// `R` rows of `x` times one panel, added to `cols` columns of `R` rows of `y`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn kernel<const R: usize>((x, ldx, k, panel, y, ldy, cols): Args) {
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        for i in 0..k {
            let b0 = _mm256_loadu_ps(panel.add(i * PANEL));
            let b1 = _mm256_loadu_ps(panel.add(i * PANEL + 8));
            for (r, acc) in acc.iter_mut().enumerate() {
                let a = _mm256_broadcast_ss(&*x.add(r * ldx + i));
                acc[0] = _mm256_fmadd_ps(a, b0, acc[0]);
                acc[1] = _mm256_fmadd_ps(a, b1, acc[1]);
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            let yr = y.add(r * ldy);
            if cols == PANEL {
                _mm256_storeu_ps(yr, _mm256_add_ps(_mm256_loadu_ps(yr), acc[0]));
                _mm256_storeu_ps(yr.add(8), _mm256_add_ps(_mm256_loadu_ps(yr.add(8)), acc[1]));
            } else {
                let mut t = [0f32; PANEL];
                _mm256_storeu_ps(t.as_mut_ptr(), acc[0]);
                _mm256_storeu_ps(t.as_mut_ptr().add(8), acc[1]);
                for (c, v) in t.iter().enumerate().take(cols) {
                    *yr.add(c) += v;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_equals_the_f64_product_for_every_edge_of_rows_and_panels() {
        for (m, n, k, ldx) in [(1, 1, 1, 1), (7, 37, 48, 48), (13, 128, 128, 130), (6, 16, 5, 5), (20, 33, 384, 400), (0, 4, 4, 4)] {
            let w: Vec<f32> = (0..n * k).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
            let x: Vec<f32> = (0..m * ldx).map(|i| ((i * 104729) % 997) as f32 / 498.0 - 1.0).collect();
            let start: Vec<f32> = (0..m * n).map(|i| (i % 5) as f32).collect();
            let mut y = start.clone();
            gemm(&x, ldx, m, &Packed::new(&w, n, k), &mut y);
            for r in 0..m {
                for o in 0..n {
                    let want = start[r * n + o] as f64 + (0..k).map(|i| x[r * ldx + i] as f64 * w[o * k + i] as f64).sum::<f64>();
                    let got = y[r * n + o] as f64;
                    assert!((got - want).abs() <= 1e-4 * (1.0 + want.abs()), "m {m} n {n} k {k}: [{r}, {o}] {got} != {want}");
                }
            }
        }
    }
}
