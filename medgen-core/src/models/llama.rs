//! The Llama family (Llama, Mistral, SmolLM2, Qwen2): RMSNorm, rotary positions,
//! grouped-query attention, SwiGLU feed-forward; Qwen2 adds biases to q, k and v.

use tch::{Kind, Tensor};

use crate::kernels;
use super::{Keep, attention, merge_heads, split_heads, Architecture, Embedding, KvCache, Linear, Loader, ModelConfig, Network, Weight};
use crate::error::Result;
use crate::formats::{block_parts, HfTensor};

struct Layer {
    attn_norm: Weight,
    /// q, k and v projections fused: outputs `[q_dim, kv_dim, kv_dim]`.
    qkv: Linear,
    o: Linear,
    ffn_norm: Weight,
    /// gate and up projections fused: outputs `[ff, ff]`.
    gate_up: Linear,
    down: Linear,
}

pub(crate) struct Llama {
    cfg: ModelConfig,
    embed: Embedding,
    layers: Vec<Layer>,
    norm: Weight,
    /// The output head: its own weight, or the token embedding's when tied.
    head: Linear,
    inv_freq: Weight,
    /// The activations' kind.
    kind: Kind,
    /// Whether [`Network::decode_cpu`] can run: every weight is readable by the kernels
    /// (decided once, at load).
    cpu_step: bool,
}

impl Llama {
    pub fn load(cfg: &ModelConfig, w: &Loader) -> Result<Self> {
        let (h, ff, v) = (cfg.hidden_size as i64, cfg.intermediate_size as i64, cfg.vocab_size as i64);
        let q_dim = (cfg.n_heads * cfg.head_dim) as i64;
        let kv_dim = (cfg.n_kv_heads * cfg.head_dim) as i64;
        let bias = cfg.architecture == Architecture::Qwen2;
        let mut layers = Vec::with_capacity(cfg.n_layers);
        for i in 0..cfg.n_layers {
            let n = |s: &str| format!("blk.{i}.{s}");
            layers.push(Layer {
                attn_norm: w.get(&n("attn_norm.weight"), &[h])?,
                qkv: Linear::load_fused(w, &[(n("attn_q"), q_dim), (n("attn_k"), kv_dim), (n("attn_v"), kv_dim)], h, bias)?,
                o: Linear::load(w, &n("attn_output"), h, q_dim, false)?,
                ffn_norm: w.get(&n("ffn_norm.weight"), &[h])?,
                gate_up: Linear::load_fused(w, &[(n("ffn_gate"), ff), (n("ffn_up"), ff)], h, false)?,
                down: Linear::load(w, &n("ffn_down"), h, ff, false)?,
            });
        }
        let embed = Embedding::load(w, "token_embd.weight", [v, h])?;
        let head = Linear::load_head(w, &embed, [v, h])?;
        let inv_freq = Tensor::f_from_slice(&cfg.rope_inv_freq())?.f_to_device(w.device)?;
        Ok(Llama {
            cfg: cfg.clone(),
            embed,
            layers,
            norm: w.get("output_norm.weight", &[h])?,
            head,
            inv_freq: Weight(inv_freq),
            kind: w.act,
            cpu_step: false,
        }
        .with_cpu_step())
    }

    fn with_cpu_step(mut self) -> Self {
        let norms = self.layers.iter().all(|l| l.attn_norm.f32_slice().is_some() && l.ffn_norm.f32_slice().is_some());
        let linears = self.layers.iter().all(|l| [&l.qkv, &l.o, &l.gate_up, &l.down].iter().all(|x| x.on_kernels()));
        self.cpu_step = norms
            && linears
            && self.head.on_kernels()
            && self.norm.f32_slice().is_some()
            && self.inv_freq.f32_slice().is_some()
            && self.embed.device() == tch::Device::Cpu;
        self
    }

    /// cos and sin of the rotary angles for `pos` (from [`KvCache::positions`]): `[t, head_dim]`
    /// for positions shared by all rows, `[b, 1, t, head_dim]` (broadcast over heads) for
    /// per-row positions `[b, t]`.
    fn rotary(&self, pos: &Tensor) -> Result<(Tensor, Tensor)> {
        let freqs = pos.f_to_kind(Kind::Float)?.f_unsqueeze(-1)?.f_mul(&self.inv_freq)?;
        let mut emb = Tensor::f_cat(&[&freqs, &freqs], -1)?;
        if emb.dim() == 3 {
            emb = emb.f_unsqueeze(1)?;
        }
        Ok((emb.f_cos()?.f_to_kind(self.kind)?, emb.f_sin()?.f_to_kind(self.kind)?))
    }

