//! T5: RMS-style layer norms (no mean, no bias), relative position buckets whose bias the
//! first layer of each stack holds and all its layers share, unscaled attention scores,
//! and a ReLU (v1.0) or gated-GELU (v1.1, Flan-T5) feed-forward. Follows transformers'
//! `modeling_t5.py`.

use tch::{Kind, Tensor};

use super::seq2seq::{
    causal_bias, check_encoder_out, check_ids, check_vocab, padding_bias, start_cpu_step, Attention, CacheSlot, CpuSlot,
    ScoreBias, Seq2Seq, Seq2SeqCache, StackShape,
};
use super::{dropout, Linear, Loader, Seq2SeqConfig, Weight};
use crate::error::Result;
use crate::kernels::{add_to, rms_norm_rows};

struct FeedForward {
    /// `wi`, or `wi_0` and `wi_1` fused (outputs `[gate, linear]`) when gated.
    wi: Linear,
    wo: Linear,
    /// The inner width (`wo`'s input): where a gated `wi`'s output splits.
    width: usize,
}

struct Layer {
    attn_norm: Weight,
    attn: Attention,
    /// Decoder layers only: the norm and attention over the encoder output.
    cross: Option<(Weight, Attention)>,
    ffn_norm: Weight,
    ffn: FeedForward,
}

/// One stack (encoder or decoder) and its relative position bias table `[buckets, heads]`.
struct Stack {
    layers: Vec<Layer>,
    relative_bias: Weight,
    final_norm: Weight,
}

pub(crate) struct T5 {
    cfg: Seq2SeqConfig,
    shared: Weight,
    encoder: Stack,
    decoder: Stack,
    head: Linear,
    /// The activations' kind.
    kind: Kind,
    /// Whether every weight a decoder step reads is f32 on the CPU, so that
    /// [`Seq2Seq::decode_cpu`] can run: known at load, as weights never change.
    cpu_step: bool,
}

impl T5 {
    pub fn load(cfg: &Seq2SeqConfig, w: &Loader) -> Result<Self> {
        let (d, v) = (cfg.hidden_size as i64, cfg.vocab_size as i64);
        // transformers saves the embedding once as `shared`; older exports kept the stacks' copies.
        let shared = match w.get_opt("shared.weight", &[v, d])? {
            Some(s) => s,
            None => w.get("encoder.embed_tokens.weight", &[v, d])?,
        };
        // A separate head (T5 v1.1, Flan-T5) when the checkpoint has one, else the embedding.
        let head = match w.get_opt("lm_head.weight", &[v, d])? {
            Some(h) => Linear::from_weight(&h, None),
            None => Linear::from_weight(&shared, None),
        }
        .quantized(w)?;
        Ok(T5 {
            encoder: Stack::load(cfg, w, "encoder", cfg.encoder_shape())?,
            decoder: Stack::load(cfg, w, "decoder", cfg.decoder_shape())?,
            cfg: cfg.clone(),
            shared,
            head,
            kind: w.act,
            cpu_step: false,
        }
        .with_cpu_step())
    }

    fn with_cpu_step(mut self) -> Self {
        self.cpu_step = self.decoder_on_kernels();
        self
    }

    fn norm(&self, x: &Tensor, weight: &Weight) -> Result<Tensor> {
        Ok(x.f_rms_norm([self.cfg.hidden_size as i64], Some(&**weight), self.cfg.norm_eps)?)
    }

    fn feed_forward(&self, f: &FeedForward, x: &Tensor) -> Result<Tensor> {
        let h = if self.cfg.gated {
            let parts = f.wi.forward_parts(x, &[f.width as i64; 2])?;
            self.cfg.activation.apply(&parts[0])?.f_mul(&parts[1])?
        } else {
            self.cfg.activation.apply(&f.wi.forward(x)?)?
        };
        f.wo.forward(&dropout(h, self.cfg.dropout.activation)?)
    }

    /// [`T5::feed_forward`] of the `m` rows of `x` on CPU slices.
    fn feed_forward_cpu(&self, f: &FeedForward, x: &[f32], m: usize) -> Result<Vec<f32>> {
        let mut h = vec![0.0; m * f.wi.out_features()];
        f.wi.matvec(x, &mut h);
        let h = if self.cfg.gated {
            // Each row holds [gate, linear].
            let ff = f.width;
            let mut gate: Vec<f32> = h.chunks_exact(2 * ff).flat_map(|r| &r[..ff]).copied().collect();
            self.cfg.activation.apply_slice(&mut gate)?;
            let linear = h.chunks_exact(2 * ff).flat_map(|r| &r[ff..]);
            gate.iter_mut().zip(linear).for_each(|(g, l)| *g *= l);
            gate
        } else {
            self.cfg.activation.apply_slice(&mut h)?;
            h
        };
        let mut y = vec![0.0; m * self.cfg.hidden_size];
        f.wo.matvec(&h, &mut y);
        Ok(y)
    }

