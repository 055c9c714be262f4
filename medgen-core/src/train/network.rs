//! A network loaded for training: its trainable parameters by transformers' (or PEFT's)
//! names, its loss, and what it writes: an HF model folder or a PEFT adapter.

use crate::generation::json::Ordered;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use regex::Regex;
use tch::{Device, Reduction, Tensor};

use super::data::{Batch, IGNORE};
use super::optim::Param;
use super::LoraConfig;
use crate::error::{MedgenError, Result};
use crate::formats::safetensors::SafetensorsSet;
use crate::loader::{self, ModelInfo, Net, Setup};
use crate::models::seq2seq::Seq2SeqCache;
use crate::models::{peft_key, train_mode, AdapterSpec, KvCache, Loaded};
use crate::runtime::{LoadOptions, Runtime};
use crate::tokenizer::Tokenizer;

/// A network with trainable weights or adapters.
pub(crate) struct Trainable {
    pub net: Net,
    pub tokenizer: Arc<Tokenizer>,
    pub info: ModelInfo,
    pub runtime: Runtime,
    pub loaded: Loaded,
    pub params: Vec<Param>,
    /// The LoRA settings, for a run that trains adapters.
    pub lora: Option<(LoraConfig, Vec<String>)>,
}

/// PEFT's default `target_modules` per family (its
/// `TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING`).
pub(crate) fn default_targets(architecture: &str) -> Vec<String> {
    let t: &[&str] = match architecture {
        "t5" => &["q", "v"],
        "gpt2" => &["c_attn"],
        // The recurrent model's linear layers around its attention.
        crate::models::rnn::MODEL_TYPE => &["bridge", "linear_out"],
        _ => &["q_proj", "v_proj"],
    };
    t.iter().map(|s| s.to_string()).collect()
}

/// Whether transformers' Trainer decays a parameter: not biases, not norm weights
/// (`Trainer.get_decay_parameter_names`: name patterns, and `nn.LayerNorm` modules, which
/// the families load as `*norm` tensors).
fn decays(hf: &str, logical: &str) -> bool {
    static PATTERNS: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let re = PATTERNS.get_or_init(|| Regex::new(r"bias|layernorm|rmsnorm|(?:^|\.)norm(?:$|\.)|_norm(?:$|\.)").unwrap_or_else(|_| unreachable!()));
    !re.is_match(&hf.to_lowercase()) && !logical.contains("norm.")
}

/// Buffers that checkpoints hold but transformers does not train.
const BUFFERS: [&str; 1] = ["final_logits_bias"];

impl Trainable {
    /// Loads `path` for full fine-tuning (`lora` None) or with adapters.
    pub fn load(path: &Path, opts: &LoadOptions, lora: Option<&LoraConfig>, seed: u64) -> Result<Self> {
        let runtime = Runtime::new(opts)?;
        // The architecture decides the default targets: read it before the adapters exist.
        let targets = match lora {
            Some(l) => Some(match &l.target_modules {
                Some(t) => t.clone(),
                None => default_targets(&probe_architecture(path)?),
            }),
            None => None,
        };
        let spec = match (lora, &targets) {
            (Some(l), Some(t)) => Some(AdapterSpec {
                r: l.r,
                alpha: l.alpha,
                rslora: l.use_rslora,
                dropout: l.dropout,
                targets: t.clone(),
                init: match &l.init_adapter {
                    Some(dir) => adapter_tensors(dir)?,
                    None => HashMap::new(),
                },
                trainable: true,
                rank_pattern: Vec::new(),
                alpha_pattern: Vec::new(),
            }),
            _ => None,
        };
        if let Some(dir) = lora.and_then(|l| l.init_adapter.as_ref().map(|d| (l, d))).map(|(l, d)| (l, d.as_path())) {
            check_init_adapter(dir.1, dir.0)?;
        }
        tch::manual_seed(seed as i64);
        let setup = Setup { trainable: lora.is_none(), adapters: spec.as_ref() };
        let (net, tokenizer, info, loaded) = loader::load_with(path, opts, &runtime, setup)?;
        if let Some(spec) = &spec {
            check_targets(spec, &loaded)?;
        }
        if let (Some(dir), Some(spec)) = (lora.and_then(|l| l.init_adapter.as_ref()), &spec) {
            // Tensors for layers the run does not adapt would be dropped.
            check_adapter_fits(dir, spec, &loaded).map_err(|e| match e {
                MedgenError::InvalidArgument { reason, .. } => {
                    MedgenError::invalid("init_adapter", format!("{reason}, or none the run's target_modules adapt"))
                }
                other => other,
            })?;
        }
        let params = match &spec {
            Some(_) => {
                let freeze_a = lora.is_some_and(|l| l.freeze_a);
                adapter_tensors_of(&loaded)
                    .filter(|(name, _)| !(freeze_a && name.contains(".lora_A.")))
                    .map(|(name, t)| Param { name, tensor: t.shallow_clone(), decay: true })
                    .collect()
            }
            None => loaded
                .weights
                .iter()
                .filter(|w| !BUFFERS.contains(&w.hf.as_str()))
                .map(|w| Param { name: w.hf.clone(), tensor: w.tensor.shallow_clone(), decay: decays(&w.hf, &w.logical) })
                .collect(),
        };
        let lora = lora.cloned().zip(targets);
        let model = Trainable { net, tokenizer: Arc::new(tokenizer), info, runtime, loaded, params, lora };
        if model.lora.is_none() {
            model.check_saveable()?;
        }
        Ok(model)
    }

