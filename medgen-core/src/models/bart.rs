//! BART: learned positions (offset by 2), optionally scaled token embeddings, a LayerNorm on
//! the embeddings, post-LayerNorm blocks with biased projections, and a head tied to the
//! token embedding plus `final_logits_bias`. Follows transformers' `modeling_bart.py`.

use tch::{Kind, Tensor};

use super::seq2seq::{
    causal_bias, check_encoder_out, check_ids, check_vocab, padding_bias, start_cpu_step, Attention, CacheSlot, CpuSlot,
    ScoreBias, Seq2Seq, Seq2SeqCache, StackShape,
};
use super::{dropout, LayerNorm, Linear, Loader, Seq2SeqConfig, Weight};
use crate::error::{MedgenError, Result};
use crate::kernels::add_to;

/// `BartLearnedPositionalEmbedding` looks up position `p` at row `p + 2`, a leftover of
/// fairseq's padding-aware positions.
const POSITION_OFFSET: i64 = 2;

struct Layer {
    attn: Attention,
    attn_norm: LayerNorm,
    /// Decoder layers only: attention over the encoder output and the norm after it.
    cross: Option<(Attention, LayerNorm)>,
    fc1: Linear,
    fc2: Linear,
    ffn_norm: LayerNorm,
}

struct Stack {
    /// The token embedding: `shared`, or the stack's own when untied.
    tokens: Weight,
    positions: Weight,
    embed_norm: LayerNorm,
    layers: Vec<Layer>,
}

pub(crate) struct Bart {
    cfg: Seq2SeqConfig,
    encoder: Stack,
    decoder: Stack,
    /// The tied (or separate) head with `final_logits_bias`.
    head: Linear,
    max_positions: i64,
    /// The activations' kind.
    kind: Kind,
    /// Whether every weight a decoder step reads is f32 on the CPU, so that
    /// [`Seq2Seq::decode_cpu`] can run: known at load, as weights never change.
    cpu_step: bool,
}

impl Bart {
    pub fn load(cfg: &Seq2SeqConfig, w: &Loader) -> Result<Self> {
        let (d, v) = (cfg.hidden_size as i64, cfg.vocab_size as i64);
        let max_positions = cfg.max_positions.ok_or_else(|| MedgenError::format("BART config lacks max_position_embeddings"))? as i64;
        // BartForConditionalGeneration nests the network under `model.`; BartModel does not.
        let p = if w.source.contains("model.encoder.embed_positions.weight") { "model." } else { "" };
        let (shared, from_encoder) = match w.get_opt(&format!("{p}shared.weight"), &[v, d])? {
            Some(s) => (s, false),
            None => (w.get(&format!("{p}encoder.embed_tokens.weight"), &[v, d])?, true),
        };
        // Untied (`tie_word_embeddings` false), transformers embeds each stack's tokens with
        // its own table (the encoder's may be the one read as `shared`, and is read once).
        let tokens = |stack: &str| -> Result<Weight> {
            let own = if cfg.tied_embeddings || (from_encoder && stack == "encoder") {
                None
            } else {
                w.get_opt(&format!("{p}{stack}.embed_tokens.weight"), &[v, d])?
            };
            Ok(own.unwrap_or_else(|| Weight(shared.shallow_clone())))
        };
        // A buffer of zeros in new models; checkpoints fine-tuned from fairseq may carry values.
        let bias = match w.get_opt("final_logits_bias", &[1, v])? {
            Some(b) => Weight(b.f_reshape([v])?.f_to_kind(w.act)?),
            None => Weight(Tensor::f_zeros([v], (w.act, w.device))?),
        };
        let head = match w.get_opt("lm_head.weight", &[v, d])? {
            Some(h) => Linear::from_weight(&h, Some(bias)),
            None => Linear::from_weight(&shared, Some(bias)),
        }
        .quantized(w)?;
        Ok(Bart {
            encoder: Stack::load(cfg, w, &format!("{p}encoder"), cfg.encoder_shape(), max_positions, false, tokens("encoder")?)?,
            decoder: Stack::load(cfg, w, &format!("{p}decoder"), cfg.decoder_shape(), max_positions, true, tokens("decoder")?)?,
            cfg: cfg.clone(),
            head,
            max_positions,
            kind: w.act,
            cpu_step: false,
        }
        .with_cpu_step())
    }

    fn with_cpu_step(mut self) -> Self {
        self.cpu_step = self.decoder_on_kernels();
        self
    }