    /// Whether every weight a decoder step reads is f32 on the CPU, for [`Seq2Seq::decode_cpu`].
    fn decoder_on_kernels(&self) -> bool {
        let norms = self.decoder.layers.iter().flat_map(|l| [&l.attn_norm, &l.ffn_norm].into_iter().chain(l.cross.as_ref().map(|c| &c.0)));
        self.shared.f32_slice().is_some()
            && self.head.on_kernels()
            && self.decoder.final_norm.f32_slice().is_some()
            && norms.into_iter().all(|n| n.f32_slice().is_some())
            && self.decoder.layers.iter().all(|l| {
                l.attn.on_kernels() && l.cross.as_ref().is_none_or(|c| c.1.on_kernels()) && l.ffn.wi.on_kernels() && l.ffn.wo.on_kernels()
            })
    }

    /// The relative position bias `[1, heads, q_len, past + q_len]` of queries at
    /// `past..past + q_len` over keys at `0..past + q_len`. It depends only on key minus
    /// query, so the buckets are computed once per distance and each query's row is a
    /// window of them.
    fn position_bias(&self, table: &Weight, q_len: i64, past: i64, bidirectional: bool) -> Result<Tensor> {
        let keys = past + q_len;
        // Distances from the first query's farthest key, -(keys - 1), to the last query's
        // nearest future key, q_len - 1.
        let relative = Tensor::f_arange_start(1 - keys, q_len, (Kind::Int64, table.device()))?;
        let buckets = relative_buckets(&relative, bidirectional, self.cfg.relative_buckets as i64, self.cfg.relative_max_distance as i64)?;
        let bias = Tensor::f_embedding(table, &buckets, -1, false, false)?; // [distances, heads]
        // Window w holds distances for the query q_len - 1 - w: flipped, row i is query i.
        let rows = bias.f_unfold(0, keys, 1)?.f_flip([0])?; // [q_len, heads, keys]
        Ok(rows.f_permute([1, 0, 2])?.f_unsqueeze(0)?.f_to_kind(self.kind)?.f_contiguous()?)
    }
}

/// The bucket of each relative position (key minus query), as transformers'
/// `T5Attention._relative_position_bucket` computes it, in the same libtorch operations so
/// that the logarithmic buckets' boundaries fall where they fall there: half the buckets
/// (per direction, when bidirectional) are exact distances, the rest grow logarithmically
/// up to `max_distance`.
fn relative_buckets(relative: &Tensor, bidirectional: bool, num_buckets: i64, max_distance: i64) -> Result<Tensor> {
    let (mut n, mut buckets) = (num_buckets, relative.f_zeros_like()?);
    let distance = if bidirectional {
        n /= 2;
        buckets = relative.f_gt(0)?.f_to_kind(Kind::Int64)?.f_mul_scalar(n)?;
        relative.f_abs()?
    } else {
        relative.f_clamp_max(0)?.f_neg()?
    };
    let max_exact = n / 2;
    let is_small = distance.f_lt(max_exact)?;
    let large = distance
        .f_to_kind(Kind::Float)?
        .f_div_scalar(max_exact)?
        .f_log()?
        .f_div_scalar((max_distance as f64 / max_exact as f64).ln())?
        .f_mul_scalar(n - max_exact)?
        .f_to_kind(Kind::Int64)?
        .f_add_scalar(max_exact)?
        .f_clamp_max(n - 1)?;
    Ok(buckets.f_add(&distance.f_where_self(&is_small, &large)?)?)
}

