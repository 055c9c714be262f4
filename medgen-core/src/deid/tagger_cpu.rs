//! The tagger's network for inference, on the CPU without libtorch: the same arithmetic as
//! [`super::tagger::Tagger::forward`] (which training differentiates), in medgen's packed
//! matrix kernel ([`crate::kernels::gemm`]). A text runs in windows of [`WINDOW`] tokens
//! with [`MARGIN`] tokens of context either side, cut at the text's ends: each window's
//! centre equals one pass over the whole text, and memory stays bounded by a window.

use tch::Tensor;

use super::tagger::{TaggerConfig, FEATURES, LABELS, MARGIN, WINDOW};
use crate::error::{MedgenError, Result};
use crate::kernels::gemm::{gemm, Packed};
use crate::kernels;

/// One residual block: the convolution's three taps as linear layers.
struct Block {
    dilation: usize,
    taps: [Packed; 3],
    bias: Vec<f32>,
    norm_weight: Vec<f32>,
    norm_bias: Vec<f32>,
}

pub(crate) struct Cpu {
    embed: Vec<f32>,
    dim: usize,
    hidden: usize,
    input: Packed,
    input_bias: Vec<f32>,
    blocks: Vec<Block>,
    output: Packed,
    output_bias: Vec<f32>,
}

fn values(t: &Tensor) -> Result<Vec<f32>> {
    Ok(Vec::<f32>::try_from(t.f_detach()?.f_to_kind(tch::Kind::Float)?.f_contiguous()?.f_flatten(0, -1)?)?)
}

impl Cpu {
    /// From the tagger's parameters, in the order of [`TaggerConfig::shapes`] (shapes checked
    /// by the caller).
    pub fn new(config: &TaggerConfig, weights: &[&Tensor]) -> Result<Cpu> {
        let (dim, hidden) = (config.dim, config.hidden);
        if weights.len() != 5 + 4 * config.dilations.len() {
            return Err(MedgenError::format(format!("tagger: {} parameters for {} blocks", weights.len(), config.dilations.len())));
        }
        let mut blocks = Vec::new();
        for (i, &dilation) in config.dilations.iter().enumerate() {
            let w = &weights[3 + 4 * i..7 + 4 * i];
            // conv1d weight [out, in, 3]: tap j is [out, in] at stride 3.
            let conv = values(w[0])?;
            let tap = |j: usize| Packed::new(&conv.iter().skip(j).step_by(3).copied().collect::<Vec<_>>(), hidden, hidden);
            blocks.push(Block { dilation, taps: [tap(0), tap(1), tap(2)], bias: values(w[1])?, norm_weight: values(w[2])?, norm_bias: values(w[3])? });
        }
        let last = weights.len();
        Ok(Cpu {
            embed: values(weights[0])?,
            dim,
            hidden,
            input: Packed::new(&values(weights[1])?, hidden, dim),
            input_bias: values(weights[2])?,
            blocks,
            output: Packed::new(&values(weights[last - 2])?, LABELS, hidden),
            output_bias: values(weights[last - 1])?,
        })
    }

    /// Logits `[tokens, LABELS]` (row-major) of one text's feature ids (`FEATURES` per token,
    /// each below the embedding's rows).
    pub fn logits(&self, ids: &[i64]) -> Vec<f32> {
        let tokens = ids.len() / FEATURES;
        let mut out = vec![0.0; tokens * LABELS];
        let mut buffers = Buffers::default();
        for first in (0..tokens).step_by(WINDOW) {
            let (lo, hi) = (first.saturating_sub(MARGIN), (first + WINDOW + MARGIN).min(tokens));
            let centre = first - lo..(first + WINDOW).min(tokens) - lo;
            let logits = self.window(&ids[lo * FEATURES..hi * FEATURES], &mut buffers);
            out[first * LABELS..(first + centre.len()) * LABELS].copy_from_slice(&logits[centre.start * LABELS..centre.end * LABELS]);
        }
        out
    }

