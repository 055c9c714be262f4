//! Model families, one file each, owning its tensor names and its CPU decode step: the
//! decoder-only networks ([`llama`], [`gpt2`]) and the encoder-decoder ones ([`t5`],
//! [`bart`], sharing [`seq2seq`]); the layers they share in [`layers`].

pub mod bart;
pub(crate) mod backends;
pub mod config;
pub mod gemma3;
pub mod gpt2;
pub(crate) mod layers;
pub mod llama;
pub mod rnn;
pub mod seq2seq;
pub mod t5;

use tch::Tensor;

pub use config::{Architecture, ModelConfig, Seq2SeqConfig};
pub use layers::KvCache;
pub(crate) use layers::{attention, cpu_cached, merge_heads, split_heads, Embedding, LayerNorm, Linear, Loader, Weight};
pub(crate) use layers::{dropout, peft_key, per_example, probe_attention, train_mode, AdapterSpec, Loaded};

use crate::error::Result;

/// Which positions a decoder-only pass returns logits for.
#[derive(Clone, Copy)]
pub(crate) enum Keep<'a> {
    /// The last: `[b, vocab]`.
    Last,
    /// Every one: `[b, t, vocab]`.
    All,
    /// These indices into the `b * t` positions: `[n, vocab]`.
    Rows(&'a Tensor),
}

impl Keep<'_> {
    /// The hidden states `[b, t, h]` of the positions kept.
    pub fn select(self, x: Tensor) -> Result<Tensor> {
        let t = x.size()[1];
        Ok(match self {
            Keep::Last => x.f_narrow(1, t - 1, 1)?.f_squeeze_dim(1)?,
            Keep::All => x,
            Keep::Rows(rows) => x.f_flatten(0, 1)?.f_index_select(0, rows)?,
        })
    }

    pub fn of(rows: Option<&Tensor>) -> Keep<'_> {
        rows.map_or(Keep::All, Keep::Rows)
    }
}

/// A decoder-only network.
pub(crate) trait Network: Send + Sync {
    /// Runs `ids` (`[batch, t]`, int64) after the cached positions and returns the logits of
    /// the last position as `[batch, vocab]` f32.
    fn forward(&self, ids: &Tensor, cache: &mut KvCache) -> Result<Tensor>;

    /// The logits of every position of `ids` as `[batch, t, vocab]` f32, or with `rows` (int64
    /// indices into the `batch * t` positions) of those positions only, `[rows, vocab]`:
    /// training's forward pass (with [`KvCache::passthrough`], a plain causal pass over
    /// right-padded rows), where only labelled positions need the vocabulary-wide head.
    fn forward_all(&self, ids: &Tensor, cache: &mut KvCache, rows: Option<&Tensor>) -> Result<Tensor>;

    /// An empty cache for `batch` sequences of up to `capacity` positions.
    fn new_cache(&self, batch: usize, capacity: usize) -> Result<KvCache>;

    /// One token of one sequence entirely on CPU slices, without libtorch calls: the logits,
    /// or `None` when this network or its weights do not allow it (then `forward` serves).
    fn decode_cpu(&self, _token: u32, _cache: &mut KvCache) -> Result<Option<Vec<f32>>> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use tch::{Device, Kind, Tensor};

    use super::*;
    use crate::error::MedgenError;
    use crate::formats::WeightSource;

    /// Tiny networks' weights, held in memory by logical name.
    impl WeightSource for HashMap<String, Tensor> {
        fn contains(&self, name: &str) -> bool {
            self.contains_key(name)
        }

        fn tensor(&self, name: &str) -> Result<Tensor> {
            self.get(name).map(Tensor::shallow_clone).ok_or_else(|| MedgenError::format(format!("no `{name}`")))
        }
    }

    fn config(architecture: Architecture, n_kv_heads: usize) -> ModelConfig {
        ModelConfig {
            architecture,
            vocab_size: 40,
            hidden_size: 32,
            intermediate_size: 48,
            n_layers: 2,
            n_heads: 4,
            n_kv_heads,
            head_dim: 8,
            context_length: 32,
            norm_eps: 1e-5,
            rope_theta: 10000.0,
            rope_scaling: None,
            gemma3: None,
            dropout: Default::default(),
        }
    }