impl Stack {
    fn load(cfg: &Seq2SeqConfig, w: &Loader, stack: &str, shape: StackShape) -> Result<Self> {
        let (d, ff) = (cfg.hidden_size as i64, shape.ffn as i64);
        let dims = [d, shape.heads as i64, shape.head_dim as i64];
        let decoder = stack == "decoder";
        let mut layers = Vec::with_capacity(shape.layers);
        for i in 0..shape.layers {
            // Sub-layers: 0 self-attention, 1 cross-attention (decoder), then feed-forward.
            let sub = |j: usize, rest: &str| format!("{stack}.block.{i}.layer.{j}.{rest}");
            let ffn_at = if decoder { 2 } else { 1 };
            let qkvo = ["q", "k", "v", "o"];
            let cross = if decoder {
                Some((w.get(&sub(1, "layer_norm.weight"), &[d])?, Attention::load(w, &sub(1, "EncDecAttention"), qkvo, dims, false, 1.0, cfg.dropout.attention)?))
            } else {
                None
            };
            let wi = if cfg.gated {
                Linear::fuse(vec![
                    Linear::load(w, &sub(ffn_at, "DenseReluDense.wi_0"), ff, d, false)?,
                    Linear::load(w, &sub(ffn_at, "DenseReluDense.wi_1"), ff, d, false)?,
                ])?
            } else {
                Linear::load(w, &sub(ffn_at, "DenseReluDense.wi"), ff, d, false)?
            };
            layers.push(Layer {
                attn_norm: w.get(&sub(0, "layer_norm.weight"), &[d])?,
                attn: Attention::load(w, &sub(0, "SelfAttention"), qkvo, dims, false, 1.0, cfg.dropout.attention)?,
                cross,
                ffn_norm: w.get(&sub(ffn_at, "layer_norm.weight"), &[d])?,
                ffn: FeedForward { wi, wo: Linear::load(w, &sub(ffn_at, "DenseReluDense.wo"), d, ff, false)?, width: shape.ffn },
            });
        }
        let table = format!("{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight");
        Ok(Stack {
            layers,
            relative_bias: w.get(&table, &[cfg.relative_buckets as i64, shape.heads as i64])?,
            final_norm: w.get(&format!("{stack}.final_layer_norm.weight"), &[d])?,
        })
    }
}

impl Seq2Seq for T5 {
    fn encode(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (_, s) = check_ids("input_ids", ids, Some(mask))?;
        check_vocab("input_ids", ids, self.cfg.vocab_size)?;
        let bias = self.position_bias(&self.encoder.relative_bias, s, 0, true)?.f_add(&padding_bias(mask)?)?;
        let p = self.cfg.dropout.hidden;
        let mut x = dropout(Tensor::f_embedding(&self.shared, ids, -1, false, false)?.f_to_kind(self.kind)?, p)?;
        for l in &self.encoder.layers {
            x = x.f_add(&dropout(l.attn.forward(&self.norm(&x, &l.attn_norm)?, Some(&bias), None)?, p)?)?;
            x = x.f_add(&dropout(self.feed_forward(&l.ffn, &self.norm(&x, &l.ffn_norm)?)?, p)?)?;
        }
        dropout(self.norm(&x, &self.encoder.final_norm)?, p)
    }

    fn new_cache(&self, batch: usize, capacity: usize) -> Result<Seq2SeqCache> {
        let shape = [batch as i64, self.cfg.decoder_heads as i64, self.cfg.decoder_head_dim as i64];
        Seq2SeqCache::new(self.decoder.layers.len(), shape, capacity, self.kind, self.shared.device())
    }

    fn decode(&self, ids: &Tensor, encoder_out: &Tensor, encoder_mask: &Tensor, cache: &mut Seq2SeqCache) -> Result<Tensor> {
        let (b, t) = check_ids("decoder_input_ids", ids, None)?;
        check_vocab("decoder_input_ids", ids, self.cfg.vocab_size)?;
        check_encoder_out(encoder_out, encoder_mask, b, self.cfg.hidden_size)?;
        let past = cache.len() as i64;
        // Future keys fall in bucket 0 with the present one; only the mask hides them.
        let mut self_bias = self.position_bias(&self.decoder.relative_bias, t, past, false)?;
        if t > 1 {
            self_bias = self_bias.f_add(&causal_bias(t, past, ids.device())?)?;
        }
        let cross_bias = padding_bias(encoder_mask)?;
        let p = self.cfg.dropout.hidden;
        let mut x = dropout(Tensor::f_embedding(&self.shared, ids, -1, false, false)?.f_to_kind(self.kind)?, p)?;
        for (i, l) in self.decoder.layers.iter().enumerate() {
            let a = l.attn.forward(&self.norm(&x, &l.attn_norm)?, Some(&self_bias), Some(CacheSlot::SelfAttn(cache, i)))?;
            x = x.f_add(&dropout(a, p)?)?;
            if let Some((norm, cross)) = &l.cross {
                let slot = CacheSlot::Cross(cache, i, encoder_out);
                x = x.f_add(&dropout(cross.forward(&self.norm(&x, norm)?, Some(&cross_bias), Some(slot))?, p)?)?;
            }
            x = x.f_add(&dropout(self.feed_forward(&l.ffn, &self.norm(&x, &l.ffn_norm)?)?, p)?)?;
        }
        cache.advance(t as usize);
        let mut x = dropout(self.norm(&x, &self.decoder.final_norm)?, p)?;
        if self.cfg.scale_decoder_outputs {
            x = x.f_mul_scalar((self.cfg.hidden_size as f64).powf(-0.5))?;
        }
        Ok(self.head.forward(&x)?.f_to_kind(Kind::Float)?)
    }

