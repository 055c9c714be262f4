//! The learned PHI tagger: a token classifier (BIO tags over [`Category`]) that finds what the
//! rules miss, in English and Chinese, on CPU.
//!
//! **Tokens.** Whitespace separates tokens and is never one. A token is a run of letters, a run
//! of digits (at most 32 characters each), one Han character, or one other character
//! (punctuation, a symbol); combining marks stay with the character before them.
//!
//! **Features.** Each token has [`FEATURES`] hashed features (FNV-1a, 64-bit, of a tag byte and
//! a string, modulo `buckets`): the lower-cased token; its shape (`X` upper, `x` lower, `d`
//! digit, `H` Han, other characters as they are, runs cut to two); its first and last three
//! characters (tokens over three); its class and length; whether it touches the tokens before
//! and after it; whether it starts a line; and which of the rules' word lists hold it (given
//! names, family names, cities, regions, not-names; Chinese family names and given-name
//! characters). A word whose bucket training saw too rarely to learn is read as the unknown
//! word ([`unknown_word`]); the file's `known_words` tensor marks the buckets it learned.
//!
//! **Network.** The features' embeddings are summed, then a linear layer and ReLU (to
//! `hidden`), then one residual block per dilation (`h + relu(conv1d(h))`, kernel 3, then a
//! layer norm), then a linear layer to the labels: 0 is `O`, `1 + 2c` is `B-` and `2 + 2c` is
//! `I-` of the `c`-th category of [`Category::ALL`]. Long texts run in windows of
//! [`WINDOW`] tokens with [`MARGIN`] tokens of context either side, masked so that the result
//! equals one pass over the whole text. Training differentiates [`Tagger::forward`] in
//! libtorch; inference runs the same arithmetic on medgen's own CPU kernels
//! ([`super::tagger_cpu`]), one text at a time on the calling thread.
//!
//! **Spans.** A token tagged `B-c`, or `I-c` after anything but `c`, starts an entity; `I-c`
//! continues one. Its confidence is the mean probability of its category over its tokens; it
//! is kept when at least the category's threshold, chosen on a validation split when the
//! tagger was trained.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};

use tch::{Kind, Tensor};

use super::detect::Span;
use super::tagger_cpu::Cpu;
use super::{lexicon, Category};
use crate::error::{MedgenError, Result};
use crate::formats::safetensors::SafetensorsSet;
use crate::models::layers::Weight;

/// Hashed features per token.
pub const FEATURES: usize = 8;
/// Tokens per window of a long text.
pub const WINDOW: usize = 1024;
/// Context tokens either side of a window: at least the receptive field's radius.
pub const MARGIN: usize = 32;
/// The number of labels: `O`, then `B-` and `I-` for each category.
pub const LABELS: usize = 1 + 2 * Category::ALL.len();
const MAX_TOKEN_CHARS: usize = 32;
const KERNEL: i64 = 3;

/// The tagger shipped with medgen (`make deid-model` rebuilds it).
static BUILTIN: &[u8] = include_bytes!("../../assets/deid-tagger.safetensors");

/// SHA-256 of a tagger file's bytes, or of the built-in tagger's (`None`), in lowercase hex.
pub fn sha256(path: Option<&Path>) -> Result<String> {
    static BUILTIN_SHA: LazyLock<String> = LazyLock::new(|| {
        use sha2::Digest;
        sha2::Sha256::digest(BUILTIN).iter().map(|b| format!("{b:02x}")).collect()
    });
    match path {
        Some(p) => crate::audit::sha256_path(p),
        None => Ok(BUILTIN_SHA.clone()),
    }
}

/// The sizes of a tagger.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TaggerConfig {
    /// Hash buckets of the feature embedding (default 65,536).
    pub buckets: usize,
    /// Width of the feature embeddings (default 48).
    pub dim: usize,
    /// Width of the convolutional blocks (default 128).
    pub hidden: usize,
    /// One residual block per entry, with this dilation (default 1, 2, 4, 8: 31 tokens seen).
    pub dilations: Vec<usize>,
}

impl Default for TaggerConfig {
    fn default() -> Self {
        TaggerConfig { buckets: 1 << 16, dim: 48, hidden: 128, dilations: vec![1, 2, 4, 8] }
    }
}

