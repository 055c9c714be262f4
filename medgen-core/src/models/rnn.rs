//! The recurrent encoder-decoder medgen trains from scratch: the classic baseline. Token
//! embeddings, an LSTM or GRU encoder (optionally bidirectional, dropout between layers), a
//! decoder of the same cell whose first state is `tanh(bridge(encoder summary))`, attention
//! over the encoder outputs after each decoder step (Luong's flow: score, context, then
//! `tanh(linear_out([context; h]))`), and an output projection (optionally tied to the
//! decoder embedding). With input feeding the attentional output of a step is part of the
//! next step's input.
//!
//! Scores: `dot` (`h · e`), `luong` (Luong's general, `linear_in(h) · e`) or `bahdanau`
//! (additive, `v · tanh(query(h) + key(e))`), masked over padding. The encoder summary is
//! the top layer's output at each input's last token, and with a bidirectional encoder the
//! backward direction's output at its first token: the final states PyTorch's LSTM returns for
//! packed sequences. Tensor names are PyTorch's (`nn.Embedding`, `nn.LSTM` / `nn.GRU` with
//! `batch_first`, `nn.Linear`), so that a PyTorch module of this layout loads the weights
//! as they are.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::seq2seq::{check_encoder_out, check_ids, check_vocab, Seq2Seq, Seq2SeqCache};
use super::{Linear, Loader, Weight};
use crate::error::{MedgenError, Result};

/// The `model_type` of its `config.json`.
pub const MODEL_TYPE: &str = "medgen_rnn";

/// The most parameters a recurrent model may have (8 GB of f32).
const MAX_PARAMETERS: i64 = 1 << 31;

/// The recurrent cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cell {
    Lstm,
    Gru,
}

impl Cell {
    /// Gates stacked in each weight matrix (PyTorch's order: i, f, g, o; r, z, n).
    pub fn gates(self) -> i64 {
        match self {
            Cell::Lstm => 4,
            Cell::Gru => 3,
        }
    }
}

/// How a decoder state scores an encoder output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scoring {
    /// `h · e` (needs the encoder's width to be the decoder's).
    Dot,
    /// Luong's general: `linear_in(h) · e`.
    Luong,
    /// Bahdanau's additive: `v · tanh(query(h) + key(e))`.
    Bahdanau,
}

/// `config.json` of a recurrent model (besides `"model_type": "medgen_rnn"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RnnConfig {
    pub cell: Cell,
    pub vocab_size: usize,
    pub embedding_size: usize,
    /// Each direction's hidden size in the encoder, and the decoder's.
    pub hidden_size: usize,
    pub encoder_layers: usize,
    pub decoder_layers: usize,
    pub bidirectional: bool,
    pub attention: Scoring,
    /// Each decoder step's input is its token's embedding and the previous step's
    /// attentional output (Luong's input feeding).
    pub input_feeding: bool,
    /// The output projection is the decoder embedding (needs `embedding_size == hidden_size`).
    pub tie_embeddings: bool,
    /// Between recurrent layers, while training.
    pub dropout: f64,
    /// While training, each decoder input is the target's token with this probability, else
    /// the model's own previous prediction (scheduled sampling); 1 always feeds the target.
    pub teacher_forcing_ratio: f64,
    pub pad_token_id: u32,
    /// The decoder's first input.
    pub decoder_start_token_id: u32,
    pub eos_token_id: u32,
    /// The longest input, and the most new tokens, medgen accepts.
    pub max_length: usize,
}