    /// Fails now, not after training, when the model could not be written as an HF folder
    /// (a GGUF base whose settings config.json cannot state).
    fn check_saveable(&self) -> Result<()> {
        match &self.info.config {
            crate::loader::NetworkConfig::Decoder(cfg) if !self.info.path.is_dir() => cfg.to_hf(true, None, None).map(|_| ()),
            _ => Ok(()),
        }
    }

    pub fn device(&self) -> Device {
        self.runtime.device
    }

    /// The summed cross-entropy of `batch`'s labels (divide by the label tokens of the
    /// whole effective batch for transformers' loss). With `train`, dropout is on.
    pub fn loss_sum(&self, batch: &Batch, train: bool) -> Result<Tensor> {
        self.losses(batch, train, Reduction::Sum)
    }

    /// Each example's summed cross-entropy over its labels (`[examples]`) and its label
    /// tokens, in a training pass (dropout on).
    pub fn example_losses(&self, batch: &Batch) -> Result<(Tensor, Tensor)> {
        let losses = self.losses(batch, true, Reduction::None)?;
        let labels = if self.info.encoder_decoder { batch.labels.shallow_clone() } else { batch.labels.f_narrow(1, 1, batch.labels.size()[1] - 1)? };
        Ok((losses, labels.f_ne(IGNORE)?.f_sum_dim_intlist(1, false, tch::Kind::Float)?))
    }

    /// The cross-entropy of `batch`'s labels: summed (`Reduction::Sum`), or per example
    /// (`Reduction::None`, `[examples]`).
    fn losses(&self, batch: &Batch, train: bool, reduction: Reduction) -> Result<Tensor> {
        let per_example = matches!(reduction, Reduction::None);
        let run = || -> Result<Tensor> {
            let device = self.device();
            match &self.net {
                Net::Decoder(d) => {
                    // Position j predicts label j + 1: only positions with a label need the
                    // head, whose vocabulary-wide product is a large share of the pass.
                    let (b, t) = batch.labels.size2()?;
                    let next = Tensor::f_cat(&[batch.labels.f_narrow(1, 1, t - 1)?, Tensor::f_full([b, 1], IGNORE, (tch::Kind::Int64, device))?], 1)?.f_flatten(0, 1)?;
                    let rows = next.f_ne(IGNORE)?.f_nonzero()?.f_squeeze_dim(1)?;
                    let logits = d.net.forward_all(&batch.input_ids, &mut KvCache::passthrough(device), Some(&rows))?;
                    let labels = next.f_index_select(0, &rows)?;
                    let loss = logits.f_cross_entropy_loss::<Tensor>(&labels, None, reduction, IGNORE, 0.0)?;
                    if per_example {
                        let example = rows.f_floor_divide_scalar(t)?;
                        return Ok(Tensor::f_zeros([b], (loss.kind(), device))?.f_index_add(0, &example, &loss)?);
                    }
                    Ok(loss)
                }
                Net::Seq2Seq(s) => {
                    let dec = batch.decoder_input_ids.as_ref().ok_or_else(|| MedgenError::invalid("batch", "no decoder inputs"))?;
                    let net = s.network();
                    let enc = net.encode(&batch.input_ids, &batch.attention_mask)?;
                    let logits = net.decode(dec, &enc, &batch.attention_mask, &mut Seq2SeqCache::passthrough(device))?;
                    let v = logits.size()[2];
                    let logits = logits.f_reshape([-1, v])?;
                    let loss = logits.f_cross_entropy_loss::<Tensor>(&batch.labels.f_reshape([-1])?, None, reduction, IGNORE, 0.0)?;
                    if per_example {
                        return Ok(loss.f_view([batch.labels.size()[0], -1])?.f_sum_dim_intlist(1, false, loss.kind())?);
                    }
                    Ok(loss)
                }
            }
        };
        if train {
            train_mode(run)
        } else {
            tch::no_grad(run)
        }
    }

