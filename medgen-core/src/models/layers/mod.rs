//! The layers the families share, one small file each. Training's differentiable path and
//! LoRA adapters belong in these types (LoRA in [`Linear`]), so that every family gets them.

mod attention;
mod embedding;
mod kv_cache;
mod linear;
mod lora;
mod norm;
mod weight;

pub(crate) use attention::{attention, cpu_cached, merge_heads, probe_attention, probing, record_attention, split_heads};
pub use kv_cache::KvCache;
pub(crate) use linear::Linear;
pub(crate) use norm::LayerNorm;
pub(crate) use lora::{dropout, per_example, train_mode, training, Lora};
pub(crate) use embedding::Embedding;
pub(crate) use weight::{peft_key, AdapterSpec, Blocks, Loaded, Loader, Weight};
