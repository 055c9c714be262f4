//! Gemma 3 (text): Llama's grouped-query attention with RMS norms on each head's queries and
//! keys; local layers that attend within a sliding window, with their own RoPE base,
//! interleaved with global layers; RMS norms after attention and after the feed-forward as
//! well as before them; a GeGLU feed-forward (tanh GELU); token embeddings scaled by
//! `sqrt(hidden_size)`; queries scaled by `query_pre_attn_scalar^-0.5`.
//!
//! Norm weights are read as GGUF stores them, `1 + w` (HF checkpoints are converted when
//! loaded, see `hf_tensor`), so every norm here is a plain RMSNorm.

use tch::{Kind, Tensor};

use super::config::Gemma3Config;
use super::llama::{f32s, rope};
use super::{Keep, attention, merge_heads, split_heads, Embedding, KvCache, Linear, Loader, ModelConfig, Network, Weight};
use crate::error::{MedgenError, Result};
use crate::formats::{block_parts, HfTensor};
use crate::kernels;

/// An RMSNorm computed in f32 whatever the activations' kind, with an f32 weight: Gemma
/// rounds `norm(x) * w` to the activations' kind, where Llama rounds `norm(x)` first
/// (transformers' Gemma3RMSNorm).
struct Norm(Weight);

impl Norm {
    fn load(w: &Loader, name: &str, dim: i64) -> Result<Self> {
        let f32_loader = w.with_kinds(Kind::Float, Kind::Float);
        Ok(Norm(f32_loader.get(name, &[dim])?))
    }

    /// Over the last dimension of `x`.
    fn forward(&self, x: &Tensor, eps: f64) -> Result<Tensor> {
        let dim = [self.0.size()[0]];
        if x.kind() == Kind::Float {
            return Ok(x.f_rms_norm(dim, Some(&*self.0), eps)?);
        }
        Ok(x.f_to_kind(Kind::Float)?.f_rms_norm(dim, Some(&*self.0), eps)?.f_to_kind(x.kind())?)
    }
}

struct Layer {
    attn_norm: Norm,
    /// q, k and v projections fused: outputs `[q_dim, kv_dim, kv_dim]`.
    qkv: Linear,
    /// Per head, over `head_dim`.
    q_norm: Norm,
    k_norm: Norm,
    o: Linear,
    post_attn_norm: Norm,
    ffn_norm: Norm,
    /// gate and up projections fused: outputs `[ff, ff]`.
    gate_up: Linear,
    down: Linear,
    post_ffn_norm: Norm,
    /// A local layer: it sees `sliding_window` positions and rotates by the local frequencies.
    sliding: bool,
}

pub(crate) struct Gemma3 {
    cfg: ModelConfig,
    gemma: Gemma3Config,
    embed: Embedding,
    /// `sqrt(hidden_size)` rounded to the activations' kind, as transformers rounds it to
    /// the embedding's dtype.
    embed_scale: f64,
    /// `sqrt(head_dim / query_pre_attn_scalar)`: attention divides by `sqrt(head_dim)`, so
    /// queries multiplied by this are scaled by `query_pre_attn_scalar^-0.5` in all.
    query_scale: f64,
    layers: Vec<Layer>,
    norm: Norm,
    /// The output head: its own weight, or the token embedding's when tied.
    head: Linear,
    /// Rotary inverse frequencies of the global layers (`rope_theta`, any scaling) and of
    /// the local ones (`rope_local_theta`, `rope_local_scaling`).
    global_freq: Weight,
    local_freq: Weight,
    /// The activations' kind.
    kind: Kind,
    /// Whether decode steps can run on CPU slices ([`Network::decode_cpu`]).
    cpu_step: bool,
}