    /// The trainable tensors by name, as they are now (detached, on the CPU).
    pub fn named_values(&self) -> Result<Vec<(String, Tensor)>> {
        self.params.iter().map(|p| Ok((p.name.clone(), p.tensor.f_detach()?.f_to_device(Device::Cpu)?.f_contiguous()?))).collect()
    }

    /// Sets the trainable tensors from `values` (a checkpoint): every one must be there.
    pub fn set_values(&self, values: &HashMap<String, Tensor>) -> Result<()> {
        tch::no_grad(|| {
            for p in &self.params {
                let v = values.get(&p.name).ok_or_else(|| MedgenError::format(format!("checkpoint lacks `{}`", p.name)))?;
                let mut t = p.tensor.shallow_clone();
                t.f_copy_(v)?;
            }
            Ok(())
        })
    }

    /// Writes the trained model into `dir`: a PEFT adapter, or an HF model folder.
    pub fn save(&self, dir: &Path) -> Result<()> {
        match &self.lora {
            Some((cfg, targets)) => self.save_adapter(dir, cfg, targets),
            None => self.save_model(dir),
        }
    }

    fn save_adapter(&self, dir: &Path, cfg: &LoraConfig, targets: &[String]) -> Result<()> {
        // Every A and B, trained or frozen (FFA-LoRA trains only B).
        let tensors: Vec<(String, Tensor)> = adapter_tensors_of(&self.loaded)
            .map(|(name, t)| Ok((name, t.f_detach()?.f_to_device(Device::Cpu)?.f_contiguous()?)))
            .collect::<Result<_>>()?;
        write_safetensors(&tensors, &dir.join("adapter_model.safetensors"))?;
        let task = if self.info.encoder_decoder { "SEQ_2_SEQ_LM" } else { "CAUSAL_LM" };
        let config = serde_json::json!({
            "peft_type": "LORA",
            "task_type": task,
            "base_model_name_or_path": self.info.path,
            "r": cfg.r,
            "lora_alpha": cfg.alpha,
            "lora_dropout": cfg.dropout,
            "use_rslora": cfg.use_rslora,
            "target_modules": targets,
            "fan_in_fan_out": self.info.architecture == "gpt2",
            "bias": "none",
            "inference_mode": true,
            "init_lora_weights": true,
            "modules_to_save": null,
            "medgen_base_sha256": crate::audit::sha256_path(&self.info.path)?,
        });
        write_json(&dir.join("adapter_config.json"), &config)
    }

    /// An HF folder: the base's tensors with the trained ones in their place, under
    /// transformers' names and layouts, and the base's configuration and tokenizer files.
    fn save_model(&self, dir: &Path) -> Result<()> {
        let base = &self.info.path;
        let mut out: BTreeMap<String, Tensor> = BTreeMap::new();
        for w in &self.loaded.weights {
            let mut t = w.tensor.f_detach()?.f_to_device(Device::Cpu)?;
            if w.plus_one {
                t = t.f_sub_scalar(1.0)?;
            }
            if w.transposed {
                t = t.f_transpose(0, 1)?;
            }
            out.entry(w.hf.clone()).or_insert(t.f_contiguous()?);
        }
        if base.is_dir() {
            let files = SafetensorsSet::open_dir(base)?;
            let kept: Vec<String> = files.entries().map(|(n, _, _)| n.to_string()).filter(|n| !out.contains_key(n)).collect();
            for name in kept {
                out.insert(name.clone(), files.tensor(&name)?);
            }
        } else {
            self.write_gguf_config(dir, out.contains_key("lm_head.weight"))?;
        }
        let tensors: Vec<(String, Tensor)> = out.into_iter().collect();
        write_safetensors(&tensors, &dir.join("model.safetensors"))?;
        for name in ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt", "spiece.model"] {
            let src = base.join(name);
            if src.exists() {
                std::fs::copy(&src, dir.join(name)).map_err(|e| MedgenError::io(&src, e))?;
            }
        }
        Ok(())
    }
}