    /// Random weights for per-layer tensors `layer` and the others `global`, by name and shape;
    /// norm weights near 1 so that every layer matters.
    fn random_weights(cfg: &ModelConfig, global: &[(&str, Vec<i64>)], layer: &[(&str, Vec<i64>)]) -> HashMap<String, Tensor> {
        let names = (0..cfg.n_layers).flat_map(|i| layer.iter().map(move |(n, s)| (format!("blk.{i}.{n}"), s)));
        let names = global.iter().map(|(n, s)| (n.to_string(), s)).chain(names);
        names
            .map(|(name, shape)| {
                let t = Tensor::randn(shape.as_slice(), (Kind::Float, Device::Cpu)) * 0.3;
                let t = if name.ends_with("norm.weight") { t + 1.0 } else { t };
                (name, t)
            })
            .collect()
    }

    fn llama(cfg: &ModelConfig, device: Device) -> llama::Llama {
        let (h, ff, v) = (cfg.hidden_size as i64, cfg.intermediate_size as i64, cfg.vocab_size as i64);
        let (q, kv) = ((cfg.n_heads * cfg.head_dim) as i64, (cfg.n_kv_heads * cfg.head_dim) as i64);
        let mut layer = vec![
            ("attn_norm.weight", vec![h]),
            ("attn_q.weight", vec![q, h]),
            ("attn_k.weight", vec![kv, h]),
            ("attn_v.weight", vec![kv, h]),
            ("attn_output.weight", vec![h, q]),
            ("ffn_norm.weight", vec![h]),
            ("ffn_gate.weight", vec![ff, h]),
            ("ffn_up.weight", vec![ff, h]),
            ("ffn_down.weight", vec![h, ff]),
        ];
        if cfg.architecture == Architecture::Qwen2 {
            layer.extend([("attn_q.bias", vec![q]), ("attn_k.bias", vec![kv]), ("attn_v.bias", vec![kv])]);
        }
        let global = [("token_embd.weight", vec![v, h]), ("output_norm.weight", vec![h])];
        let w = random_weights(cfg, &global, &layer);
        llama::Llama::load(cfg, &Loader::new(&w, Kind::Float, device)).unwrap()
    }

    /// A Gemma 3 of `config`'s shape: a local layer with a window of 4 positions, then a
    /// global one; queries scaled by 12^-0.5 and logits softcapped at 3, to cover both.
    fn gemma3(device: Device) -> (gemma3::Gemma3, ModelConfig) {
        let mut cfg = config(Architecture::Gemma3, 2);
        cfg.gemma3 = Some(config::Gemma3Config {
            sliding_layers: vec![true, false],
            sliding_window: 4,
            rope_local_theta: 100.0,
            rope_local_scaling: None,
            query_pre_attn_scalar: 12.0,
            final_logit_softcapping: Some(3.0),
        });
        let (h, ff, v, d) = (cfg.hidden_size as i64, cfg.intermediate_size as i64, cfg.vocab_size as i64, cfg.head_dim as i64);
        let (q, kv) = ((cfg.n_heads * cfg.head_dim) as i64, (cfg.n_kv_heads * cfg.head_dim) as i64);
        let layer = [
            ("attn_norm.weight", vec![h]),
            ("attn_q.weight", vec![q, h]),
            ("attn_k.weight", vec![kv, h]),
            ("attn_v.weight", vec![kv, h]),
            ("attn_q_norm.weight", vec![d]),
            ("attn_k_norm.weight", vec![d]),
            ("attn_output.weight", vec![h, q]),
            ("post_attention_norm.weight", vec![h]),
            ("ffn_norm.weight", vec![h]),
            ("ffn_gate.weight", vec![ff, h]),
            ("ffn_up.weight", vec![ff, h]),
            ("ffn_down.weight", vec![h, ff]),
            ("post_ffw_norm.weight", vec![h]),
        ];
        let global = [("token_embd.weight", vec![v, h]), ("output_norm.weight", vec![h])];
        let w = random_weights(&cfg, &global, &layer);
        (gemma3::Gemma3::load(&cfg, &Loader::new(&w, Kind::Float, device)).unwrap(), cfg)
    }