impl Gemma3 {
    pub fn load(cfg: &ModelConfig, w: &Loader) -> Result<Self> {
        let gemma = cfg
            .gemma3
            .clone()
            .ok_or_else(|| MedgenError::format("Gemma 3 model without its layer settings"))?;
        let (h, ff, v) = (cfg.hidden_size as i64, cfg.intermediate_size as i64, cfg.vocab_size as i64);
        let hd = cfg.head_dim as i64;
        let q_dim = (cfg.n_heads * cfg.head_dim) as i64;
        let kv_dim = (cfg.n_kv_heads * cfg.head_dim) as i64;
        let mut layers = Vec::with_capacity(cfg.n_layers);
        for (i, &sliding) in gemma.sliding_layers.iter().enumerate() {
            let n = |s: &str| format!("blk.{i}.{s}");
            layers.push(Layer {
                attn_norm: Norm::load(w, &n("attn_norm.weight"), h)?,
                qkv: Linear::load_fused(w, &[(n("attn_q"), q_dim), (n("attn_k"), kv_dim), (n("attn_v"), kv_dim)], h, false)?,
                q_norm: Norm::load(w, &n("attn_q_norm.weight"), hd)?,
                k_norm: Norm::load(w, &n("attn_k_norm.weight"), hd)?,
                o: Linear::load(w, &n("attn_output"), h, q_dim, false)?,
                post_attn_norm: Norm::load(w, &n("post_attention_norm.weight"), h)?,
                ffn_norm: Norm::load(w, &n("ffn_norm.weight"), h)?,
                gate_up: Linear::load_fused(w, &[(n("ffn_gate"), ff), (n("ffn_up"), ff)], h, false)?,
                down: Linear::load(w, &n("ffn_down"), h, ff, false)?,
                post_ffn_norm: Norm::load(w, &n("post_ffw_norm.weight"), h)?,
                sliding,
            });
        }
        let embed = Embedding::load(w, "token_embd.weight", [v, h])?;
        let head = Linear::load_head(w, &embed, [v, h])?;
        let local = ModelConfig { rope_theta: gemma.rope_local_theta, rope_scaling: gemma.rope_local_scaling.clone(), ..cfg.clone() };
        let freq = |c: &ModelConfig| -> Result<Weight> { Ok(Weight(Tensor::f_from_slice(&c.rope_inv_freq())?.f_to_device(w.device)?)) };
        let embed_scale = Tensor::f_from_slice(&[(cfg.hidden_size as f32).sqrt()])?.f_to_kind(w.act)?.f_double_value(&[0])?;
        Ok(Gemma3 {
            embed_scale,
            query_scale: (cfg.head_dim as f64 / gemma.query_pre_attn_scalar).sqrt(),
            global_freq: freq(cfg)?,
            local_freq: freq(&local)?,
            cfg: cfg.clone(),
            gemma,
            embed,
            layers,
            norm: Norm::load(w, "output_norm.weight", h)?,
            head,
            kind: w.act,
            cpu_step: false,
        }
        .with_cpu_step())
    }

    fn with_cpu_step(mut self) -> Self {
        let norms = |l: &Layer| {
            [&l.attn_norm, &l.q_norm, &l.k_norm, &l.post_attn_norm, &l.ffn_norm, &l.post_ffn_norm].iter().all(|n| n.0.f32_slice().is_some())
        };
        let linears = |l: &Layer| [&l.qkv, &l.o, &l.gate_up, &l.down].iter().all(|x| x.on_kernels());
        self.cpu_step = self.kind == Kind::Float
            && self.layers.iter().all(|l| norms(l) && linears(l))
            && self.head.on_kernels()
            && self.norm.0.f32_slice().is_some()
            && self.global_freq.f32_slice().is_some()
            && self.local_freq.f32_slice().is_some()
            && self.embed.device() == tch::Device::Cpu;
        self
    }

    /// Layer `i` on `x`, with the rotary `cos`/`sin` and key mask of its kind. `last` keeps
    /// only the latest that many cached keys (a local layer's window, for one new position
    /// without padding, where no mask is needed).
    fn layer(&self, i: usize, x: &Tensor, (cos, sin): &(Tensor, Tensor), mask: Option<&Tensor>, last: Option<i64>, cache: &mut KvCache) -> Result<Tensor> {
        let (l, cfg) = (&self.layers[i], &self.cfg);
        let (hd, eps) = (cfg.head_dim as i64, cfg.norm_eps);
        let a = l.attn_norm.forward(x, eps)?;
        let (q_dim, kv_dim) = ((cfg.n_heads * cfg.head_dim) as i64, (cfg.n_kv_heads * cfg.head_dim) as i64);
        let qkv = l.qkv.forward_parts(&a, &[q_dim, kv_dim, kv_dim])?;
        let q = l.q_norm.forward(&split_heads(&qkv[0], cfg.n_heads as i64, hd)?, eps)?;
        let k = l.k_norm.forward(&split_heads(&qkv[1], cfg.n_kv_heads as i64, hd)?, eps)?;
        let v = split_heads(&qkv[2], cfg.n_kv_heads as i64, hd)?;
        let mut q = rope(&q, cos, sin)?;
        if self.query_scale != 1.0 {
            q = q.f_mul_scalar(self.query_scale)?;
        }
        let k = rope(&k, cos, sin)?;
        let (mut k, mut v) = cache.update(i, &k, &v)?;
        if let Some(w) = last {
            let total = k.size()[2];
            if total > w {
                (k, v) = (k.f_narrow(2, total - w, w)?, v.f_narrow(2, total - w, w)?);
            }
        }
        let attn = l.o.forward(&merge_heads(&attention(&q, &k, &v, mask, 0.0)?)?)?;
        let x = x.f_add(&l.post_attn_norm.forward(&attn, eps)?)?;
        let m = l.ffn_norm.forward(&x, eps)?;
        let ff = cfg.intermediate_size as i64;
        let gate_up = l.gate_up.forward_parts(&m, &[ff, ff])?;
        let hidden = gate_up[0].f_gelu("tanh")?.f_mul(&gate_up[1])?;
        Ok(x.f_add(&l.post_ffn_norm.forward(&l.down.forward(&hidden)?, eps)?)?)
    }