impl TaggerConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(MedgenError::invalid("tagger", reason));
        if !(1..=1 << 22).contains(&self.buckets) || !(1..=1024).contains(&self.dim) || !(1..=1024).contains(&self.hidden) {
            return bad(format!("buckets {}, dim {}, hidden {}: each must be at least 1 (at most 2^22, 1024, 1024)", self.buckets, self.dim, self.hidden));
        }
        let radius: usize = self.dilations.iter().sum();
        if self.dilations.is_empty() || self.dilations.len() > 16 || self.dilations.contains(&0) || radius > MARGIN {
            return bad(format!("dilations {:?}: 1 to 16 blocks, each at least 1, summing to at most {MARGIN}", self.dilations));
        }
        Ok(())
    }

    /// Parameter names and shapes, in the order of the PyTorch reference module's state dict.
    pub(crate) fn shapes(&self) -> Vec<(String, Vec<i64>)> {
        let (b, d, h, l) = (self.buckets as i64, self.dim as i64, self.hidden as i64, LABELS as i64);
        let mut out = vec![("embed.weight".into(), vec![b, d]), ("input.weight".into(), vec![h, d]), ("input.bias".into(), vec![h])];
        for i in 0..self.dilations.len() {
            out.push((format!("blocks.{i}.conv.weight"), vec![h, h, KERNEL]));
            out.push((format!("blocks.{i}.conv.bias"), vec![h]));
            out.push((format!("blocks.{i}.norm.weight"), vec![h]));
            out.push((format!("blocks.{i}.norm.bias"), vec![h]));
        }
        out.push(("output.weight".into(), vec![l, h]));
        out.push(("output.bias".into(), vec![l]));
        out
    }
}

/// A token: byte offsets into the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub start: usize,
    pub end: usize,
}

/// A trained tagger. Cheap to share between threads: its weights are only read.
pub struct Tagger {
    pub config: TaggerConfig,
    /// The least confidence at which an entity of each category (in [`Category::ALL`] order)
    /// is kept.
    pub thresholds: [f32; Category::ALL.len()],
    /// Per hash bucket of the word feature, whether training saw words there often enough
    /// to learn them; a word in any other bucket is read as the unknown word. None: all known.
    pub(crate) known: Option<Vec<bool>>,
    /// Parameters by name, as [`TaggerConfig::shapes`] lists them.
    weights: Vec<(String, Weight)>,
    /// The network for inference, made from `weights` at its first use.
    cpu: OnceLock<Cpu>,
}

impl Tagger {
    /// The tagger shipped with medgen, read once per process.
    pub fn builtin() -> Result<Arc<Tagger>> {
        static CELL: LazyLock<std::result::Result<Arc<Tagger>, String>> = LazyLock::new(|| {
            SafetensorsSet::from_static("deid-tagger.safetensors (built in)", BUILTIN)
                .and_then(|set| Tagger::from_set(&set, "the built-in tagger"))
                .map(Arc::new)
                .map_err(|e| match e {
                    MedgenError::ModelFormat(m) => m,
                    e => e.to_string(),
                })
        });
        CELL.clone().map_err(MedgenError::format)
    }

    /// A tagger from a file written by [`Tagger::save`] (or `medgen deid train`); the same
    /// unchanged file is read once per process.
    pub fn load(path: &Path) -> Result<Arc<Tagger>> {
        type Loaded = (std::time::SystemTime, u64, Arc<Tagger>);
        static CACHE: LazyLock<Mutex<HashMap<PathBuf, Loaded>>> = LazyLock::new(Default::default);
        let meta = std::fs::metadata(path).map_err(|e| MedgenError::io(path, e))?;
        let stamp = (meta.modified().map_err(|e| MedgenError::io(path, e))?, meta.len());
        let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((t, n, tagger)) = cache.get(path) {
            if (*t, *n) == stamp {
                return Ok(tagger.clone());
            }
        }
        let set = SafetensorsSet::open_file(path)?;
        let tagger = Arc::new(Tagger::from_set(&set, &path.display().to_string())?);
        cache.insert(path.to_path_buf(), (stamp.0, stamp.1, tagger.clone()));
        Ok(tagger)
    }