    fn layer(&self, i: usize, x: &Tensor, cos: &Tensor, sin: &Tensor, mask: Option<&Tensor>, cache: &mut KvCache) -> Result<Tensor> {
        let l = &self.layers[i];
        let cfg = &self.cfg;
        let (hd, eps) = (cfg.head_dim as i64, cfg.norm_eps);
        let a = x.f_rms_norm([cfg.hidden_size as i64], Some(&*l.attn_norm), eps)?;
        let (q_dim, kv_dim) = ((cfg.n_heads * cfg.head_dim) as i64, (cfg.n_kv_heads * cfg.head_dim) as i64);
        let qkv = l.qkv.forward_parts(&a, &[q_dim, kv_dim, kv_dim])?;
        let q = split_heads(&qkv[0], cfg.n_heads as i64, hd)?;
        let k = split_heads(&qkv[1], cfg.n_kv_heads as i64, hd)?;
        let v = split_heads(&qkv[2], cfg.n_kv_heads as i64, hd)?;
        let q = rope(&q, cos, sin)?;
        let k = rope(&k, cos, sin)?;
        let (k, v) = cache.update(i, &k, &v)?;
        let attn = l.o.forward(&merge_heads(&attention(&q, &k, &v, mask, cfg.dropout.attention)?)?)?;
        let x = x.f_add(&attn)?;
        let m = x.f_rms_norm([cfg.hidden_size as i64], Some(&*l.ffn_norm), eps)?;
        let ff = cfg.intermediate_size as i64;
        let gate_up = l.gate_up.forward_parts(&m, &[ff, ff])?;
        let hidden = gate_up[0].f_silu()?.f_mul(&gate_up[1])?;
        Ok(x.f_add(&l.down.forward(&hidden)?)?)
    }
}

/// Rotates `x` (`[b, h, t, d]`) by the angles in `cos`/`sin` (`[t, d]` or `[b, 1, t, d]`), in the
/// "rotate half" layout that HF checkpoints use (GGUF Llama weights are permuted back
/// to it when loaded).
pub(super) fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let d = x.size()[3];
    let x1 = x.f_narrow(3, 0, d / 2)?;
    let x2 = x.f_narrow(3, d / 2, d / 2)?;
    let rotated = Tensor::f_cat(&[&x2.f_neg()?, &x1], -1)?;
    Ok(x.f_mul(cos)?.f_add(&rotated.f_mul(sin)?)?)
}

impl Network for Llama {
    fn forward(&self, ids: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        self.run(ids, cache, Keep::Last)
    }

    fn forward_all(&self, ids: &Tensor, cache: &mut KvCache, rows: Option<&Tensor>) -> Result<Tensor> {
        self.run(ids, cache, Keep::of(rows))
    }

    fn new_cache(&self, batch: usize, capacity: usize) -> Result<KvCache> {
        let shape = [batch as i64, self.cfg.n_kv_heads as i64, self.cfg.head_dim as i64];
        KvCache::new(self.layers.len(), shape, capacity, self.kind, self.embed.device())
    }