    /// Which keys the local layers' `t` new positions may see: what `mask` allows (plain
    /// causal when `None`), and only keys less than `sliding_window` positions back;
    /// `None` while no query reaches past the window. Cache positions serve as positions:
    /// left padding shifts a row's queries and keys alike.
    fn sliding_mask(&self, cache: &KvCache, t: usize, mask: Option<&Tensor>) -> Result<Option<Tensor>> {
        let (start, total) = (cache.len() as i64, (cache.len() + t) as i64);
        let window = self.gemma.sliding_window as i64;
        if total <= window {
            return Ok(mask.map(Tensor::shallow_clone));
        }
        let opts = (Kind::Int64, self.embed.device());
        let query = Tensor::f_arange_start(start, total, opts)?.f_view([1, 1, -1, 1])?;
        let key = Tensor::f_arange(total, opts)?.f_view([1, 1, 1, -1])?;
        let near = key.f_gt_tensor(&query.f_sub_scalar(window)?)?;
        let visible = match mask {
            Some(mask) => mask.f_logical_and(&near)?,
            None => key.f_le_tensor(&query)?.f_logical_and(&near)?,
        };
        Ok(Some(visible))
    }
}

/// cos and sin of the rotary angles of `pos` (from [`KvCache::positions`]) in `kind`:
/// `[t, head_dim]` for positions shared by all rows, `[b, 1, t, head_dim]` (broadcast over
/// heads) for per-row positions `[b, t]`.
fn rotary(pos: &Tensor, inv_freq: &Tensor, kind: Kind) -> Result<(Tensor, Tensor)> {
    let freqs = pos.f_to_kind(Kind::Float)?.f_unsqueeze(-1)?.f_mul(inv_freq)?;
    let mut emb = Tensor::f_cat(&[&freqs, &freqs], -1)?;
    if emb.dim() == 3 {
        emb = emb.f_unsqueeze(1)?;
    }
    Ok((emb.f_cos()?.f_to_kind(kind)?, emb.f_sin()?.f_to_kind(kind)?))
}

impl Network for Gemma3 {
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

    /// The arithmetic of [`Gemma3::layer`] for one new position of one sequence, on f32
    /// slices with medgen's kernels: the tensor path makes some 70 libtorch calls per layer,
    /// whose dispatch costs more than this model's arithmetic.
    fn decode_cpu(&self, token: u32, cache: &mut KvCache) -> Result<Option<Vec<f32>>> {
        if !self.cpu_step || !cache.is_cpu_f32() || cache.batch() != 1 {
            return Ok(None);
        }
        let (cfg, eps) = (&self.cfg, self.cfg.norm_eps);
        let Some(mut x) = self.embed.row(token) else { return Ok(None) };
        x.iter_mut().for_each(|v| *v *= self.embed_scale as f32);
        let (h, d, ff) = (cfg.hidden_size, cfg.head_dim, cfg.intermediate_size);
        let (q_dim, kv_dim) = (cfg.n_heads * d, cfg.n_kv_heads * d);
        let pos = cache.len() as f32;
        let angles = |freq: &Weight| -> (Vec<f32>, Vec<f32>) { f32s(freq).iter().map(|f| ((pos * f).cos(), (pos * f).sin())).unzip() };
        let (global, local) = (angles(&self.global_freq), angles(&self.local_freq));
        let (mut a, mut qkv, mut attn, mut o) = (vec![0.0; h], vec![0.0; q_dim + 2 * kv_dim], vec![0.0; q_dim], vec![0.0; h]);
        let (mut gate_up, mut down) = (vec![0.0; 2 * ff], vec![0.0; h]);
        let norm = |n: &Norm, x: &[f32], out: &mut [f32]| kernels::rms_norm(x, f32s(&n.0), eps, out);
        for (i, l) in self.layers.iter().enumerate() {
            norm(&l.attn_norm, &x, &mut a);
            if !l.qkv.matvec(&a, &mut qkv) {
                return Ok(None);
            }
            let (q, kv) = qkv.split_at_mut(q_dim);
            let (k, v) = kv.split_at_mut(kv_dim);
            q.copy_from_slice(&kernels::rms_norm_rows(q, f32s(&l.q_norm.0), eps));
            k.copy_from_slice(&kernels::rms_norm_rows(k, f32s(&l.k_norm.0), eps));
            let (cos, sin) = if l.sliding { &local } else { &global };
            kernels::rope(q, d, cos, sin);
            kernels::rope(k, d, cos, sin);
            q.iter_mut().for_each(|v| *v *= self.query_scale as f32);
            let positions = cache.len() + 1;
            let (kc, vc) = cache.cpu_layer(i, k, v)?;
            // A local layer sees the window's latest positions only.
            let first = if l.sliding { positions.saturating_sub(self.gemma.sliding_window) } else { 0 };
            kernels::attend_one(q, &kc.from_position(first), &vc.from_position(first), [cfg.n_heads, cfg.n_kv_heads, d], positions - first, &mut attn);
            if !l.o.matvec(&attn, &mut o) {
                return Ok(None);
            }
            norm(&l.post_attn_norm, &o, &mut a);
            kernels::add_to(&mut x, &a);
            norm(&l.ffn_norm, &x, &mut a);
            if !l.gate_up.matvec(&a, &mut gate_up) {
                return Ok(None);
            }
            let (g, u) = gate_up.split_at_mut(ff);
            g.iter_mut().zip(u.iter()).for_each(|(g, u)| *g = gelu_tanh(*g) * u);
            if !l.down.matvec(g, &mut down) {
                return Ok(None);
            }
            norm(&l.post_ffn_norm, &down, &mut a);
            kernels::add_to(&mut x, &a);
        }
        cache.advance(1);
        norm(&self.norm, &x.clone(), &mut x);
        let mut logits = vec![0.0; self.head.out_features()];
        if !self.head.matvec(&x, &mut logits) {
            return Ok(None);
        }
        if let Some(c) = self.gemma.final_logit_softcapping {
            let c = c as f32;
            logits.iter_mut().for_each(|v| *v = (*v / c).tanh() * c);
        }
        Ok(Some(logits))
    }
}