    fn from_set(set: &SafetensorsSet, name: &str) -> Result<Tagger> {
        let bad = |m: String| MedgenError::format(format!("{name}: {m}"));
        let config: TaggerConfig = serde_json::from_str(set.metadata("config").ok_or_else(|| bad("no tagger config in its metadata".into()))?)
            .map_err(|e| bad(format!("tagger config: {e}")))?;
        config.validate().map_err(|e| bad(e.to_string()))?;
        let thresholds = match set.metadata("thresholds") {
            Some(t) => parse_thresholds(t).map_err(|e| bad(e.to_string()))?,
            None => [0.5; Category::ALL.len()],
        };
        let weights = config
            .shapes()
            .into_iter()
            .map(|(n, shape)| {
                let t = set.tensor(&n)?.f_to_kind(Kind::Float)?;
                if t.size() != shape {
                    return Err(bad(format!("`{n}` has shape {:?}, expected {shape:?}", t.size())));
                }
                // A NaN or infinite weight makes every confidence NaN: refused, not run.
                if t.f_isfinite()?.f_all()?.f_int64_value(&[])? == 0 {
                    return Err(bad(format!("`{n}` holds NaN or infinite values")));
                }
                Ok((n, Weight(t)))
            })
            .collect::<Result<_>>()?;
        let known = if set.contains("known_words") {
            let k = set.tensor("known_words")?.f_to_kind(Kind::Float)?;
            if k.size() != [config.buckets as i64] {
                return Err(bad(format!("`known_words` has shape {:?}, expected [{}]", k.size(), config.buckets)));
            }
            Some(Vec::<f32>::try_from(k)?.into_iter().map(|v| v != 0.0).collect())
        } else {
            None
        };
        Ok(Tagger { config, thresholds, known, weights, cpu: OnceLock::new() })
    }

    /// A tagger over tensors being trained (shared, not copied, by [`Tagger::forward`];
    /// inference copies them at its first use).
    pub(crate) fn from_tensors(
        config: TaggerConfig,
        thresholds: [f32; Category::ALL.len()],
        known: Option<Vec<bool>>,
        tensors: &[(String, Tensor)],
    ) -> Tagger {
        let weights = tensors.iter().map(|(n, t)| (n.clone(), Weight(t.shallow_clone()))).collect();
        Tagger { config, thresholds, known, weights, cpu: OnceLock::new() }
    }

    /// The tokens of `text` and their feature ids, with unknown words read as [`unknown_word`].
    pub fn features(&self, text: &str) -> (Vec<Token>, Vec<i64>) {
        let (tokens, mut ids) = features(text, self.config.buckets);
        if let Some(known) = &self.known {
            mask_unknown(&mut ids, known, self.config.buckets);
        }
        (tokens, ids)
    }

    /// Writes the tagger, its config and thresholds to one safetensors file (weights as f16
    /// unless `full`), as [`crate::inspect::write_file`]: never half-written.
    pub fn save(&self, path: &Path, full: bool, overwrite: bool) -> Result<()> {
        let kind = if full { Kind::Float } else { Kind::Half };
        let mut tensors: Vec<(String, Tensor)> =
            self.weights.iter().map(|(n, w)| Ok((n.clone(), w.f_to_kind(kind)?))).collect::<Result<_>>()?;
        if let Some(known) = &self.known {
            let k: Vec<f32> = known.iter().map(|&b| b as u8 as f32).collect();
            tensors.push(("known_words".into(), Tensor::from_slice(&k).f_to_kind(Kind::Half)?));
        }
        let mut metadata = BTreeMap::new();
        metadata.insert("format".to_string(), "medgen-deid-tagger".to_string());
        metadata.insert("config".to_string(), serde_json::to_string(&self.config).unwrap_or_default());
        metadata.insert("thresholds".to_string(), thresholds_json(&self.thresholds));
        crate::formats::safetensors::write(path, &tensors, &metadata, overwrite)
    }

    /// Copies of the weights, in f32, by name.
    pub(crate) fn tensors(&self) -> Result<Vec<(String, Tensor)>> {
        self.weights.iter().map(|(n, w)| Ok((n.clone(), w.f_detach()?.copy()))).collect()
    }

