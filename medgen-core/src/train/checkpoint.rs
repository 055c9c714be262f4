//! Checkpoints: the trainable tensors, AdamW's moments and the run's [`State`], written
//! into a temporary folder and renamed into place, so that a kill or a full disk never
//! leaves a half-written checkpoint and the previous one stays usable.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::network::{write_safetensors, Trainable};
use super::optim::AdamW;
use super::LogEntry;
use crate::error::{MedgenError, Result};

/// Where the run is: everything besides tensors that resuming needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// Optimiser steps taken.
    pub step: u64,
    /// The epoch under way, and the next group of micro-batches in it.
    pub epoch: u64,
    pub group: usize,
    pub train_loss_sum: f64,
    pub base_sha256: String,
    /// The best evaluation's metric (lower is better: ROUGE is negated) and step.
    pub best: Option<(f64, u64)>,
    /// Evaluations since the best one.
    pub since_best: usize,
    pub history: Vec<LogEntry>,
    /// The DP-SGD settings the steps so far were taken with (σ, C, q), none without DP: a
    /// resumed run must keep them, or the accountant would count every step at the new ones.
    #[serde(default)]
    pub dp: Option<[f64; 3]>,
}

impl State {
    pub fn new(base_sha256: String) -> Self {
        State { step: 0, epoch: 0, group: 0, train_loss_sum: 0.0, base_sha256, best: None, since_best: 0, history: Vec::new(), dp: None }
    }

    /// Notes an evaluation; true when it is the best so far.
    pub fn observe(&mut self, e: &LogEntry, metric: &str) -> bool {
        let value = if metric == "rougeL" { e.eval_rouge_l.map(|r| -r) } else { e.eval_loss };
        let Some(v) = value else { return false };
        if self.best.is_none_or(|(b, _)| v < b) {
            self.best = Some((v, e.step));
            self.since_best = 0;
            true
        } else {
            self.since_best += 1;
            false
        }
    }
}

fn checkpoint_dir(out: &Path) -> PathBuf {
    out.join("checkpoint")
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> MedgenError + '_ {
    move |e| MedgenError::io(path, e)
}

pub fn exists(out: &Path) -> bool {
    checkpoint_dir(out).join("state.json").exists() || out.join("checkpoint.old").join("state.json").exists()
}

/// Writes `files` into `out/name` atomically: a temporary folder renamed over the old one.
fn replace_dir(out: &Path, name: &str, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let (tmp, dir, old) = (out.join(format!("{name}.tmp")), out.join(name), out.join(format!("{name}.old")));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    write(&tmp)?;
    for entry in fs::read_dir(&tmp).map_err(io(&tmp))? {
        let path = entry.map_err(io(&tmp))?.path();
        fs::File::open(&path).and_then(|f| f.sync_all()).map_err(io(&path))?;
    }
    if dir.exists() {
        if old.exists() {
            fs::remove_dir_all(&old).map_err(io(&old))?;
        }
        fs::rename(&dir, &old).map_err(io(&dir))?;
    }
    fs::rename(&tmp, &dir).map_err(io(&tmp))?;
    // The renames reach the disk before the old copy goes.
    fs::File::open(out).and_then(|f| f.sync_all()).map_err(io(out))?;
    if old.exists() {
        fs::remove_dir_all(&old).map_err(io(&old))?;
    }
    Ok(())
}

pub fn save(out: &Path, model: &Trainable, opt: &AdamW, state: &State) -> Result<()> {
    replace_dir(out, "checkpoint", |dir| {
        write_safetensors(&model.named_values()?, &dir.join("params.safetensors"))?;
        let moments: Vec<(String, Tensor)> = opt
            .m
            .iter()
            .zip(&opt.v)
            .zip(&model.params)
            .flat_map(|((m, v), p)| [(format!("m.{}", p.name), m.shallow_clone()), (format!("v.{}", p.name), v.shallow_clone())])
            .collect();
        write_safetensors(&moments, &dir.join("optimizer.safetensors"))?;
        let json = serde_json::json!({"state": state, "optimizer_steps": opt.steps});
        super::network::write_json(&dir.join("state.json"), &json)
    })
}