    /// Scaled token embeddings plus positions `start..start + t`, through the embedding norm.
    fn embed(&self, stack: &Stack, ids: &Tensor, start: i64, t: i64) -> Result<Tensor> {
        if start + t > self.max_positions {
            return Err(MedgenError::context((start + t) as usize, self.max_positions as usize, "BART max_position_embeddings"));
        }
        let mut x = Tensor::f_embedding(&stack.tokens, ids, -1, false, false)?.f_to_kind(self.kind)?;
        if self.cfg.scale_embedding {
            x = x.f_mul_scalar((self.cfg.hidden_size as f64).sqrt())?;
        }
        let pos = stack.positions.f_narrow(0, start + POSITION_OFFSET, t)?.f_to_kind(self.kind)?;
        dropout(stack.embed_norm.forward(&x.f_add(&pos)?, self.cfg.norm_eps)?, self.cfg.dropout.embedding)
    }

    /// Whether every weight a decoder step reads is f32 on the CPU, for [`Seq2Seq::decode_cpu`].
    fn decoder_on_kernels(&self) -> bool {
        let layers = self.decoder.layers.iter().all(|l| {
            l.attn.on_kernels()
                && l.attn_norm.on_kernels()
                && l.cross.as_ref().is_none_or(|(a, n)| a.on_kernels() && n.on_kernels())
                && l.fc1.on_kernels()
                && l.fc2.on_kernels()
                && l.ffn_norm.on_kernels()
        });
        layers
            && self.decoder.tokens.f32_slice().is_some()
            && self.decoder.positions.f32_slice().is_some()
            && self.decoder.embed_norm.on_kernels()
            && self.head.on_kernels()
    }

    fn feed_forward(&self, l: &Layer, x: &Tensor) -> Result<Tensor> {
        let h = dropout(self.cfg.activation.apply(&l.fc1.forward(x)?)?, self.cfg.dropout.activation)?;
        let x = x.f_add(&dropout(l.fc2.forward(&h)?, self.cfg.dropout.hidden)?)?;
        l.ffn_norm.forward(&x, self.cfg.norm_eps)
    }
}

impl Stack {
    /// Loads a stack of `shape`'s sizes; a decoder's cross-attention has its self-attention's
    /// heads, over encoder states of the same width.
    fn load(cfg: &Seq2SeqConfig, w: &Loader, stack: &str, shape: StackShape, max_positions: i64, decoder: bool, tokens: Weight) -> Result<Self> {
        let (d, ff) = (cfg.hidden_size as i64, shape.ffn as i64);
        let dims = [d, shape.heads as i64, shape.head_dim as i64];
        let scale = (shape.head_dim as f64).powf(-0.5);
        let names = ["q_proj", "k_proj", "v_proj", "out_proj"];
        let mut layers = Vec::with_capacity(shape.layers);
        for i in 0..shape.layers {
            let at = |rest: &str| format!("{stack}.layers.{i}.{rest}");
            let cross = if decoder {
                Some((Attention::load(w, &at("encoder_attn"), names, dims, true, scale, cfg.dropout.attention)?, LayerNorm::load(w, &at("encoder_attn_layer_norm"), d)?))
            } else {
                None
            };
            layers.push(Layer {
                attn: Attention::load(w, &at("self_attn"), names, dims, true, scale, cfg.dropout.attention)?,
                attn_norm: LayerNorm::load(w, &at("self_attn_layer_norm"), d)?,
                cross,
                fc1: Linear::load(w, &at("fc1"), ff, d, true)?,
                fc2: Linear::load(w, &at("fc2"), d, ff, true)?,
                ffn_norm: LayerNorm::load(w, &at("final_layer_norm"), d)?,
            });
        }
        Ok(Stack {
            tokens,
            positions: w.get(&format!("{stack}.embed_positions.weight"), &[max_positions + POSITION_OFFSET, d])?,
            embed_norm: LayerNorm::load(w, &format!("{stack}.layernorm_embedding"), d)?,
            layers,
        })
    }
}

impl Seq2Seq for Bart {
    fn encode(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (_, s) = check_ids("input_ids", ids, Some(mask))?;
        check_vocab("input_ids", ids, self.cfg.vocab_size)?;
        let eps = self.cfg.norm_eps;
        let bias = padding_bias(mask)?;
        let mut x = self.embed(&self.encoder, ids, 0, s)?;
        for l in &self.encoder.layers {
            let a = dropout(l.attn.forward(&x, Some(&bias), None)?, self.cfg.dropout.hidden)?;
            x = l.attn_norm.forward(&x.f_add(&a)?, eps)?;
            x = self.feed_forward(l, &x)?;
        }
        Ok(x)
    }

    fn new_cache(&self, batch: usize, capacity: usize) -> Result<Seq2SeqCache> {
        let shape = [batch as i64, self.cfg.decoder_heads as i64, self.cfg.decoder_head_dim as i64];
        Seq2SeqCache::new(self.decoder.layers.len(), shape, capacity, self.kind, self.decoder.tokens.device())
    }