    fn w(&self, i: usize) -> &Tensor {
        &self.weights[i].1
    }

    /// Logits `[n, t, LABELS]` of `ids` `[n, t, FEATURES]` where `mask` `[n, t]` (1.0 for a
    /// token, 0.0 for padding) says which positions hold tokens.
    pub(crate) fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (n, t) = (ids.size()[0], ids.size()[1]);
        let dim = self.config.dim as i64;
        let mask = mask.f_unsqueeze(-1)?;
        let x = Tensor::f_embedding(self.w(0), &ids.f_view([n * t * FEATURES as i64])?, -1, false, false)?
            .f_view([n, t, FEATURES as i64, dim])?
            .f_sum_dim_intlist(2, false, Kind::Float)?;
        let mut h = x.f_linear(self.w(1), Some(self.w(2)))?.f_relu()?.f_mul(&mask)?;
        for (i, &d) in self.config.dilations.iter().enumerate() {
            let base = 3 + 4 * i;
            let d = d as i64;
            let c = h.f_transpose(1, 2)?.f_conv1d(self.w(base), Some(self.w(base + 1)), [1], [d], [d], 1)?.f_transpose(1, 2)?;
            let hidden = [self.config.hidden as i64];
            h = (h + c.f_relu()?)
                .f_layer_norm(hidden, Some(self.w(base + 2)), Some(self.w(base + 3)), 1e-5, false)?
                .f_mul(&mask)?;
        }
        let last = self.weights.len();
        Ok(h.f_linear(self.w(last - 2), Some(self.w(last - 1)))?)
    }

    /// The network on the CPU kernels, made from the weights at its first use.
    fn cpu(&self) -> Result<&Cpu> {
        if let Some(cpu) = self.cpu.get() {
            return Ok(cpu);
        }
        let cpu = Cpu::new(&self.config, &self.weights.iter().map(|(_, w)| &w.0).collect::<Vec<_>>())?;
        Ok(self.cpu.get_or_init(|| cpu))
    }

    /// Per-token label logits `[tokens, LABELS]` (row-major) of `text`, and its tokens.
    fn logit_rows(&self, text: &str) -> Result<(Vec<Token>, Vec<f32>)> {
        let (tokens, ids) = self.features(text);
        Ok((tokens, self.cpu()?.logits(&ids)))
    }

    /// Per-token label logits `[tokens, LABELS]` of each text, and its tokens.
    pub fn logits(&self, texts: &[&str]) -> Result<Vec<(Vec<Token>, Tensor)>> {
        texts
            .iter()
            .map(|t| {
                let (tokens, rows) = self.logit_rows(t)?;
                let n = tokens.len() as i64;
                Ok((tokens, Tensor::from_slice(&rows).f_view([n, LABELS as i64])?))
            })
            .collect()
    }

    /// Per-token label probabilities `[tokens, LABELS]` of each text, and its tokens.
    pub fn probabilities(&self, texts: &[&str]) -> Result<Vec<(Vec<Token>, Tensor)>> {
        self.logits(texts)?.into_iter().map(|(t, l)| Ok((t, l.f_softmax(-1, Kind::Float)?))).collect()
    }

    /// The entities of each text whose confidence reaches its category's threshold, in byte
    /// offsets, sorted.
    pub(crate) fn spans(&self, texts: &[&str]) -> Result<Vec<Vec<Span>>> {
        texts
            .iter()
            .map(|t| {
                let (tokens, mut rows) = self.logit_rows(t)?;
                rows.chunks_exact_mut(LABELS).for_each(crate::kernels::softmax_in_place);
                Ok(self.decode_rows(&tokens, &rows, true))
            })
            .collect()
    }

    /// Entities from per-token probabilities; with `threshold`, only the confident ones.
    pub(crate) fn decode(&self, tokens: &[Token], probs: &Tensor, threshold: bool) -> Vec<Span> {
        self.decode_rows(tokens, &Vec::<f32>::try_from(probs.flatten(0, -1)).unwrap_or_default(), threshold)
    }

    /// [`Tagger::decode`] of probabilities `[tokens, LABELS]`, row-major.
    fn decode_rows(&self, tokens: &[Token], p: &[f32], threshold: bool) -> Vec<Span> {
        let mut out = Vec::new();
        let mut open: Option<(usize, usize, usize, f32)> = None; // category, first token, last token, Σ prob
        let close = |open: &mut Option<(usize, usize, usize, f32)>, out: &mut Vec<Span>| {
            if let Some((c, a, b, sum)) = open.take() {
                let conf = sum / (b - a + 1) as f32;
                if !threshold || conf >= self.thresholds[c] {
                    out.push(Span::new(Category::ALL[c], tokens[a].start, tokens[b].end, conf));
                }
            }
        };
        for (i, row) in p.chunks_exact(LABELS).enumerate().take(tokens.len()) {
            let best = (0..LABELS).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap_or(0);
            if best == 0 {
                close(&mut open, &mut out);
                continue;
            }
            let c = (best - 1) / 2;
            let prob = row[1 + 2 * c] + row[2 + 2 * c];
            match &mut open {
                Some((oc, _, b, sum)) if *oc == c && best % 2 == 0 => {
                    *b = i;
                    *sum += prob;
                }
                _ => {
                    close(&mut open, &mut out);
                    open = Some((c, i, i, prob));
                }
            }
        }
        close(&mut open, &mut out);
        out
    }
}