    fn gpt2(cfg: &ModelConfig, device: Device) -> gpt2::Gpt2 {
        let (h, ff, v) = (cfg.hidden_size as i64, cfg.intermediate_size as i64, cfg.vocab_size as i64);
        let mut layer = vec![];
        for (name, out, inp) in [("attn_qkv", 3 * h, h), ("attn_output", h, h), ("ffn_up", ff, h), ("ffn_down", h, ff)] {
            layer.extend([(format!("{name}.weight"), vec![out, inp]), (format!("{name}.bias"), vec![out])]);
        }
        for name in ["attn_norm", "ffn_norm"] {
            layer.extend([(format!("{name}.weight"), vec![h]), (format!("{name}.bias"), vec![h])]);
        }
        let layer: Vec<(&str, Vec<i64>)> = layer.iter().map(|(n, s)| (n.as_str(), s.clone())).collect();
        let global = [
            ("token_embd.weight", vec![v, h]),
            ("position_embd.weight", vec![cfg.context_length as i64, h]),
            ("output_norm.weight", vec![h]),
            ("output_norm.bias", vec![h]),
        ];
        let w = random_weights(cfg, &global, &layer);
        gpt2::Gpt2::load(cfg, &Loader::new(&w, Kind::Float, device)).unwrap()
    }

    fn devices() -> Vec<Device> {
        let mut devices = vec![Device::Cpu];
        if tch::Cuda::is_available() {
            devices.push(Device::Cuda(0));
        }
        devices
    }

    /// Runs three prompts of 5, 9 and 2 tokens as one left-padded batch (token 0 pads): a
    /// prefill, then four steps of one new token per row (two in one step), reordering the
    /// rows as beam search does before two of them; after each, every row's logits must
    /// equal those of its sequence run alone, unpadded.
    fn check_left_padded_batch(net: &dyn Network, vocab: usize, device: Device) {
        let token = |i: usize| (i % (vocab - 1) + 1) as i64;
        let mut seqs: Vec<Vec<i64>> = [5, 9, 2].iter().map(|&n| (0..n).map(|j| token(7 * j + n)).collect()).collect();
        let s = 9;
        let ids: Vec<i64> = seqs.iter().flat_map(|p| std::iter::repeat_n(0, s - p.len()).chain(p.clone())).collect();
        let mut cache = net.new_cache(3, s + 5).unwrap();
        cache.set_left_padding(seqs.iter().map(|p| s - p.len()).collect()).unwrap();
        let mut logits = net.forward(&Tensor::from_slice(&ids).view([3, s as i64]).to(device), &mut cache).unwrap();
        for step in 0..5 {
            for (row, seq) in seqs.iter().enumerate() {
                let mut alone = net.new_cache(1, seq.len()).unwrap();
                let want = net.forward(&Tensor::from_slice(&seq[..]).view([1, -1]).to(device), &mut alone).unwrap();
                let got = logits.get(row as i64).view([1, -1]);
                let err = f64::try_from((&got - &want).norm() / want.norm()).unwrap();
                assert!(err < 1e-4, "step {step}, row {row}: relative error {err}");
            }
            if step == 4 {
                break;
            }
            let rows: &[usize] = match step {
                1 => &[1, 2, 0],
                2 => &[2, 0, 0, 1],
                _ => &[],
            };
            if !rows.is_empty() {
                cache.reorder(rows).unwrap();
                seqs = rows.iter().map(|&r| seqs[r].clone()).collect();
            }
            let n = if step == 1 { 2 } else { 1 };
            let new: Vec<i64> = (0..seqs.len() * n).map(|i| token(3 * i + step)).collect();
            for (seq, chunk) in seqs.iter_mut().zip(new.chunks(n)) {
                seq.extend_from_slice(chunk);
            }
            let ids = Tensor::from_slice(&new).view([seqs.len() as i64, n as i64]).to(device);
            logits = net.forward(&ids, &mut cache).unwrap();
        }
    }