    fn decode(&self, ids: &Tensor, encoder_out: &Tensor, encoder_mask: &Tensor, cache: &mut Seq2SeqCache) -> Result<Tensor> {
        let (b, t) = check_ids("decoder_input_ids", ids, None)?;
        check_vocab("decoder_input_ids", ids, self.cfg.vocab_size)?;
        check_encoder_out(encoder_out, encoder_mask, b, self.cfg.hidden_size)?;
        let (past, eps) = (cache.len() as i64, self.cfg.norm_eps);
        let self_bias = if t > 1 { Some(causal_bias(t, past, ids.device())?) } else { None };
        let cross_bias = padding_bias(encoder_mask)?;
        let mut x = self.embed(&self.decoder, ids, past, t)?;
        for (i, l) in self.decoder.layers.iter().enumerate() {
            let p = self.cfg.dropout.hidden;
            let a = dropout(l.attn.forward(&x, self_bias.as_ref(), Some(CacheSlot::SelfAttn(cache, i)))?, p)?;
            x = l.attn_norm.forward(&x.f_add(&a)?, eps)?;
            if let Some((cross, norm)) = &l.cross {
                let a = dropout(cross.forward(&x, Some(&cross_bias), Some(CacheSlot::Cross(cache, i, encoder_out)))?, p)?;
                x = norm.forward(&x.f_add(&a)?, eps)?;
            }
            x = self.feed_forward(l, &x)?;
        }
        cache.advance(t as usize);
        Ok(self.head.forward(&x)?.f_to_kind(Kind::Float)?)
    }

    /// The same arithmetic as [`Bart::decode`] for one token per row, without libtorch's
    /// per-operation dispatch.
    fn decode_cpu(&self, tokens: &[u32], encoder_out: &Tensor, encoder_mask: &Tensor, cache: &mut Seq2SeqCache) -> Result<Option<Vec<f32>>> {
        let (m, d, vocab, eps) = (tokens.len(), self.cfg.hidden_size, self.cfg.vocab_size, self.cfg.norm_eps);
        if m == 0 || !self.cpu_step {
            return Ok(None);
        }
        let past = cache.len();
        if past as i64 + 1 > self.max_positions {
            return Err(MedgenError::context(past + 1, self.max_positions as usize, "BART max_position_embeddings"));
        }
        let cross = self.decoder.layers.iter().enumerate().filter_map(|(i, l)| Some((i, &l.cross.as_ref()?.0)));
        let Some(cross_bias) = start_cpu_step(tokens, [vocab, d], [encoder_out, encoder_mask], cache, cross)? else { return Ok(None) };
        let (Some(shared), Some(positions)) = (self.decoder.tokens.f32_slice(), self.decoder.positions.f32_slice()) else { return Ok(None) };
        let scale = if self.cfg.scale_embedding { (d as f64).sqrt() as f32 } else { 1.0 };
        let at = (past + POSITION_OFFSET as usize) * d;
        let position = &positions[at..at + d];
        let x: Vec<f32> = tokens
            .iter()
            .flat_map(|&t| shared[t as usize * d..(t as usize + 1) * d].iter().zip(position).map(|(e, p)| e * scale + p))
            .collect();
        let mut x = self.decoder.embed_norm.rows(&x, eps);
        let cross_bias = ScoreBias::per_row(&cross_bias, m);
        let no_bias = ScoreBias { data: &[], row_stride: 0, head_stride: 0 };
        for (i, l) in self.decoder.layers.iter().enumerate() {
            let a = l.attn.step_cpu(&x, m, CpuSlot::SelfAttn(cache, i), &no_bias)?;
            add_to(&mut x, &a);
            x = l.attn_norm.rows(&x, eps);
            if let Some((cross, norm)) = &l.cross {
                let a = cross.step_cpu(&x, m, CpuSlot::Cross(cache, i), &cross_bias)?;
                add_to(&mut x, &a);
                x = norm.rows(&x, eps);
            }
            let mut h = vec![0.0; m * l.fc1.out_features()];
            l.fc1.matvec(&x, &mut h);
            self.cfg.activation.apply_slice(&mut h)?;
            let mut y = vec![0.0; m * d];
            l.fc2.matvec(&h, &mut y);
            add_to(&mut x, &y);
            x = l.ffn_norm.rows(&x, eps);
        }
        cache.advance(1);
        let mut logits = vec![0.0; m * vocab];
        self.head.matvec(&x, &mut logits);
        Ok(Some(logits))
    }
}