pub(crate) fn parse_thresholds(json: &str) -> Result<[f32; Category::ALL.len()]> {
    let map: BTreeMap<String, f32> =
        serde_json::from_str(json).map_err(|e| MedgenError::invalid("thresholds", format!("not a map of category to number: {e}")))?;
    let mut out = [0.5; Category::ALL.len()];
    for (k, v) in map {
        let c: Category = k.parse()?;
        if !(0.0..=1.0).contains(&v) {
            return Err(MedgenError::invalid("thresholds", format!("{k}: {v} is outside [0, 1]")));
        }
        out[Category::ALL.iter().position(|x| *x == c).unwrap_or(0)] = v;
    }
    Ok(out)
}

pub(crate) fn thresholds_json(t: &[f32; Category::ALL.len()]) -> String {
    let map: BTreeMap<&str, f32> = Category::ALL.iter().zip(t).map(|(c, v)| (c.as_str(), *v)).collect();
    serde_json::to_string(&map).unwrap_or_default()
}

/// Texts laid out as rows of `window` tokens plus `MARGIN` either side.
pub(crate) struct Windows {
    /// Per row: text index, first token of the row (may be negative: before the text).
    rows: Vec<(usize, i64)>,
    ids: Vec<i64>,
    mask: Vec<f32>,
    window: usize,
    lens: Vec<usize>,
}

impl Windows {
    pub(crate) fn new(ids: &[&[i64]], lens: &[usize], window: usize) -> Windows {
        let width = window + 2 * MARGIN;
        let mut w = Windows { rows: Vec::new(), ids: Vec::new(), mask: Vec::new(), window, lens: lens.to_vec() };
        for (i, (&len, ids)) in lens.iter().zip(ids).enumerate() {
            for first in (0..len.max(1)).step_by(window) {
                let origin = first as i64 - MARGIN as i64;
                w.rows.push((i, origin));
                for p in 0..width as i64 {
                    let tok = origin + p;
                    let inside = tok >= 0 && (tok as usize) < len;
                    w.mask.push(if inside { 1.0 } else { 0.0 });
                    let at = if inside { tok as usize * FEATURES } else { 0 };
                    w.ids.extend((0..FEATURES).map(|f| if inside { ids[at + f] } else { 0 }));
                }
            }
        }
        w
    }

    fn width(&self) -> i64 {
        (self.window + 2 * MARGIN) as i64
    }

    pub(crate) fn ids(&self) -> Result<Tensor> {
        Ok(Tensor::from_slice(&self.ids).f_view([self.rows.len() as i64, self.width(), FEATURES as i64])?)
    }

    pub(crate) fn mask(&self) -> Result<Tensor> {
        Ok(Tensor::from_slice(&self.mask).f_view([self.rows.len() as i64, self.width()])?)
    }