    /// The same arithmetic as [`T5::decode`] for one token per row: a step there makes some
    /// 40 libtorch calls per layer, whose dispatch costs a third of the step.
    fn decode_cpu(&self, tokens: &[u32], encoder_out: &Tensor, encoder_mask: &Tensor, cache: &mut Seq2SeqCache) -> Result<Option<Vec<f32>>> {
        let (m, d, vocab, eps) = (tokens.len(), self.cfg.hidden_size, self.cfg.vocab_size, self.cfg.norm_eps);
        if m == 0 || !self.cpu_step {
            return Ok(None);
        }
        let cross = self.decoder.layers.iter().enumerate().filter_map(|(i, l)| Some((i, &l.cross.as_ref()?.1)));
        let Some(cross_bias) = start_cpu_step(tokens, [vocab, d], [encoder_out, encoder_mask], cache, cross)? else { return Ok(None) };
        let (Some(shared), Some(final_norm)) = (self.shared.f32_slice(), self.decoder.final_norm.f32_slice()) else { return Ok(None) };
        let norm = |x: &[f32], w: &Weight| rms_norm_rows(x, w.f32_slice().unwrap_or_default(), eps);
        let past = cache.len();
        let bias = self.position_bias(&self.decoder.relative_bias, 1, past as i64, false)?;
        let self_bias = Vec::<f32>::try_from(bias.f_to_kind(Kind::Float)?.f_contiguous()?.f_view([-1])?)?;
        let self_bias = ScoreBias { data: &self_bias, row_stride: 0, head_stride: past + 1 };
        let cross_bias = ScoreBias::per_row(&cross_bias, m);
        let mut x: Vec<f32> = tokens.iter().flat_map(|&t| &shared[t as usize * d..(t as usize + 1) * d]).copied().collect();
        for (i, l) in self.decoder.layers.iter().enumerate() {
            let a = l.attn.step_cpu(&norm(&x, &l.attn_norm), m, CpuSlot::SelfAttn(cache, i), &self_bias)?;
            add_to(&mut x, &a);
            if let Some((n, cross)) = &l.cross {
                let a = cross.step_cpu(&norm(&x, n), m, CpuSlot::Cross(cache, i), &cross_bias)?;
                add_to(&mut x, &a);
            }
            let f = self.feed_forward_cpu(&l.ffn, &norm(&x, &l.ffn_norm), m)?;
            add_to(&mut x, &f);
        }
        cache.advance(1);
        let mut x = rms_norm_rows(&x, final_norm, eps);
        if self.cfg.scale_decoder_outputs {
            let scale = (d as f64).powf(-0.5) as f32;
            x.iter_mut().for_each(|v| *v *= scale);
        }
        let mut logits = vec![0.0; m * vocab];
        self.head.matvec(&x, &mut logits);
        Ok(Some(logits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// transformers' `T5Attention._relative_position_bucket` on these distances (key minus query).
    const RELATIVE: [i64; 23] = [-200, -40, -21, -20, -19, -12, -8, -5, -4, -3, -1, 0, 1, 3, 4, 5, 8, 12, 19, 20, 21, 40, 200];

    fn buckets(bidirectional: bool, n: i64, max_distance: i64) -> Vec<i64> {
        let rel = Tensor::from_slice(&RELATIVE);
        Vec::<i64>::try_from(relative_buckets(&rel, bidirectional, n, max_distance).unwrap()).unwrap()
    }

    #[test]
    fn relative_buckets_match_transformers_in_the_encoder() {
        assert_eq!(buckets(true, 16, 20), [7, 7, 7, 7, 7, 6, 5, 4, 4, 3, 1, 0, 9, 11, 12, 12, 13, 14, 15, 15, 15, 15, 15]);
        assert_eq!(buckets(true, 32, 128), [15, 12, 10, 10, 10, 9, 8, 5, 4, 3, 1, 0, 17, 19, 20, 21, 24, 25, 26, 26, 26, 28, 31]);
    }

    #[test]
    fn relative_buckets_match_transformers_in_the_decoder() {
        assert_eq!(buckets(false, 16, 20), [15, 15, 15, 15, 15, 11, 8, 5, 4, 3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(buckets(false, 32, 128), [31, 23, 18, 17, 17, 12, 8, 5, 4, 3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    }
}