impl Trainable {
    /// `config.json`, `generation_config.json` and the tokenizer's files for a model whose
    /// base was a GGUF file, from what was read out of it.
    fn write_gguf_config(&self, dir: &Path, untied: bool) -> Result<()> {
        let crate::loader::NetworkConfig::Decoder(cfg) = &self.info.config else {
            return Err(MedgenError::Unsupported("an encoder-decoder GGUF model".into()));
        };
        let tok = &self.tokenizer;
        let id = |t: Option<&str>| t.and_then(|t| tok.token_id(t));
        let (bos, eos) = (id(tok.bos_token()), tok.eos_ids().first().copied());
        write_json(&dir.join("config.json"), &cfg.to_hf(!untied, bos, eos)?)?;
        write_json(&dir.join("generation_config.json"), &serde_json::json!({"bos_token_id": bos, "eos_token_id": tok.eos_ids()}))?;
        tok.save_hf(dir)
    }
}

/// Every adapter's A and B by PEFT's saved name.
fn adapter_tensors_of(loaded: &Loaded) -> impl Iterator<Item = (String, &Tensor)> {
    loaded.adapters.iter().flat_map(|(m, a, b)| [(peft_key(m, "lora_A"), a), (peft_key(m, "lora_B"), b)])
}

/// The architecture name `medgen info` would report, read without loading weights.
fn probe_architecture(path: &Path) -> Result<String> {
    if path.is_dir() {
        let json = crate::tokenizer::read_json(&path.join("config.json"))?;
        let t = json.get("model_type").and_then(|v| v.as_str()).unwrap_or("");
        return Ok(match t {
            "t5" | "bart" | "gpt2" | crate::models::rnn::MODEL_TYPE => t.to_string(),
            _ => "llama".to_string(),
        });
    }
    let file = crate::formats::gguf::GgufFile::open(path)?;
    Ok(crate::models::ModelConfig::from_gguf(&file)?.architecture.name().to_string())
}

/// Every target names some module; the error lists the model's linear layers.
fn check_targets(spec: &AdapterSpec, loaded: &Loaded) -> Result<()> {
    for t in &spec.targets {
        if !loaded.modules.iter().any(|m| m == t || m.ends_with(&format!(".{t}"))) {
            let mut names: Vec<&str> = loaded.modules.iter().map(|m| m.rsplit('.').next().unwrap_or(m)).collect();
            names.sort_unstable();
            names.dedup();
            return Err(MedgenError::invalid("target_modules", format!("`{t}` names no linear layer of this model; its layers are: {}", names.join(", "))));
        }
    }
    if loaded.adapters.is_empty() {
        return Err(MedgenError::invalid("target_modules", "no layer matches"));
    }
    Ok(())
}

/// The tensors of a PEFT adapter folder, by key.
pub(crate) fn adapter_tensors(dir: &Path) -> Result<HashMap<String, Tensor>> {
    let file = dir.join("adapter_model.safetensors");
    if !file.exists() {
        return Err(MedgenError::io(&file, std::io::Error::new(std::io::ErrorKind::NotFound, "no adapter_model.safetensors")));
    }
    Ok(Tensor::read_safetensors(&file)?
        .into_iter()
        // PEFT saves `...lora_A.weight`; in memory it names them `...lora_A.default.weight`.
        .map(|(k, t)| (k.replace(".default.weight", ".weight"), t))
        .collect())
}