    /// Which rows and positions are the centres of text `i`'s windows, as indices into the
    /// flattened `[rows × width]` positions, in token order.
    pub(crate) fn centres(&self, i: usize) -> Vec<i64> {
        let width = self.width();
        let mut out = Vec::with_capacity(self.lens[i]);
        for (r, &(text, origin)) in self.rows.iter().enumerate() {
            if text != i {
                continue;
            }
            let first = origin + MARGIN as i64;
            let last = (first + self.window as i64).min(self.lens[i] as i64);
            out.extend((first..last).map(|tok| r as i64 * width + (tok - origin)));
        }
        out
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Run {
    Letters,
    Digits,
    Single,
}

pub(crate) fn is_combining(c: char) -> bool {
    matches!(c as u32, 0x0300..=0x036F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F)
}

fn shape_char(c: char) -> char {
    if lexicon::is_han(c) {
        'H'
    } else if c.is_numeric() {
        'd'
    } else if c.is_uppercase() {
        'X'
    } else if c.is_alphabetic() {
        'x'
    } else {
        c
    }
}

/// The tokens of `text` (byte offsets) and, per token, whether it starts a line.
pub fn tokenize(text: &str) -> (Vec<Token>, Vec<bool>) {
    let (mut tokens, mut line_starts) = (Vec::new(), Vec::new());
    let mut open: Option<(usize, usize, Run)> = None; // start, chars, run
    let mut new_line = true;
    let mut push = |open: &mut Option<(usize, usize, Run)>, end: usize, new_line: &mut bool| {
        if let Some((start, _, _)) = open.take() {
            tokens.push(Token { start, end });
            line_starts.push(std::mem::replace(new_line, false));
        }
    };
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            push(&mut open, i, &mut new_line);
            if c == '\n' || c == '\r' {
                new_line = true;
            }
            continue;
        }
        if let Some((_, n, _)) = &mut open {
            if is_combining(c) && *n < MAX_TOKEN_CHARS {
                *n += 1;
                continue;
            }
        }
        let run = if lexicon::is_han(c) {
            Run::Single
        } else if c.is_numeric() {
            Run::Digits
        } else if c.is_alphabetic() {
            Run::Letters
        } else {
            Run::Single
        };
        match &mut open {
            Some((_, n, r)) if *r == run && run != Run::Single && *n < MAX_TOKEN_CHARS => *n += 1,
            _ => {
                push(&mut open, i, &mut new_line);
                open = Some((i, 1, run));
            }
        }
    }
    push(&mut open, text.len(), &mut new_line);
    (tokens, line_starts)
}

/// The word feature's id for a word training did not learn: the hash of `"\0unk"`.
pub fn unknown_word(buckets: usize) -> i64 {
    (fnv(b'w', "\0unk") % buckets as u64) as i64
}

/// Replaces each token's word feature (the first) by [`unknown_word`] where `known` is false.
pub(crate) fn mask_unknown(ids: &mut [i64], known: &[bool], buckets: usize) {
    let unk = unknown_word(buckets);
    for w in ids.iter_mut().step_by(FEATURES) {
        if !known.get(*w as usize).copied().unwrap_or(false) {
            *w = unk;
        }
    }
}

fn fnv(tag: u8, s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in std::iter::once(tag).chain(s.bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

fn lexicon_class(tok: &str, lower: &str) -> &'static str {
    let mut chars = tok.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        if lexicon::is_han(c) {
            let (sur, giv) = (lexicon::ZH_SURNAMES.0.contains(&c), lexicon::ZH_GIVEN.contains(&c));
            return match (lexicon::ZH_COMMON_SURNAMES.contains(&c), sur, giv) {
                (true, _, true) => "zs1g",
                (true, _, false) => "zs1",
                (false, true, true) => "zsg",
                (false, true, false) => "zs",
                (false, false, true) => "zg",
                _ => "",
            };
        }
    }
    let first = lexicon::FIRST_NAMES.contains(lower);
    let sur = lexicon::SURNAMES.contains(lower);
    match (first, sur) {
        (true, true) => "fs",
        (true, false) => "f",
        (false, true) => "s",
        _ if lexicon::NOT_NAMES.contains(lower) => "not",
        _ if lexicon::AMBIGUOUS.contains(lower) => "amb",
        _ if lexicon::CITIES.contains(lower) => "city",
        _ if lexicon::REGIONS.contains(lower) => "region",
        _ => "",
    }
}