/// The folder of the checkpoint in `out`: the last one written, or the one a crash during
/// the rename left as `checkpoint.old`.
fn find(out: &Path) -> Option<PathBuf> {
    [checkpoint_dir(out), out.join("checkpoint.old")].into_iter().find(|d| d.join("state.json").exists())
}

fn read_state(dir: &Path) -> Result<(State, serde_json::Value)> {
    let json = crate::tokenizer::read_json(&dir.join("state.json"))?;
    let state: State = serde_json::from_value(json.get("state").cloned().unwrap_or_default())
        .map_err(|e| MedgenError::format(format!("{}: {e}", dir.join("state.json").display())))?;
    Ok((state, json))
}

/// The SHA-256 of the base model the checkpoint in `out` was trained from.
pub fn base_sha256(out: &Path) -> Result<String> {
    let dir = find(out).ok_or_else(|| MedgenError::invalid("resume", format!("{} holds no checkpoint to resume from", out.display())))?;
    Ok(read_state(&dir)?.0.base_sha256)
}

/// Restores the checkpoint in `out` (or the one a crash left as `checkpoint.old`) into
/// `model` and `opt`; `None` when there is none.
pub fn load(out: &Path, model: &Trainable, opt: &mut AdamW) -> Result<Option<State>> {
    let Some(dir) = find(out) else { return Ok(None) };
    let (state, json) = read_state(&dir)?;
    let params: HashMap<String, Tensor> = Tensor::read_safetensors(dir.join("params.safetensors"))?.into_iter().collect();
    model.set_values(&params)?;
    let moments: HashMap<String, Tensor> = Tensor::read_safetensors(dir.join("optimizer.safetensors"))?.into_iter().collect();
    tch::no_grad(|| -> Result<()> {
        for ((m, v), p) in opt.m.iter_mut().zip(opt.v.iter_mut()).zip(&model.params) {
            let get = |k: String| moments.get(&k).ok_or_else(|| MedgenError::format(format!("checkpoint lacks `{k}`")));
            m.f_copy_(get(format!("m.{}", p.name))?)?;
            v.f_copy_(get(format!("v.{}", p.name))?)?;
        }
        Ok(())
    })?;
    opt.steps = json.get("optimizer_steps").and_then(serde_json::Value::as_u64).unwrap_or(state.step);
    Ok(Some(state))
}

/// Keeps the trainable tensors of the best evaluation so far.
pub fn save_best(out: &Path, model: &Trainable) -> Result<()> {
    replace_dir(out, "best", |dir| write_safetensors(&model.named_values()?, &dir.join("params.safetensors")))
}

/// Puts the best evaluation's tensors back into `model`.
pub fn restore_best(out: &Path, model: &Trainable) -> Result<()> {
    let file = out.join("best").join("params.safetensors");
    let params: HashMap<String, Tensor> = Tensor::read_safetensors(&file)?.into_iter().collect();
    model.set_values(&params)
}

/// The JSON-lines log; on resume, lines past the checkpoint's step are dropped.
pub struct Log {
    file: fs::File,
    path: PathBuf,
}

impl Log {
    pub fn open(path: &Path, step: u64) -> Result<Self> {
        let kept: Vec<String> = fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter(|l| serde_json::from_str::<serde_json::Value>(l).ok().and_then(|v| v.get("step").and_then(|s| s.as_u64())).is_some_and(|s| s <= step))
            .map(str::to_string)
            .collect();
        let mut file = fs::File::create(path).map_err(io(path))?;
        for l in kept {
            writeln!(file, "{l}").map_err(io(path))?;
        }
        Ok(Log { file, path: path.to_path_buf() })
    }

    pub fn write(&mut self, entry: &LogEntry) -> Result<()> {
        let line = serde_json::to_string(entry).map_err(|e| MedgenError::invalid("log", e.to_string()))?;
        writeln!(self.file, "{line}").map_err(io(&self.path))
    }
}