impl RnnConfig {
    /// Reads `config.json` (its `model_type` removed).
    pub fn from_json(json: &serde_json::Value) -> Result<Self> {
        let mut fields = json.clone();
        if let Some(o) = fields.as_object_mut() {
            o.remove("model_type");
        }
        let cfg: RnnConfig = serde_json::from_value(fields).map_err(|e| MedgenError::format(format!("config.json of a {MODEL_TYPE} model: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The width of the encoder's outputs.
    pub fn encoder_width(&self) -> usize {
        self.hidden_size * if self.bidirectional { 2 } else { 1 }
    }

    /// Refuses sizes of 0 (or absurd ones), special tokens outside the vocabulary and
    /// combinations the layers cannot compute.
    pub fn validate(&self) -> Result<()> {
        let sizes = [
            ("vocab_size", self.vocab_size),
            ("embedding_size", self.embedding_size),
            ("hidden_size", self.hidden_size),
            ("encoder_layers", self.encoder_layers),
            ("decoder_layers", self.decoder_layers),
            ("max_length", self.max_length),
        ];
        for (name, v) in sizes {
            if v == 0 || v > super::config::MAX_DIM {
                return Err(MedgenError::invalid(name, format!("{v} is not in 1..={}", super::config::MAX_DIM)));
            }
        }
        if self.encoder_layers.max(self.decoder_layers) > 64 {
            return Err(MedgenError::invalid("layers", "more than 64 recurrent layers"));
        }
        let ids = [("pad_token_id", self.pad_token_id), ("decoder_start_token_id", self.decoder_start_token_id), ("eos_token_id", self.eos_token_id)];
        for (name, id) in ids {
            if id as usize >= self.vocab_size {
                return Err(MedgenError::invalid(name, format!("special token {id} is outside the vocabulary of {}: the vocabulary is smaller than its special tokens", self.vocab_size)));
            }
        }
        if self.attention == Scoring::Dot && self.encoder_width() != self.hidden_size {
            return Err(MedgenError::invalid("attention", format!("dot attention needs the encoder's width ({}) to equal the decoder's hidden size ({}): use luong or bahdanau with a bidirectional encoder", self.encoder_width(), self.hidden_size)));
        }
        if self.tie_embeddings && self.embedding_size != self.hidden_size {
            return Err(MedgenError::invalid("tie_embeddings", format!("a tied output projection needs embedding_size ({}) = hidden_size ({})", self.embedding_size, self.hidden_size)));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(MedgenError::invalid("dropout", format!("{} is not in [0, 1)", self.dropout)));
        }
        if !(0.0..=1.0).contains(&self.teacher_forcing_ratio) {
            return Err(MedgenError::invalid("teacher_forcing_ratio", format!("{} is not in [0, 1]", self.teacher_forcing_ratio)));
        }
        // Each size is bounded, their products are not: refuse a model too large to allocate
        // before any tensor is made, rather than abort on the allocation.
        let parameters: i64 = self.tensor_shapes().iter().map(|(_, s)| s.iter().product::<i64>()).sum();
        if parameters > MAX_PARAMETERS {
            return Err(MedgenError::invalid("hidden_size", format!("these sizes make {parameters} parameters; the most medgen makes is {MAX_PARAMETERS}")));
        }
        Ok(())
    }

    /// Every tensor of the model, by name, with its shape: what `model.safetensors` holds.
    pub fn tensor_shapes(&self) -> Vec<(String, Vec<i64>)> {
        let (v, e, h) = (self.vocab_size as i64, self.embedding_size as i64, self.hidden_size as i64);
        let (g, w) = (self.cell.gates(), self.encoder_width() as i64);
        let mut out = vec![("encoder.embedding.weight".to_string(), vec![v, e]), ("decoder.embedding.weight".to_string(), vec![v, e])];
        let rnn = |out: &mut Vec<(String, Vec<i64>)>, prefix: &str, layer: usize, suffix: &str, input: i64| {
            out.push((format!("{prefix}.weight_ih_l{layer}{suffix}"), vec![g * h, input]));
            out.push((format!("{prefix}.weight_hh_l{layer}{suffix}"), vec![g * h, h]));
            out.push((format!("{prefix}.bias_ih_l{layer}{suffix}"), vec![g * h]));
            out.push((format!("{prefix}.bias_hh_l{layer}{suffix}"), vec![g * h]));
        };
        for l in 0..self.encoder_layers {
            let input = if l == 0 { e } else { w };
            rnn(&mut out, "encoder.rnn", l, "", input);
            if self.bidirectional {
                rnn(&mut out, "encoder.rnn", l, "_reverse", input);
            }
        }
        for l in 0..self.decoder_layers {
            let input = if l > 0 { h } else if self.input_feeding { e + h } else { e };
            rnn(&mut out, "decoder.rnn", l, "", input);
        }
        out.push(("bridge.weight".into(), vec![h, w]));
        out.push(("bridge.bias".into(), vec![h]));
        match self.attention {
            Scoring::Dot => {}
            Scoring::Luong => out.push(("attention.linear_in.weight".into(), vec![w, h])),
            Scoring::Bahdanau => {
                out.push(("attention.query.weight".into(), vec![h, h]));
                out.push(("attention.key.weight".into(), vec![h, w]));
                out.push(("attention.key.bias".into(), vec![h]));
                out.push(("attention.v.weight".into(), vec![1, h]));
            }
        }
        out.push(("attention.linear_out.weight".into(), vec![h, w + h]));
        if !self.tie_embeddings {
            out.push(("out_proj.weight".into(), vec![v, h]));
        }
        out.push(("out_proj.bias".into(), vec![v]));
        out
    }
}

/// One direction of one recurrent layer: `[w_ih, w_hh, b_ih, b_hh]`, as libtorch's fused
/// LSTM and GRU take them.
struct Direction([Weight; 4]);

/// A decoder layer as two linear layers (`W_ih x + b_ih`, `W_hh h + b_hh`, sharing the
/// weights), for the CPU decode step.
struct Step {
    ih: Linear,
    hh: Linear,
}

impl Step {
    fn of(d: &Direction) -> Self {
        let [w_ih, w_hh, b_ih, b_hh] = &d.0;
        let bias = |b: &Weight| Some(Weight(b.shallow_clone()));
        Step { ih: Linear::from_weight(w_ih, bias(b_ih)), hh: Linear::from_weight(w_hh, bias(b_hh)) }
    }
}

impl Direction {
    fn load(w: &Loader, prefix: &str, layer: usize, suffix: &str, gates: i64, input: i64, hidden: i64) -> Result<Self> {
        let get = |name: &str, shape: &[i64]| w.get(&format!("{prefix}.{name}_l{layer}{suffix}"), shape);
        Ok(Direction([
            get("weight_ih", &[gates * hidden, input])?,
            get("weight_hh", &[gates * hidden, hidden])?,
            get("bias_ih", &[gates * hidden])?,
            get("bias_hh", &[gates * hidden])?,
        ]))
    }

    fn params(&self) -> Vec<&Tensor> {
        self.0.iter().map(|w| &**w).collect()
    }
}

/// The decoder's state between steps: `h` (and `c`) `[layers, b, hidden]`, and the last
/// attentional output `[b, hidden]` (input feeding).
struct State {
    h: Tensor,
    c: Option<Tensor>,
    feed: Tensor,
}

pub(crate) struct Rnn {
    cfg: RnnConfig,
    enc_embed: Weight,
    dec_embed: Weight,
    /// Per encoder layer: forward, and backward when bidirectional.
    encoder: Vec<Vec<Direction>>,
    decoder: Vec<Direction>,
    steps: Vec<Step>,
    bridge: Linear,
    linear_in: Option<Linear>,
    /// Bahdanau: query, key and v.
    additive: Option<(Linear, Linear, Linear)>,
    linear_out: Linear,
    out: Linear,
    kind: Kind,
}

impl Rnn {
    pub fn load(cfg: &RnnConfig, w: &Loader) -> Result<Self> {
        // The fused recurrent kernels take every parameter in the activations' kind.
        let w = &w.with_kinds(w.act, w.act);
        let (v, e, h, g, width) = (cfg.vocab_size as i64, cfg.embedding_size as i64, cfg.hidden_size as i64, cfg.cell.gates(), cfg.encoder_width() as i64);
        let mut encoder = Vec::with_capacity(cfg.encoder_layers);
        for l in 0..cfg.encoder_layers {
            let input = if l == 0 { e } else { width };
            let mut dirs = vec![Direction::load(w, "encoder.rnn", l, "", g, input, h)?];
            if cfg.bidirectional {
                dirs.push(Direction::load(w, "encoder.rnn", l, "_reverse", g, input, h)?);
            }
            encoder.push(dirs);
        }
        let decoder = (0..cfg.decoder_layers)
            .map(|l| {
                let input = if l > 0 { h } else if cfg.input_feeding { e + h } else { e };
                Direction::load(w, "decoder.rnn", l, "", g, input, h)
            })
            .collect::<Result<Vec<_>>>()?;
        let dec_embed = w.get("decoder.embedding.weight", &[v, e])?;
        let out = if cfg.tie_embeddings {
            Linear::from_weight(&dec_embed, Some(w.get("out_proj.bias", &[v])?))
        } else {
            Linear::load(w, "out_proj", v, h, true)?
        };
        Ok(Rnn {
            enc_embed: w.get("encoder.embedding.weight", &[v, e])?,
            dec_embed,
            encoder,
            steps: decoder.iter().map(Step::of).collect(),
            decoder,
            bridge: Linear::load(w, "bridge", h, width, true)?,
            linear_in: (cfg.attention == Scoring::Luong).then(|| Linear::load(w, "attention.linear_in", width, h, false)).transpose()?,
            additive: match cfg.attention {
                Scoring::Bahdanau => Some((
                    Linear::load(w, "attention.query", h, h, false)?,
                    Linear::load(w, "attention.key", h, width, true)?,
                    Linear::load(w, "attention.v", 1, h, false)?,
                )),
                _ => None,
            },
            linear_out: Linear::load(w, "attention.linear_out", h, width + h, false)?,
            out,
            cfg: cfg.clone(),
            kind: w.act,
        })
    }

    fn training(&self) -> bool {
        super::layers::training()
    }

    /// One direction of one layer over `x` (`[b, s, in]`) from a zero state: `[b, s, hidden]`.
    fn run(&self, x: &Tensor, dir: &Direction) -> Result<Tensor> {
        let zeros = Tensor::f_zeros([1, x.size()[0], self.cfg.hidden_size as i64], (self.kind, x.device()))?;
        let params = dir.params();
        Ok(match self.cfg.cell {
            Cell::Lstm => x.f_lstm(&[&zeros, &zeros], &params, true, 1, 0.0, self.training(), false, true)?.0,
            Cell::Gru => x.f_gru(&zeros, &params, true, 1, 0.0, self.training(), false, true)?.0,
        })
    }

    /// The decoder's first state from the encoder's output and mask.
    fn initial_state(&self, enc: &Tensor, mask: &Tensor) -> Result<State> {
        let (b, h) = (enc.size()[0], self.cfg.hidden_size as i64);
        let last = mask.f_sum_dim_intlist(1, false, Kind::Int64)?.f_sub_scalar(1)?.f_clamp_min(0)?;
        let at = |x: &Tensor, index: &Tensor| -> Result<Tensor> {
            let index = index.f_view([b, 1, 1])?.f_expand([b, 1, x.size()[2]], false)?;
            Ok(x.f_gather(1, &index, false)?.f_squeeze_dim(1)?)
        };
        let summary = if self.cfg.bidirectional {
            let forward = at(&enc.f_narrow(2, 0, h)?, &last)?;
            let backward = enc.f_narrow(2, h, h)?.f_select(1, 0)?;
            Tensor::f_cat(&[forward, backward], 1)?
        } else {
            at(enc, &last)?
        };
        let h0 = self.bridge.forward(&summary)?.f_tanh()?;
        let layers = self.cfg.decoder_layers as i64;
        let h0 = h0.f_unsqueeze(0)?.f_expand([layers, b, h], false)?.f_contiguous()?;
        let c = (self.cfg.cell == Cell::Lstm).then(|| Tensor::f_zeros([layers, b, h], (self.kind, enc.device()))).transpose()?;
        Ok(State { h: h0, c, feed: Tensor::f_zeros([b, h], (self.kind, enc.device()))? })
    }

    /// The decoder's recurrent layers over `x` (`[b, t, in]`) from `state`: `[b, t, hidden]`.
    fn recur(&self, x: &Tensor, state: &mut State) -> Result<Tensor> {
        let params: Vec<&Tensor> = self.decoder.iter().flat_map(Direction::params).collect();
        let (layers, p, train) = (self.cfg.decoder_layers as i64, self.cfg.dropout, self.training());
        match (&self.cfg.cell, &state.c) {
            (Cell::Lstm, Some(c)) => {
                let (out, h, c) = x.f_lstm(&[&state.h, c], &params, true, layers, p, train, false, true)?;
                (state.h, state.c) = (h, Some(c));
                Ok(out)
            }
            _ => {
                let (out, h) = x.f_gru(&state.h, &params, true, layers, p, train, false, true)?;
                state.h = h;
                Ok(out)
            }
        }
    }

    /// The attentional outputs `tanh(linear_out([context; h]))` of decoder outputs `h`
    /// (`[b, t, hidden]`) over the encoder's outputs; `keys` is Bahdanau's `key(enc)`.
    fn attend(&self, h: &Tensor, enc: &Tensor, keys: Option<&Tensor>, pad: &Tensor) -> Result<Tensor> {
        let scores = match (&self.linear_in, &self.additive, keys) {
            (Some(lin), _, _) => lin.forward(h)?.f_matmul(&enc.f_transpose(1, 2)?)?,
            (_, Some((query, _, v)), Some(keys)) => {
                let q = query.forward(h)?.f_unsqueeze(2)?;
                v.forward(&q.f_add(&keys.f_unsqueeze(1)?)?.f_tanh()?)?.f_squeeze_dim(3)?
            }
            _ => h.f_matmul(&enc.f_transpose(1, 2)?)?,
        };
        let probs = scores.f_masked_fill(pad, f64::NEG_INFINITY)?.f_softmax(-1, self.kind)?;
        let context = probs.f_matmul(enc)?;
        self.linear_out.forward(&Tensor::f_cat(&[&context, h], 2)?)?.f_tanh().map_err(Into::into)
    }
}

impl Seq2Seq for Rnn {
    fn encode(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, s) = check_ids("input_ids", ids, Some(mask))?;
        check_vocab("input_ids", ids, self.cfg.vocab_size)?;
        if s as usize > self.cfg.max_length {
            return Err(MedgenError::context(s as usize, self.cfg.max_length, "the recurrent model's max_length"));
        }
        let lengths = mask.f_ne(0)?.f_sum_dim_intlist(1, true, Kind::Int64)?;
        // Reverses each row within its length (padding stays at the end): the backward
        // direction then reads each input from its last token, as packed sequences do.
        let positions = Tensor::f_arange(s, (Kind::Int64, ids.device()))?.f_unsqueeze(0)?.f_expand([b, s], false)?;
        let reversed = lengths.f_sub_scalar(1)?.f_sub(&positions)?;
        let index = reversed.f_where_self(&reversed.f_ge(0)?, &positions)?;
        let flip = |x: &Tensor| -> Result<Tensor> { Ok(x.f_gather(1, &index.f_unsqueeze(2)?.f_expand([b, s, x.size()[2]], false)?, false)?) };
        let mut x = Tensor::f_embedding(&self.enc_embed, ids, -1, false, false)?.f_to_kind(self.kind)?;
        for (l, dirs) in self.encoder.iter().enumerate() {
            let mut outs = vec![self.run(&x, &dirs[0])?];
            if let Some(backward) = dirs.get(1) {
                outs.push(flip(&self.run(&flip(&x)?, backward)?)?);
            }
            x = Tensor::f_cat(&outs, 2)?;
            if l + 1 < self.encoder.len() {
                x = super::dropout(x, self.cfg.dropout)?;
            }
        }
        Ok(x)
    }

    fn new_cache(&self, batch: usize, capacity: usize) -> Result<Seq2SeqCache> {
        Seq2SeqCache::new(0, [batch as i64, 1, 1], capacity, self.kind, self.enc_embed.device())
    }

    fn decode(&self, ids: &Tensor, encoder_out: &Tensor, encoder_mask: &Tensor, cache: &mut Seq2SeqCache) -> Result<Tensor> {
        let (b, t) = check_ids("decoder_input_ids", ids, None)?;
        check_vocab("decoder_input_ids", ids, self.cfg.vocab_size)?;
        check_encoder_out(encoder_out, encoder_mask, b, self.cfg.encoder_width())?;
        if cache.len() + t as usize > self.cfg.max_length {
            return Err(MedgenError::context(cache.len() + t as usize, self.cfg.max_length, "the recurrent model's max_length"));
        }
        let mut state = match cache.recurrent_state().as_deref() {
            Some([h, c, feed]) => State { h: h.shallow_clone(), c: Some(c.shallow_clone()), feed: feed.shallow_clone() },
            Some([h, feed]) => State { h: h.shallow_clone(), c: None, feed: feed.shallow_clone() },
            _ => self.initial_state(encoder_out, encoder_mask)?,
        };
        let pad = encoder_mask.f_eq(0)?.f_unsqueeze(1)?;
        let keys = self.additive.as_ref().map(|(_, key, _)| key.forward(encoder_out)).transpose()?;
        let embed = |ids: &Tensor| -> Result<Tensor> { Ok(Tensor::f_embedding(&self.dec_embed, ids, -1, false, false)?.f_to_kind(self.kind)?) };
        let sampling = self.training() && self.cfg.teacher_forcing_ratio < 1.0;
        let attentional = if !self.cfg.input_feeding && !sampling {
            // Every step's input is known: one pass of the recurrent layers over all of them.
            let h = self.recur(&embed(ids)?, &mut state)?;
            let out = self.attend(&h, encoder_out, keys.as_ref(), &pad)?;
            state.feed = out.f_select(1, t - 1)?;
            out
        } else {
            let mut outs = Vec::with_capacity(t as usize);
            let mut token = ids.f_narrow(1, 0, 1)?;
            for j in 0..t {
                if j > 0 {
                    token = ids.f_narrow(1, j, 1)?;
                    if sampling {
                        // Scheduled sampling: each row keeps the target with the ratio's
                        // probability, else takes its own previous prediction.
                        let last: &Tensor = &outs[j as usize - 1];
                        let predicted = tch::no_grad(|| self.out.forward(last)?.f_argmax(-1, false).map_err(MedgenError::from))?;
                        let keep = Tensor::f_rand([b, 1], (Kind::Float, ids.device()))?.f_lt(self.cfg.teacher_forcing_ratio)?;
                        token = token.f_where_self(&keep, &predicted)?;
                    }
                }
                let mut input = embed(&token)?;
                if self.cfg.input_feeding {
                    input = Tensor::f_cat(&[input, state.feed.f_unsqueeze(1)?], 2)?;
                }
                let h = self.recur(&input, &mut state)?;
                let out = self.attend(&h, encoder_out, keys.as_ref(), &pad)?;
                state.feed = out.f_squeeze_dim(1)?;
                outs.push(out);
            }
            Tensor::f_cat(&outs, 1)?
        };
        let logits = self.out.forward(&attentional)?.f_to_kind(Kind::Float)?;
        let mut kept = vec![(state.h, 1)];
        kept.extend(state.c.map(|c| (c, 1)));
        kept.push((state.feed, 0));
        cache.set_recurrent_state(kept);
        cache.advance(t as usize);
        Ok(logits)
    }

    /// One step of every row on CPU slices with medgen's kernels, without a libtorch call per
    /// operation: the recurrent layers as two products each and their gates, the attention
    /// row by row, the output projection.
    fn decode_cpu(&self, tokens: &[u32], encoder_out: &Tensor, encoder_mask: &Tensor, cache: &mut Seq2SeqCache) -> Result<Option<Vec<f32>>> {
        let m = tokens.len();
        let on_kernels = self.steps.iter().all(|s| s.ih.on_kernels() && s.hh.on_kernels())
            && self.linear_in.as_ref().is_none_or(Linear::on_kernels)
            && self.additive.as_ref().is_none_or(|(q, _, v)| q.on_kernels() && v.on_kernels())
            && self.linear_out.on_kernels()
            && self.out.on_kernels()
            && self.dec_embed.f32_slice().is_some()
            && encoder_out.device() == tch::Device::Cpu
            && encoder_out.kind() == Kind::Float
            && !self.training();
        if !on_kernels || m == 0 {
            return Ok(None);
        }
        check_encoder_out(encoder_out, encoder_mask, m as i64, self.cfg.encoder_width())?;
        if let Some(bad) = tokens.iter().find(|&&t| t as usize >= self.cfg.vocab_size) {
            return Err(MedgenError::invalid("decoder_input_ids", format!("token id {bad} is outside the vocabulary of {}", self.cfg.vocab_size)));
        }
        if cache.len() + 1 > self.cfg.max_length {
            return Err(MedgenError::context(cache.len() + 1, self.cfg.max_length, "the recurrent model's max_length"));
        }
        let (h, e, w, layers) = (self.cfg.hidden_size, self.cfg.embedding_size, self.cfg.encoder_width(), self.cfg.decoder_layers);
        let lstm = self.cfg.cell == Cell::Lstm;
        let state = match cache.recurrent_state() {
            Some(s) => s,
            None => {
                let s = self.initial_state(encoder_out, encoder_mask)?;
                let mut v = vec![s.h];
                v.extend(s.c);
                v.push(s.feed);
                v
            }
        };
        let read = |t: &Tensor| -> Result<Vec<f32>> { Ok(Vec::<f32>::try_from(t.f_to_kind(Kind::Float)?.f_contiguous()?.f_view([-1])?)?) };
        let (mut hs, mut cs, feed) = (read(&state[0])?, if lstm { read(&state[1])? } else { Vec::new() }, read(&state[state.len() - 1])?);
        let embed = self.dec_embed.f32_slice().unwrap_or(&[]);
        // Each row's input: its token's embedding, then the last attentional output.
        let width = if self.cfg.input_feeding { e + h } else { e };
        let mut x = Vec::with_capacity(m * width);
        for (r, &t) in tokens.iter().enumerate() {
            x.extend_from_slice(&embed[t as usize * e..(t as usize + 1) * e]);
            if self.cfg.input_feeding {
                x.extend_from_slice(&feed[r * h..(r + 1) * h]);
            }
        }
        let g = self.cfg.cell.gates() as usize;
        let sigmoid = |v: f32| 1.0 / (1.0 + (-v).exp());
        for (l, step) in self.steps.iter().enumerate() {
            let (mut gi, mut gh) = (vec![0.0; m * g * h], vec![0.0; m * g * h]);
            let hl = &mut hs[l * m * h..(l + 1) * m * h];
            if !(step.ih.matvec(&x, &mut gi) && step.hh.matvec(hl, &mut gh)) {
                return Ok(None);
            }
            for r in 0..m {
                let (a, b) = (&gi[r * g * h..(r + 1) * g * h], &gh[r * g * h..(r + 1) * g * h]);
                let hr = &mut hl[r * h..(r + 1) * h];
                if lstm {
                    let cr = &mut cs[(l * m + r) * h..(l * m + r + 1) * h];
                    for j in 0..h {
                        let gate = |k: usize| a[k * h + j] + b[k * h + j];
                        let (i, f, c, o) = (sigmoid(gate(0)), sigmoid(gate(1)), gate(2).tanh(), sigmoid(gate(3)));
                        cr[j] = f * cr[j] + i * c;
                        hr[j] = o * cr[j].tanh();
                    }
                } else {
                    for j in 0..h {
                        let reset = sigmoid(a[j] + b[j]);
                        let update = sigmoid(a[h + j] + b[h + j]);
                        let new = (a[2 * h + j] + reset * b[2 * h + j]).tanh();
                        hr[j] = (1.0 - update) * new + update * hr[j];
                    }
                }
            }
            x = hl.to_vec();
        }
        // Attention of the top layer's output over each row's encoder outputs.
        let top = x;
        // Read in place: the session passes the same encoder output every step.
        let enc_tensor = encoder_out.f_contiguous()?;
        let enc = Weight(enc_tensor.shallow_clone());
        let Some(enc) = enc.f32_slice() else { return Ok(None) };
        let mask = Vec::<i64>::try_from(encoder_mask.f_to_kind(Kind::Int64)?.f_contiguous()?.f_view([-1])?)?;
        let s = encoder_out.size()[1] as usize;
        let mut queries = vec![0.0; m * w];
        match (&self.linear_in, &self.additive) {
            (Some(lin), _) => {
                lin.matvec(&top, &mut queries);
            }
            (_, Some((query, _, _))) => {
                queries = vec![0.0; m * h];
                query.matvec(&top, &mut queries);
            }
            _ => queries.copy_from_slice(&top),
        }
        let keys = match &self.additive {
            Some((_, key, _)) => Some(Vec::<f32>::try_from(key.forward(encoder_out)?.f_contiguous()?.f_view([-1])?)?),
            None => None,
        };
        let v = self.additive.as_ref().and_then(|(_, _, v)| v.weight_f32());
        let mut joined = vec![0.0; m * (w + h)];
        for r in 0..m {
            let rows = &enc[r * s * w..(r + 1) * s * w];
            let mut scores: Vec<f32> = (0..s)
                .map(|p| {
                    if mask[r * s + p] == 0 {
                        return f32::NEG_INFINITY;
                    }
                    match (&keys, v) {
                        (Some(k), Some(v)) => {
                            let (q, k) = (&queries[r * h..(r + 1) * h], &k[(r * s + p) * h..(r * s + p + 1) * h]);
                            q.iter().zip(k).zip(v).map(|((q, k), v)| v * (q + k).tanh()).sum()
                        }
                        _ => queries[r * w..(r + 1) * w].iter().zip(&rows[p * w..(p + 1) * w]).map(|(a, b)| a * b).sum(),
                    }
                })
                .collect();
            let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let total: f32 = scores.iter_mut().map(|x| {
                *x = (*x - max).exp();
                *x
            }).sum();
            let context = &mut joined[r * (w + h)..r * (w + h) + w];
            for (p, &weight) in scores.iter().enumerate() {
                let weight = weight / total;
                context.iter_mut().zip(&rows[p * w..(p + 1) * w]).for_each(|(c, e)| *c += weight * e);
            }
            joined[r * (w + h) + w..(r + 1) * (w + h)].copy_from_slice(&top[r * h..(r + 1) * h]);
        }
        let mut attentional = vec![0.0; m * h];
        self.linear_out.matvec(&joined, &mut attentional);
        attentional.iter_mut().for_each(|a| *a = a.tanh());
        let mut logits = vec![0.0; m * self.cfg.vocab_size];
        self.out.matvec(&attentional, &mut logits);
        let device = encoder_out.device();
        let tensor = |v: &[f32], shape: &[i64]| -> Result<Tensor> { Ok(Tensor::f_from_slice(v)?.f_view(shape)?.f_to_kind(self.kind)?.f_to_device(device)?) };
        let (l, m, h) = (layers as i64, m as i64, h as i64);
        let mut kept = vec![(tensor(&hs, &[l, m, h])?, 1)];
        if lstm {
            kept.push((tensor(&cs, &[l, m, h])?, 1));
        }
        kept.push((tensor(&attentional, &[m, h])?, 0));
        cache.set_recurrent_state(kept);
        cache.advance(1);
        Ok(Some(logits))
    }
}