    /// The same layer arithmetic as [`Llama::layer`], on f32 slices with medgen's kernels:
    /// a decode step on the CPU makes some 60 libtorch calls per layer otherwise, whose
    /// dispatch costs more than this model's arithmetic.
    fn decode_cpu(&self, token: u32, cache: &mut KvCache) -> Result<Option<Vec<f32>>> {
        if !self.cpu_step || !cache.is_cpu_f32() || cache.batch() != 1 {
            return Ok(None);
        }
        let cfg = &self.cfg;
        let norms = self.layers.iter().map(|l| (f32s(&l.attn_norm), f32s(&l.ffn_norm)));
        let (out_norm, inv_freq) = (f32s(&self.norm), f32s(&self.inv_freq));
        let Some(mut x) = self.embed.row(token) else { return Ok(None) };
        let (h, d, ff) = (cfg.hidden_size, cfg.head_dim, cfg.intermediate_size);
        let (q_dim, kv_dim) = (cfg.n_heads * d, cfg.n_kv_heads * d);
        let pos = cache.len() as f32;
        let (cos, sin): (Vec<f32>, Vec<f32>) = inv_freq.iter().map(|f| ((pos * f).cos(), (pos * f).sin())).unzip();
        let (mut a, mut qkv, mut attn, mut o) = (vec![0.0; h], vec![0.0; q_dim + 2 * kv_dim], vec![0.0; q_dim], vec![0.0; h]);
        let (mut gate_up, mut down) = (vec![0.0; 2 * ff], vec![0.0; h]);
        for (i, (l, (attn_norm, ffn_norm))) in self.layers.iter().zip(norms).enumerate() {
            kernels::rms_norm(&x, attn_norm, cfg.norm_eps, &mut a);
            if !l.qkv.matvec(&a, &mut qkv) {
                return Ok(None);
            }
            let (q, kv) = qkv.split_at_mut(q_dim);
            let (k, v) = kv.split_at_mut(kv_dim);
            kernels::rope(q, d, &cos, &sin);
            kernels::rope(k, d, &cos, &sin);
            let positions = cache.len() + 1;
            let (kc, vc) = cache.cpu_layer(i, k, v)?;
            kernels::attend_one(q, &kc, &vc, [cfg.n_heads, cfg.n_kv_heads, d], positions, &mut attn);
            if !l.o.matvec(&attn, &mut o) {
                return Ok(None);
            }
            x.iter_mut().zip(&o).for_each(|(x, o)| *x += o);
            kernels::rms_norm(&x, ffn_norm, cfg.norm_eps, &mut a);
            if !l.gate_up.matvec(&a, &mut gate_up) {
                return Ok(None);
            }
            let (g, u) = gate_up.split_at_mut(ff);
            g.iter_mut().zip(u.iter()).for_each(|(g, u)| *g = *g / (1.0 + (-*g).exp()) * u);
            if !l.down.matvec(g, &mut down) {
                return Ok(None);
            }
            x.iter_mut().zip(&down).for_each(|(x, o)| *x += o);
        }
        cache.advance(1);
        kernels::rms_norm(&x.clone(), out_norm, cfg.norm_eps, &mut x);
        let mut logits = vec![0.0; self.head.out_features()];
        Ok(self.head.matvec(&x, &mut logits).then_some(logits))
    }
}

impl Llama {
    /// The logits of the positions `keep` says.
    fn run(&self, ids: &Tensor, cache: &mut KvCache, keep: Keep) -> Result<Tensor> {
        let t = ids.size()[1] as usize;
        let (cos, sin) = self.rotary(&cache.positions(t)?)?;
        let mask = cache.attention_mask(t)?;
        let mut x = self.embed.forward(ids)?.f_to_kind(self.kind)?;
        for i in 0..self.layers.len() {
            x = self.layer(i, &x, &cos, &sin, mask.as_ref(), cache)?;
        }
        cache.advance(t);
        let x = keep.select(x)?;
        let x = x.f_rms_norm([self.cfg.hidden_size as i64], Some(&*self.norm), self.cfg.norm_eps)?;
        Ok(self.head.forward(&x)?.f_to_kind(Kind::Float)?)
    }
}

/// The data of an f32 CPU weight (checked at load, see `Llama::with_cpu_step`).
pub(super) fn f32s(w: &Weight) -> &[f32] {
    w.f32_slice().unwrap_or_default()
}

/// Where an HF checkpoint of the Llama family keeps a logical tensor.
pub(crate) fn hf_tensor(name: &str) -> HfTensor {
    HfTensor::new(vec![hf_name(name)])
}

/// The HF name of a logical tensor: `blk.3.attn_q.weight` → `model.layers.3.self_attn.q_proj.weight`.
pub(super) fn hf_name(name: &str) -> String {
    match name {
        "token_embd.weight" => return "model.embed_tokens.weight".into(),
        "output_norm.weight" => return "model.norm.weight".into(),
        "output.weight" => return "lm_head.weight".into(),
        _ => {}
    }
    let Some((layer, stem, suffix)) = block_parts(name) else { return name.to_string() };
    let hf = match stem {
        "attn_norm" => "input_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_norm" => "post_attention_layernorm",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => stem,
    };
    format!("model.layers.{layer}.{hf}.{suffix}")
}