/// The adapter of `dir` as a spec that runs (not trains) on `base`: refused, before its
/// tensors are read, when it was trained on another base (the SHA-256 medgen records in its
/// config), or when its rank or alpha is not one PEFT could have written.
pub(crate) fn adapter_spec(dir: &Path, base: &Path) -> Result<AdapterSpec> {
    let config = crate::tokenizer::read_json(&dir.join("adapter_config.json"))?;
    if let Some(want) = config.get("medgen_base_sha256").and_then(serde_json::Value::as_str) {
        let have = crate::audit::sha256_path(base)?;
        if have != want {
            return Err(MedgenError::invalid("adapter", format!("{} was trained on another base model (SHA-256 {want}; {} is {have})", dir.display(), base.display())));
        }
    }
    spec_of(dir, &config)
}

/// [`adapter_spec`] without the check of the base it records.
fn spec_of(dir: &Path, config: &serde_json::Value) -> Result<AdapterSpec> {
    let num = |k: &str| config.get(k).and_then(serde_json::Value::as_f64);
    let r = num("r").ok_or_else(|| MedgenError::format(format!("{}: adapter_config.json lacks `r`", dir.display())))?;
    if !(r >= 1.0 && r <= 4096.0 && r.fract() == 0.0) {
        return Err(MedgenError::format(format!("{}: adapter rank r = {r} is not a whole number in 1..=4096", dir.display())));
    }
    let alpha = num("lora_alpha").unwrap_or(8.0);
    if !(alpha.is_finite() && alpha > 0.0) {
        return Err(MedgenError::format(format!("{}: lora_alpha = {alpha} is not a finite number above 0", dir.display())));
    }
    let init = adapter_tensors(dir)?;
    let path = dir.join("adapter_config.json");
    let raw = crate::formats::read_text(&path)?;
    let patterns: Ordered = serde_json::from_str(&raw).map_err(|e| MedgenError::format(format!("{}: {e}", path.display())))?;
    // Layers named by the tensors themselves, whatever `target_modules` says.
    let mut modules: Vec<String> = init.keys().filter_map(|k| k.strip_suffix(".lora_A.weight")).filter_map(|k| k.strip_prefix("base_model.model.")).map(str::to_string).collect();
    modules.sort();
    if modules.is_empty() {
        return Err(MedgenError::format(format!("{}: the adapter holds no lora_A tensors", dir.display())));
    }
    Ok(AdapterSpec {
        r: r as usize,
        alpha,
        rslora: config.get("use_rslora").and_then(serde_json::Value::as_bool).unwrap_or(false),
        dropout: 0.0,
        targets: modules,
        init,
        trainable: false,
        rank_pattern: pattern(dir, &patterns, "rank_pattern", |v| v.as_u64().filter(|r| (1..=4096).contains(r)).map(|r| r as usize))?,
        alpha_pattern: pattern(dir, &patterns, "alpha_pattern", |v| v.as_f64().filter(|a| a.is_finite() && *a > 0.0))?,
    })
}

/// PEFT's `rank_pattern` or `alpha_pattern` of an adapter config: each key a regular
/// expression for the end of a module's path, as PEFT matches it (`(.*\.)?(key)$`), with its
/// value, in the file's order (PEFT takes the first key that matches). A key that is no valid
/// expression, or a value out of range, is a format error.
fn pattern<T>(dir: &Path, config: &Ordered, name: &str, value: impl Fn(&serde_json::Value) -> Option<T>) -> Result<Vec<(regex::Regex, T)>> {
    let bad = |reason: String| MedgenError::format(format!("{}: adapter_config.json's `{name}` {reason}", dir.display()));
    let pairs = match config.get(name) {
        None | Some(Ordered::Scalar(serde_json::Value::Null)) => return Ok(Vec::new()),
        Some(Ordered::Object(pairs)) => pairs,
        Some(_) => return Err(bad("is not an object".into())),
    };
    pairs
        .iter()
        .map(|(key, v)| {
            let re = regex::Regex::new(&format!("^(?:.*\\.)?(?:{key})$")).map_err(|e| bad(format!("key `{key}` is no regular expression: {e}")))?;
            let v = match v {
                Ordered::Scalar(v) => value(v),
                _ => None,
            };
            let v = v.ok_or_else(|| bad(format!("value of `{key}` is out of range")))?;
            Ok((re, v))
        })
        .collect()
}