/// GELU with the tanh approximation, as libtorch's `gelu(x, "tanh")`.
fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)).tanh())
}

impl Gemma3 {
    /// The logits of the positions `keep` says.
    fn run(&self, ids: &Tensor, cache: &mut KvCache, keep: Keep) -> Result<Tensor> {
        let t = ids.size()[1] as usize;
        let pos = cache.positions(t)?;
        let global = rotary(&pos, &self.global_freq, self.kind)?;
        let local = rotary(&pos, &self.local_freq, self.kind)?;
        let mask = cache.attention_mask(t)?;
        // One new position without padding: the local layers read the window's keys
        // directly, which keeps attention's single-query path free of masks.
        let one = t == 1 && mask.is_none();
        let local_mask = if one { None } else { self.sliding_mask(cache, t, mask.as_ref())? };
        let last = one.then_some(self.gemma.sliding_window as i64);
        let x = self.embed.forward(ids)?.f_to_kind(self.kind)?;
        let mut x = x.f_mul_scalar(self.embed_scale)?;
        for i in 0..self.layers.len() {
            x = if self.layers[i].sliding {
                self.layer(i, &x, &local, local_mask.as_ref(), last, cache)?
            } else {
                self.layer(i, &x, &global, mask.as_ref(), None, cache)?
            };
        }
        cache.advance(t);
        let x = keep.select(x)?;
        let logits = self.head.forward(&self.norm.forward(&x, self.cfg.norm_eps)?)?.f_to_kind(Kind::Float)?;
        Ok(match self.gemma.final_logit_softcapping {
            Some(c) => logits.f_div_scalar(c)?.f_tanh()?.f_mul_scalar(c)?,
            None => logits,
        })
    }
}

/// Where an HF Gemma 3 checkpoint keeps a logical tensor: the Llama family's names plus the
/// norms around attention and feed-forward and the q/k norms, in a text-only checkpoint or
/// in the language model of a multimodal one (transformers 5, then 4). Norms are stored as
/// `w` for the logical `1 + w` (see the module documentation).
pub(crate) fn hf_tensor(name: &str) -> HfTensor {
    let own = block_parts(name).and_then(|(layer, stem, suffix)| {
        let hf = match stem {
            "ffn_norm" => "pre_feedforward_layernorm",
            "post_attention_norm" => "post_attention_layernorm",
            "post_ffw_norm" => "post_feedforward_layernorm",
            "attn_q_norm" => "self_attn.q_norm",
            "attn_k_norm" => "self_attn.k_norm",
            _ => return None,
        };
        Some(format!("model.layers.{layer}.{hf}.{suffix}"))
    });
    let hf = own.unwrap_or_else(|| super::llama::hf_name(name));
    let multimodal = match hf.strip_prefix("model.") {
        Some(rest) => vec![format!("model.language_model.{rest}"), format!("language_model.model.{rest}")],
        None => vec![format!("language_model.{hf}")],
    };
    let names = std::iter::once(hf).chain(multimodal).collect();
    HfTensor { names, transposed: false, plus_one: name.ends_with("norm.weight") }
}