    /// The logits of every token of one window (positions outside it read as zeros).
    fn window<'a>(&self, ids: &[i64], b: &'a mut Buffers) -> &'a [f32] {
        let (n, h) = (ids.len() / FEATURES, self.hidden);
        let pad = self.blocks.iter().map(|b| b.dilation).max().unwrap_or(0);
        b.x.clear();
        b.x.resize(n * self.dim, 0.0);
        for (t, feats) in ids.chunks_exact(FEATURES).enumerate() {
            let x = &mut b.x[t * self.dim..(t + 1) * self.dim];
            for &f in feats {
                let row = &self.embed[f as usize * self.dim..(f as usize + 1) * self.dim];
                x.iter_mut().zip(row).for_each(|(x, w)| *x += w);
            }
        }
        // h: `pad` rows of zeros either side of the tokens' rows, what the convolutions read.
        b.h.clear();
        b.h.resize((n + 2 * pad) * h, 0.0);
        let rows = pad * h..(pad + n) * h;
        fill_rows(&mut b.h[rows.clone()], &self.input_bias);
        gemm(&b.x, self.dim, n, &self.input, &mut b.h[rows.clone()]);
        b.h[rows.clone()].iter_mut().for_each(|v| *v = v.max(0.0));
        b.c.resize(n * h, 0.0);
        for block in &self.blocks {
            fill_rows(&mut b.c, &block.bias);
            for (j, tap) in block.taps.iter().enumerate() {
                // Tap j reads position t + (j - 1) * dilation: row pad + t + (j - 1) * dilation.
                let first = pad + j * block.dilation - block.dilation;
                gemm(&b.h[first * h..], h, n, tap, &mut b.c);
            }
            b.h[rows.clone()].iter_mut().zip(&b.c).for_each(|(h, c)| *h += c.max(0.0));
            let normed = kernels::layer_norm_rows(&b.h[rows.clone()], &block.norm_weight, &block.norm_bias, 1e-5);
            b.h[rows.clone()].copy_from_slice(&normed);
        }
        b.logits.resize(n * LABELS, 0.0);
        fill_rows(&mut b.logits, &self.output_bias);
        gemm(&b.h[rows], h, n, &self.output, &mut b.logits);
        &b.logits[..n * LABELS]
    }
}

/// Work space of one text, reused from window to window.
#[derive(Default)]
struct Buffers {
    x: Vec<f32>,
    h: Vec<f32>,
    c: Vec<f32>,
    logits: Vec<f32>,
}

fn fill_rows(out: &mut [f32], row: &[f32]) {
    out.chunks_exact_mut(row.len()).for_each(|r| r.copy_from_slice(row));
}

#[cfg(test)]
mod tests {
    use super::super::tagger::Tagger;
    use super::*;
    use crate::deid::Category;

    /// The CPU network against libtorch's differentiable forward over the whole text in one
    /// row, with `MARGIN` masked positions either side: short texts, and one long enough for
    /// three windows.
    #[test]
    fn logits_equal_the_libtorch_forward_over_the_whole_text() {
        tch::manual_seed(7);
        let config = TaggerConfig { buckets: 97, dim: 8, hidden: 20, dilations: vec![1, 3, 5] };
        let tensors: Vec<(String, Tensor)> =
            config.shapes().into_iter().map(|(n, s)| (n, Tensor::randn(s.as_slice(), (tch::Kind::Float, tch::Device::Cpu)) * 0.5)).collect();
        let tagger = Tagger::from_tensors(config, [0.5; Category::ALL.len()], None, &tensors);
        let long = (0..300).map(|i| format!("Seen by Dr. Mere Tapsell on 3/{i}/2024.")).collect::<Vec<_>>().join(" ");
        for text in ["Patient Drew Castellanos called 2535550101.", "患者李建国", "x", "", long.as_str()] {
            let (tokens, ids) = tagger.features(text);
            let (n, m) = (tokens.len() as i64, MARGIN as i64);
            let want = tch::no_grad(|| {
                let ids = Tensor::from_slice(&ids).view([1, n, FEATURES as i64]).constant_pad_nd([0, 0, m, m]);
                let mask = Tensor::ones([1, n], (tch::Kind::Float, tch::Device::Cpu)).constant_pad_nd([m, m]);
                tagger.forward(&ids, &mask)
            })
            .unwrap()
            .narrow(1, m, n);
            let want = Vec::<f32>::try_from(want.flatten(0, -1)).unwrap();
            let got = &tagger.logits(&[text]).unwrap()[0].1;
            let got = Vec::<f32>::try_from(got.flatten(0, -1)).unwrap();
            assert_eq!(got.len(), want.len(), "{text:.20}");
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!((g - w).abs() < 1e-4 * (1.0 + w.abs()), "{text:.20}: token {} label {}: {g} != {w}", i / LABELS, i % LABELS);
            }
        }
        assert!(long.split_whitespace().count() > 2 * WINDOW / 3, "the long text spans several windows");
    }
}