/// The tokens of `text` and their feature ids, `FEATURES` per token, each below `buckets`.
pub fn features(text: &str, buckets: usize) -> (Vec<Token>, Vec<i64>) {
    let (tokens, line_starts) = tokenize(text);
    let mut ids = Vec::with_capacity(tokens.len() * FEATURES);
    let class = |t: &str| t.chars().next().map_or('o', |c| match shape_char(c) { s @ ('H' | 'd' | 'X' | 'x') => s, _ => 'o' });
    for (i, tok) in tokens.iter().enumerate() {
        let s = &text[tok.start..tok.end];
        let lower = s.to_lowercase();
        let chars: Vec<char> = lower.chars().collect();
        let mut shape = String::new();
        let mut run = (' ', 0);
        for c in s.chars().map(shape_char) {
            run = if run.0 == c { (c, run.1 + 1) } else { (c, 1) };
            if run.1 <= 2 {
                shape.push(c);
            }
        }
        let (prefix, suffix): (String, String) = if chars.len() > 3 {
            (chars[..3].iter().collect(), chars[chars.len() - 3..].iter().collect())
        } else {
            (String::new(), String::new())
        };
        let glued_before = i > 0 && tokens[i - 1].end == tok.start;
        let glued_after = tokens.get(i + 1).is_some_and(|n| n.start == tok.end);
        let cls = class(s);
        let feats = [
            fnv(b'w', &lower),
            fnv(b's', &shape),
            fnv(b'p', &prefix),
            fnv(b'f', &suffix),
            fnv(b'l', &format!("{cls}{}", chars.len().min(20))),
            fnv(b'g', &format!("{}{}{cls}", glued_before as u8, glued_after as u8)),
            fnv(b'n', &format!("{}{cls}", line_starts[i] as u8)),
            fnv(b'x', lexicon_class(s, &lower)),
        ];
        ids.extend(feats.iter().map(|h| (h % buckets as u64) as i64));
    }
    (tokens, ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_letter_and_digit_runs_single_han_characters_and_single_symbols() {
        let text = "MRN: A12-34\n患者李建国 José";
        let (tokens, starts) = tokenize(text);
        let words: Vec<&str> = tokens.iter().map(|t| &text[t.start..t.end]).collect();
        assert_eq!(words, ["MRN", ":", "A", "12", "-", "34", "患", "者", "李", "建", "国", "José"]);
        assert_eq!(starts.iter().filter(|s| **s).count(), 2);
        assert!(starts[6]);
    }

    #[test]
    fn long_runs_are_cut_and_combining_marks_stay_with_their_letter() {
        let text = format!("{} e\u{301}t", "a".repeat(70));
        let (tokens, _) = tokenize(&text);
        assert_eq!(tokens.len(), 4);
        assert_eq!(&text[tokens[3].start..tokens[3].end], "e\u{301}t");
    }

    #[test]
    fn features_stay_below_the_bucket_count() {
        let (tokens, ids) = features("Seen by Dr. Drew Castellanos on 3/14/2024, 电话13812345678。", 97);
        assert_eq!(ids.len(), tokens.len() * FEATURES);
        assert!(ids.iter().all(|&i| (0..97).contains(&i)));
    }

    #[test]
    fn windows_cover_every_token_once_in_order() {
        let ids: Vec<i64> = (0..2500 * FEATURES as i64).collect();
        let w = Windows::new(&[&ids, &ids[..8]], &[2500, 1], WINDOW);
        assert_eq!(w.rows.len(), 4);
        let c = w.centres(0);
        assert_eq!(c.len(), 2500);
        let width = (WINDOW + 2 * MARGIN) as i64;
        let firsts: Vec<i64> = c.iter().map(|&p| w.ids[(p * FEATURES as i64) as usize] / FEATURES as i64).collect();
        assert_eq!(firsts, (0..2500).collect::<Vec<i64>>());
        assert_eq!(w.centres(1), vec![3 * width + MARGIN as i64]);
    }
}
