//! GPT-2: learned positions, LayerNorm, fused q/k/v projection, tanh-GELU feed-forward.

use tch::{Kind, Tensor};

use super::{Keep, attention, dropout, merge_heads, split_heads, Embedding, KvCache, LayerNorm, Linear, Loader, ModelConfig, Network, Weight};
use crate::error::{MedgenError, Result};
use crate::formats::{block_parts, HfTensor};

struct Layer {
    ln_1: LayerNorm,
    qkv: Linear,
    proj: Linear,
    ln_2: LayerNorm,
    fc: Linear,
    fc_proj: Linear,
}

pub(crate) struct Gpt2 {
    cfg: ModelConfig,
    wte: Embedding,
    wpe: Weight,
    layers: Vec<Layer>,
    ln_f: LayerNorm,
    head: Linear,
    /// The activations' kind.
    kind: Kind,
}

impl Gpt2 {
    pub fn load(cfg: &ModelConfig, w: &Loader) -> Result<Self> {
        let (h, ff) = (cfg.hidden_size as i64, cfg.intermediate_size as i64);
        let v = cfg.vocab_size as i64;
        let mut layers = Vec::with_capacity(cfg.n_layers);
        for i in 0..cfg.n_layers {
            let n = |s: &str| format!("blk.{i}.{s}");
            layers.push(Layer {
                ln_1: LayerNorm::load(w, &n("attn_norm"), h)?,
                qkv: Linear::load(w, &n("attn_qkv"), 3 * h, h, true)?,
                proj: Linear::load(w, &n("attn_output"), h, h, true)?,
                ln_2: LayerNorm::load(w, &n("ffn_norm"), h)?,
                fc: Linear::load(w, &n("ffn_up"), ff, h, true)?,
                fc_proj: Linear::load(w, &n("ffn_down"), h, ff, true)?,
            });
        }
        let wte = Embedding::load(w, "token_embd.weight", [v, h])?;
        let head = Linear::load_head(w, &wte, [v, h])?;
        Ok(Gpt2 {
            cfg: cfg.clone(),
            wte,
            wpe: w.get("position_embd.weight", &[cfg.context_length as i64, h])?,
            layers,
            ln_f: LayerNorm::load(w, "output_norm", h)?,
            head,
            kind: w.act,
        })
    }
}

impl Network for Gpt2 {
    fn forward(&self, ids: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        self.run(ids, cache, Keep::Last)
    }

    fn forward_all(&self, ids: &Tensor, cache: &mut KvCache, rows: Option<&Tensor>) -> Result<Tensor> {
        self.run(ids, cache, Keep::of(rows))
    }

    fn new_cache(&self, batch: usize, capacity: usize) -> Result<KvCache> {
        let shape = [batch as i64, self.cfg.n_heads as i64, self.cfg.head_dim as i64];
        KvCache::new(self.layers.len(), shape, capacity, self.kind, self.wte.device())
    }
}

impl Gpt2 {
    /// The logits of the positions `keep` says.
    fn run(&self, ids: &Tensor, cache: &mut KvCache, keep: Keep) -> Result<Tensor> {
        let cfg = &self.cfg;
        let t = ids.size()[1];
        let (heads, hd, eps) = (cfg.n_heads as i64, cfg.head_dim as i64, cfg.norm_eps);
        // Learned positions end at n_positions: a longer sequence (a training example) is a
        // context error, not an index past the table.
        let need = cache.len() + t as usize;
        if need > cfg.context_length {
            return Err(MedgenError::context(need, cfg.context_length, "GPT-2 n_positions"));
        }
        // Positions `[t]`, or `[b, t]` per row with left padding.
        let pos = cache.positions(t as usize)?;
        let mask = cache.attention_mask(t as usize)?;
        let x = self.wte.forward(ids)?
            .f_add(&Tensor::f_embedding(&self.wpe, &pos, -1, false, false)?)?
            .f_to_kind(self.kind)?;
        let (drop, mut x) = (cfg.dropout, dropout(x, cfg.dropout.embedding)?);
        for (i, l) in self.layers.iter().enumerate() {
            let qkv = l.qkv.forward(&l.ln_1.forward(&x, eps)?)?.f_split(cfg.hidden_size as i64, 2)?;
            let q = split_heads(&qkv[0], heads, hd)?;
            let k = split_heads(&qkv[1], heads, hd)?;
            let v = split_heads(&qkv[2], heads, hd)?;
            let (k, v) = cache.update(i, &k, &v)?;
            let a = l.proj.forward(&merge_heads(&attention(&q, &k, &v, mask.as_ref(), drop.attention)?)?)?;
            x = x.f_add(&dropout(a, drop.hidden)?)?;
            let m = l.fc.forward(&l.ln_2.forward(&x, eps)?)?.f_gelu("tanh")?;
            x = x.f_add(&dropout(l.fc_proj.forward(&m)?, drop.hidden)?)?;
        }
        cache.advance(t as usize);
        let x = keep.select(x)?;
        Ok(self.head.forward(&self.ln_f.forward(&x, eps)?)?.f_to_kind(Kind::Float)?)
    }
}

/// Where an HF GPT-2 checkpoint keeps a logical tensor (with or without the `transformer.`
/// prefix); its `Conv1D` weights are stored transposed, as `[in, out]`.
pub(crate) fn hf_tensor(name: &str) -> HfTensor {
    let fixed = match name {
        "token_embd.weight" => Some("wte.weight"),
        "position_embd.weight" => Some("wpe.weight"),
        "output_norm.weight" => Some("ln_f.weight"),
        "output_norm.bias" => Some("ln_f.bias"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    let (hf, transposed) = match (fixed, block_parts(name)) {
        (Some(f), _) => (f.to_string(), false),
        (None, Some((layer, stem, suffix))) => {
            let hf = match stem {
                "attn_norm" => "ln_1",
                "attn_qkv" => "attn.c_attn",
                "attn_output" => "attn.c_proj",
                "ffn_norm" => "ln_2",
                "ffn_up" => "mlp.c_fc",
                "ffn_down" => "mlp.c_proj",
                _ => stem,
            };
            (format!("h.{layer}.{hf}.{suffix}"), suffix == "weight" && !stem.ends_with("norm"))
        }
        (None, None) => (name.to_string(), false),
    };
    // GPT2LMHeadModel's names first (what an exported checkpoint is named), GPT2Model's second.
    let names = if fixed == Some("lm_head.weight") { vec![hf] } else { vec![format!("transformer.{hf}"), hf] };
    HfTensor { names, transposed, plus_one: false }
}