    #[test]
    fn llama_and_qwen2_left_padded_batches_match_each_sequence_alone() {
        // Grouped-query and multi-head attention, without and with q/k/v biases.
        for (arch, kv_heads) in [(Architecture::Llama, 2), (Architecture::Qwen2, 4), (Architecture::Qwen2, 1)] {
            let cfg = config(arch, kv_heads);
            for device in devices() {
                check_left_padded_batch(&llama(&cfg, device), cfg.vocab_size, device);
            }
        }
    }

    #[test]
    fn gpt2_left_padded_batches_match_each_sequence_alone() {
        let cfg = config(Architecture::Gpt2, 4);
        for device in devices() {
            check_left_padded_batch(&gpt2(&cfg, device), cfg.vocab_size, device);
        }
    }

    #[test]
    fn gemma3_left_padded_batches_match_each_sequence_alone() {
        // Sequences of up to 13 positions: the local layer's window of 4 applies, with padding.
        for device in devices() {
            let (net, cfg) = gemma3(device);
            check_left_padded_batch(&net, cfg.vocab_size, device);
        }
    }

    #[test]
    fn gemma3_decode_steps_past_the_window_match_one_prefill() {
        // Steps read only the window's latest keys in the local layer (no mask); a prefill masks.
        for device in devices() {
            let (net, _) = gemma3(device);
            let ids: Vec<i64> = (0..11).map(|i| (5 * i + 3) % 39 + 1).collect();
            let mut steps = net.new_cache(1, ids.len()).unwrap();
            let _ = net.forward(&Tensor::from_slice(&ids[..3]).view([1, -1]).to(device), &mut steps).unwrap();
            for n in 4..=ids.len() {
                let got = net.forward(&Tensor::from_slice(&ids[n - 1..n]).view([1, 1]).to(device), &mut steps).unwrap();
                let mut alone = net.new_cache(1, n).unwrap();
                let want = net.forward(&Tensor::from_slice(&ids[..n]).view([1, -1]).to(device), &mut alone).unwrap();
                let err = f64::try_from((&got - &want).norm() / want.norm()).unwrap();
                assert!(err < 1e-5, "{n} positions: relative error {err}");
            }
        }
    }

    #[test]
    fn left_padding_needs_one_pad_per_row_within_the_capacity() {
        let mut cache = KvCache::new(1, [3, 1, 2], 8, Kind::Float, Device::Cpu).unwrap();
        let wrong = cache.set_left_padding(vec![1, 2]);
        assert!(matches!(wrong, Err(MedgenError::Internal(_))), "{wrong:?}");
        let too_long = cache.set_left_padding(vec![0, 8, 1]);
        assert!(matches!(too_long, Err(MedgenError::Internal(_))), "{too_long:?}");
    }

    #[test]
    fn padding_positions_see_only_themselves_and_real_positions_skip_them() {
        let mut cache = KvCache::new(1, [2, 1, 2], 8, Kind::Float, Device::Cpu).unwrap();
        cache.set_left_padding(vec![2, 0]).unwrap();
        let mask = cache.attention_mask(3).unwrap().unwrap().to_kind(Kind::Int64).flatten(0, -1);
        #[rustfmt::skip]
        let want = [
            1, 0, 0,  0, 1, 0,  0, 0, 1, // two padding positions, then one real
            1, 0, 0,  1, 1, 0,  1, 1, 1, // no padding: causal
        ];
        assert_eq!(Vec::<i64>::try_from(mask).unwrap(), want);
        let positions = cache.positions(3).unwrap().flatten(0, -1);
        assert_eq!(Vec::<i64>::try_from(positions).unwrap(), [0, 0, 0, 0, 1, 2]);
    }

    #[test]
    fn a_single_sequence_keeps_the_cpu_fast_path_unless_padded() {
        let mut cache = KvCache::new(1, [1, 1, 2], 8, Kind::Float, Device::Cpu).unwrap();
        cache.set_left_padding(vec![0]).unwrap();
        assert!(cache.is_cpu_f32() && cache.attention_mask(1).unwrap().is_none());
        cache.set_left_padding(vec![3]).unwrap();
        assert!(!cache.is_cpu_f32());
    }
}