/// Loads `path` with the adapter of `dir` running on it: refused when the adapter was
/// trained on another base (its recorded SHA-256) or names layers the model lacks.
pub(crate) fn load_with_adapter(path: &Path, dir: &Path, opts: &LoadOptions, runtime: &Runtime) -> Result<(Net, Tokenizer, ModelInfo)> {
    let spec = adapter_spec(dir, path)?;
    let (net, tokenizer, info, loaded) = loader::load_with(path, opts, runtime, Setup { trainable: false, adapters: Some(&spec) })?;
    check_adapter_fits(dir, &spec, &loaded)?;
    Ok((net, tokenizer, info))
}

/// Writes `base` with the adapter of `adapter` merged into its weights (PEFT's
/// `merge_and_unload`: `W + scaling · B A`) as an HF folder in `output`, which, like the
/// base's own folder, needs no adapter to run.
pub fn merge(base: &Path, adapter: &Path, output: &Path, opts: &LoadOptions) -> Result<()> {
    // A new folder only: merging into the base's own folder (or any other with files) would
    // overwrite a model.
    if output.exists() && std::fs::read_dir(output).map_or(true, |mut d| d.next().is_some()) {
        return Err(MedgenError::invalid("output", format!("{} exists and is not an empty folder: merge writes a new one", output.display())));
    }
    let runtime = Runtime::new(opts)?;
    let spec = adapter_spec(adapter, base)?;
    let (net, tokenizer, info, loaded) = loader::load_with(base, opts, &runtime, Setup { trainable: false, adapters: Some(&spec) })?;
    // Loading with an adapter that does not train folds it into the weights (Linear::load).
    check_adapter_fits(adapter, &spec, &loaded)?;
    let model = Trainable { net, tokenizer: Arc::new(tokenizer), info, runtime, loaded, params: Vec::new(), lora: None };
    model.check_saveable()?;
    std::fs::create_dir_all(output).map_err(|e| MedgenError::io(output, e))?;
    model.save_model(output)
}

/// An adapter a run continues from (`init_adapter`) must be the run's kind of adapter: its
/// rank, alpha and rsLoRA as the run's options say (PEFT would continue with the saved ones;
/// silently training another scaling would be worse than saying so), without per-module
/// patterns. Its tensors must fit the layers the run adapts (checked once they are loaded).
fn check_init_adapter(dir: &Path, l: &LoraConfig) -> Result<()> {
    // The base it records is not checked here: a federation's server does that on each site's
    // update (and records the site it rejects).
    let saved = spec_of(dir, &crate::tokenizer::read_json(&dir.join("adapter_config.json"))?)?;
    if !saved.rank_pattern.is_empty() || !saved.alpha_pattern.is_empty() {
        return Err(MedgenError::invalid("init_adapter", format!("{} has a rank_pattern or alpha_pattern: training continues only adapters of one rank and alpha", dir.display())));
    }
    if (saved.r, saved.alpha, saved.rslora) != (l.r, l.alpha, l.use_rslora) {
        return Err(MedgenError::invalid(
            "init_adapter",
            format!(
                "{} has r {}, lora_alpha {}, use_rslora {}; the run's options say r {}, lora_alpha {}, use_rslora {}: give the adapter's own",
                dir.display(), saved.r, saved.alpha, saved.rslora, l.r, l.alpha, l.use_rslora
            ),
        ));
    }
    Ok(())
}

/// Checks that an adapter loaded onto a model found a layer for each of its tensors.
pub(crate) fn check_adapter_fits(dir: &Path, spec: &AdapterSpec, loaded: &Loaded) -> Result<()> {
    let have: std::collections::HashSet<String> =
        loaded.adapters.iter().flat_map(|(m, _, _)| [peft_key(m, "lora_A"), peft_key(m, "lora_B")]).collect();
    if let Some(k) = spec.init.keys().find(|k| !have.contains(*k)) {
        return Err(MedgenError::invalid("adapter", format!("{} does not fit this model: `{k}` names no layer of it", dir.display())));
    }
    Ok(())
}

pub(crate) fn write_safetensors(tensors: &[(String, Tensor)], path: &Path) -> Result<()> {
    let cpu: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(n, t)| Ok((n.clone(), t.f_detach()?.f_to_device(Device::Cpu)?.f_contiguous()?)))
        .collect::<Result<_>>()?;
    Tensor::write_safetensors(&cpu, path)?;
    Ok(())
}

pub(crate) fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| MedgenError::invalid("json", e.to_string()))?;
    std::fs::write(path, text + "\n").map_err(|e| MedgenError::io(path, e))
}
