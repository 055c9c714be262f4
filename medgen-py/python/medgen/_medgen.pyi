from os import PathLike
from typing import Any, Callable, Iterator, Literal, Optional, Sequence, TypedDict, Union, overload

from . import History

_Path = Union[str, PathLike]

__version__: str

class Message(TypedDict):
    role: str
    content: str

class GenerationConfig:
    """Generation options: the fields of the Rust core's GenerationConfig, same names and defaults."""
    max_new_tokens: int
    min_new_tokens: int
    do_sample: bool
    temperature: float
    top_k: int
    top_p: float
    min_p: float
    repetition_penalty: float
    seed: Optional[int]
    stop: list[str]
    logprobs: bool
    num_beams: int
    length_penalty: float
    early_stopping: Union[bool, Literal["never"]]
    num_return_sequences: int
    no_repeat_ngram_size: int
    def __init__(self, *, max_new_tokens: int = 256, min_new_tokens: int = 0, do_sample: bool = False,
                 temperature: float = 1.0, top_k: int = 50, top_p: float = 1.0, min_p: float = 0.0,
                 repetition_penalty: float = 1.0, seed: Optional[int] = None, stop: Sequence[str] = (),
                 logprobs: bool = False, num_beams: int = 1, length_penalty: float = 1.0,
                 early_stopping: Union[bool, Literal["never"]] = False, num_return_sequences: int = 1,
                 no_repeat_ngram_size: int = 0) -> None: ...
    def to_dict(self) -> dict:
        """Every field and its value (GenerationConfig(**d) makes it again); it pickles too."""
        ...
    def validate(self) -> None: ...

class Generation:
    text: str
    token_ids: list[int]
    prompt_token_ids: list[int]
    finish_reason: Literal["eos", "stop", "length", "cancelled"]
    logprobs: Optional[list[float]]
    timings: dict[str, float]
    seed: int
    sequences: list[BeamSequence]

class BeamSequence(TypedDict):
    text: str
    token_ids: list[int]
    score: float

class Stream(Iterator[str]):
    def __iter__(self) -> "Stream": ...
    def __next__(self) -> str: ...
    def cancel(self) -> None: ...
    @property
    def result(self) -> Optional[Generation]: ...

class Model:
    @staticmethod
    def load(path: Union[str, PathLike, None] = None, *, device: str = "cpu",
             dtype: Literal["f32", "bf16", "f16"] = "f32", threads: Optional[int] = None,
             adapter: Union[str, PathLike, None] = None, int8_activations: bool = False,
             quantize: Optional[Literal["q8_0", "q4_0"]] = None) -> "Model":
        """Loads a GGUF file or an HF model folder; without a path, the default model.
        `adapter`: a LoRA adapter folder (PEFT's files, as finetune(method="lora") writes
        them) to run with the model. `int8_activations`: CPU decode steps multiply the GGUF
        blocks (Q8_0, Q4_0, Q4_1) by activations quantized to 8 bits, in integers, as
        llama.cpp does: faster, logits about as far from f32 as llama.cpp's. `quantize`: the
        linear layers' weights quantized to GGUF blocks at load, for the CPU decode kernels
        (HF models; GGUF block types the kernels do not read)."""
    @overload
    def generate(self, prompt: str, config: Optional[GenerationConfig] = None, *, batch_size: int = 8,
                 **options) -> Generation: ...
    @overload
    def generate(self, prompt: list[str], config: Optional[GenerationConfig] = None, *, batch_size: int = 8,
                 **options) -> list[Generation]:
        """Batches of `batch_size` prompts, each one pass through the network per step;
        each result equals the prompt generated alone."""
    def chat(self, messages: list[Message], config: Optional[GenerationConfig] = None, **options) -> Generation: ...
    def stream(self, prompt: Union[str, list[Message]], config: Optional[GenerationConfig] = None, **options) -> Stream: ...
    def tokenize(self, text: str) -> list[int]: ...
    def detokenize(self, ids: Sequence[int]) -> str: ...
    def render_chat(self, messages: list[Message]) -> str: ...
    def run_task(self, task: str, note: str, *,
                 deid: Literal["placeholder", "redact", "mask", "shift-dates", "none"] = "placeholder",
                 shift_days: Optional[int] = None, shift_key: Optional[str] = None,
                 deid_engine: Literal["rules", "model", "ensemble"] = "ensemble", tagger: Optional[_Path] = None,
                 reidentify: bool = False, constrain_sections: bool = False, json_output: bool = False,
                 json_schema: Union[str, dict, None] = None, network_attribution: bool = False,
                 review_log: Optional[_Path] = None,
                 config: Optional[GenerationConfig] = None, **options) -> TaskResult: ...
    def forced(self, prompt: list[int], target: list[int]) -> Forced: ...
    def network_signal(self, source: str, draft: str, task: str) -> NetworkSignal: ...
    @property
    def info_json(self) -> str: ...

class Entity(TypedDict):
    category: str
    start: int
    end: int
    text: str
    confidence: float

class Deidentified(TypedDict):
    text: str
    entities: list[Entity]
    mapping: dict[str, str]

class Finding(TypedDict):
    kind: Literal["unsupported_number", "unsupported_medication", "negation_flip", "phi", "unknown_placeholder",
                  "repetition"]
    start: int
    end: int
    text: str
    detail: str

class Score(TypedDict):
    precision: float
    recall: float
    fmeasure: float

Rouge = TypedDict("Rouge", {"rouge1": Score, "rouge2": Score, "rougeL": Score, "rougeLsum": Score})

class Bleu(TypedDict):
    score: float
    counts: list[int]
    totals: list[int]
    precisions: list[float]
    bp: float
    sys_len: int
    ref_len: int

class SourceSpan(TypedDict):
    start: int
    end: int
    score: float

class Confidence(TypedDict):
    mean: float
    min: float
    low_tokens: int

class Attribution(TypedDict, total=False):
    start: int
    end: int
    text: str
    spans: list[SourceSpan]
    score: float
    supported: bool
    flags: list[Literal["no_support", "no_gain", "unknown_placeholder", "repetition", "finding"]]
    confidence: Confidence
    note_gain: float

class Forced(TypedDict):
    logprobs: list[float]
    attention: list[list[float]]

class NetworkSignal(TypedDict):
    shares: list[list[float]]
    gains: list[float]

class TokenConfidence(TypedDict):
    start: int
    end: int
    prob: float
    alternative_prob: float

class TaskResult(TypedDict):
    text: str
    sections: list[str]
    missing_sections: list[str]
    findings: list[Finding]
    attributions: list[Attribution]
    tokens: list[TokenConfidence]
    json: Any
    notice: str
    audit: dict
    draft_id: Optional[str]
    source: str
    mapping: dict[str, str]

class Review(TypedDict):
    draft_id: str
    decision: Literal["accepted", "edited", "rejected"]
    reviewer: str
    time: str
    final_sha256: Optional[str]

class LogSummary(TypedDict):
    entries: int
    drafts: list[str]
    reviews: list[list[str]]
    head_sha256: str

def review_attribute(source: str, draft: str, checks: bool = True, shares: Optional[list[list[float]]] = None,
                     gains: Optional[list[float]] = None) -> list[Attribution]: ...
def review_decide(log: _Path, draft_id: str, decision: Literal["accept", "edit", "reject"], reviewer: str,
                  text: Optional[str] = None) -> Review: ...
def review_verify(log: _Path) -> LogSummary: ...

Engine = Literal["rules", "model", "ensemble"]

def detect(text: str, *, engine: Engine = "ensemble", tagger: Optional[_Path] = None) -> list[Entity]: ...
def detect_batch(texts: Sequence[str], *, engine: Engine = "ensemble",
                 tagger: Optional[_Path] = None) -> list[list[Entity]]: ...
def deidentify(text: str, mode: Literal["placeholder", "redact", "mask", "shift-dates"] = "placeholder", *,
               shift_days: Optional[int] = None, shift_key: Optional[str] = None, engine: Engine = "ensemble",
               tagger: Optional[_Path] = None) -> Deidentified: ...
def deid_tagger_logits(text: str, *, tagger: Optional[_Path] = None) -> dict: ...
def train_deid_tagger(train: _Path, output: _Path, *, val: Optional[_Path] = None, overwrite: bool = False,
                      init: Optional[_Path] = None, epochs: int = 3, max_steps: Optional[int] = None,
                      batch_size: int = 16, window: int = 256, lr: float = 2e-3, warmup_ratio: float = 0.05,
                      weight_decay: float = 0.0, max_grad_norm: float = 1.0, seed: int = 0, shuffle: bool = True,
                      buckets: int = 65536, dim: int = 48, hidden: int = 128,
                      dilations: Sequence[int] = (1, 2, 4, 8), half: bool = True, min_word_count: int = 2,
                      word_dropout: float = 0.2) -> dict: ...
def reidentify(text: str, mapping: dict[str, str]) -> str: ...
def check(source: str, output: str) -> list[Finding]: ...
def rouge(prediction: str, reference: str, use_stemmer: bool = False) -> Rouge: ...
def sentence_bleu(prediction: str, reference: str) -> Bleu: ...
def corpus_bleu(predictions: Sequence[str], references: Sequence[str]) -> Bleu: ...
def epsilon(*, sample_rate: float, noise_multiplier: float, steps: int, delta: float) -> float: ...
def noise_multiplier(*, target_epsilon: float, delta: float, sample_rate: float, epochs: Optional[float] = None,
                     steps: Optional[int] = None) -> float: ...
def task_names() -> list[str]: ...
def task_info(name: str) -> dict: ...
def task_sections(name: str, output: str) -> dict[str, list[str]]: ...

class MedgenError(Exception): ...
class ModelLoadError(MedgenError): ...
class FileError(MedgenError):
    """A file medgen was asked to read or write (data, a log, an output) could not be: missing,
    unreadable, not UTF-8, or past medgen's bound on what it reads (1 GiB a data file, 64 MiB
    a line of a log or annotations)."""
class UnsupportedError(MedgenError): ...
class InvalidArgumentError(MedgenError): ...
class ContextLengthError(MedgenError): ...
class DeviceError(MedgenError): ...
class TokenizerError(MedgenError): ...
class TemplateError(MedgenError): ...
class TorchError(MedgenError): ...
class InternalError(MedgenError): ...
class AuditTamperedError(MedgenError): ...


class _LogEntryRequired(TypedDict):
    step: int
    epoch: float
    total_steps: int
    elapsed_seconds: float

class LogEntry(_LogEntryRequired, total=False):
    """One logged training step (loss, learning_rate, grad_norm, tokens_per_second) or
    evaluation (eval_loss, eval_rouge1, eval_rouge2, eval_rougeL, and with DP-SGD epsilon):
    the keys that apply to it."""
    loss: float
    learning_rate: float
    grad_norm: float
    eval_loss: float
    eval_rouge1: float
    eval_rouge2: float
    eval_rougeL: float
    epsilon: float
    tokens_per_second: float

TrainingReport = TypedDict("TrainingReport", {
    "output": str, "steps": int, "total_steps": int, "train_loss": Optional[float],
    "eval_loss": Optional[float], "eval_rougeL": Optional[float], "stopped_early": bool,
    "train_examples": int, "validation_examples": int, "truncated_examples": int, "best_step": Optional[int], "epsilon": Optional[float],
    "noise_multiplier": Optional[float], "warnings": list[str], "seconds": float,
})

def task_adapter_path() -> str:
    """The folder of the LoRA adapter medgen ships for its clinical tasks on the default model
    (written once into medgen's cache): `Model.load(adapter=medgen.task_adapter_path())`."""
    ...

def finetune(
    model: Optional[_Path], train: _Path, validation: Optional[_Path] = None, *, output: _Path,
    callback: Optional[Callable[[LogEntry], Optional[bool]]] = None, device: str = "cpu",
    dtype: Literal["f32", "bf16", "f16"] = "f32", threads: Optional[int] = None,
    method: Literal["full", "lora"] = "full", lora_r: int = 8, lora_alpha: float = 16.0,
    lora_dropout: float = 0.0, use_rslora: bool = False, target_modules: Optional[Sequence[str]] = None,
    init_adapter: Optional[_Path] = None, validation_split: Optional[float] = None, lr: float = 5e-05,
    weight_decay: float = 0.0, warmup_steps: Optional[int] = None, warmup_ratio: float = 0.0,
    max_grad_norm: float = 1.0, gradient_accumulation_steps: int = 1, epochs: int = 3,
    max_steps: Optional[int] = None, batch_size: int = 8, seed: int = 42, shuffle: bool = True,
    max_source_length: int = 512, max_target_length: int = 128, chat: bool = True, deid: bool = True,
    input_column: str = "input", target_column: str = "target", eval_steps: Optional[int] = None,
    save_steps: Optional[int] = None, logging_steps: int = 10, metric: Literal["loss", "rougeL"] = "loss",
    early_stopping_patience: Optional[int] = None, eval_generate: int = 16, eval_max_new_tokens: int = 64,
    resume: bool = False, overwrite: bool = False, stop_after: Optional[int] = None,
    dp_max_grad_norm: Optional[float] = None, dp_noise_multiplier: Optional[float] = None,
    dp_epsilon: Optional[float] = None, dp_delta: float = 1e-05, dp_noise_seed: Optional[int] = None,
    lora_freeze_a: bool = False, federated_round: Optional[int] = None, site: Optional[str] = None,
    from_scratch: Optional[FromScratch] = None,
) -> History:
    """Fine-tunes `model` (an HF folder or a GGUF file; None: the default model) on `train`
    (JSON lines of {"input", "target"} or {"messages"}, or CSV), writing the model, or with
    method="lora" a PEFT adapter, into `output`, with log.jsonl, run.json and the checkpoint.

    The keywords are the fields of the Rust core's TrainingConfig, same names and defaults,
    LoRA's flattened (lora_r, lora_alpha, lora_dropout, use_rslora, target_modules,
    init_adapter); device, dtype and threads are Model.load's. An unknown keyword or a value
    of the wrong type is a TypeError, a value out of range an InvalidArgumentError.

    `callback(entry)` sees every logged step and evaluation; returning False stops the run
    cleanly (a checkpoint and the model so far are written). An exception in the callback, or
    Ctrl-C (checked after every step and every generated token of an evaluation), stops it the same way and is
    then raised. The run holds no GIL between callbacks.

    Returns the log entries, oldest first: a list of dicts (pandas.DataFrame(history) reads
    it) whose `.report` holds the run's result (also in output/run.json)."""
    ...

class FromScratch(TypedDict, total=False):
    """A recurrent encoder-decoder trained from nothing (only `tokenizer` is required)."""
    tokenizer: _Path
    cell: Literal["lstm", "gru"]
    layers: int
    hidden: int
    embedding: int
    bidirectional: bool
    attention: Literal["luong", "dot", "bahdanau"]
    input_feeding: bool
    tie_embeddings: bool
    dropout: float
    teacher_forcing_ratio: float
    max_length: int

def train_tokenizer(inputs: Sequence[_Path], output: _Path, *, vocab_size: int = 8000,
                    model: Literal["bpe", "wordpiece"] = "bpe", overwrite: bool = False) -> _Path:
    """Learns a tokenizer from text files (one text a line) or training data (.jsonl, .csv)
    and writes tokenizer.json to `output`; ids 0 to 3 are <pad>, <s>, </s> and <unk>. An
    existing `output` is refused unless `overwrite`."""
    ...

def initial_adapter(
    model: Optional[_Path], *, output: _Path, device: str = "cpu", dtype: Literal["f32", "bf16", "f16"] = "f32",
    threads: Optional[int] = None, **options: Any,
) -> _Path:
    """Writes into `output` the LoRA adapter a run with these keywords (finetune's) would start
    from: `init_adapter`, or PEFT's initialisation seeded by `seed`; no training. A
    federation's first global adapter."""
    ...

class Evaluation(TypedDict):
    loss: float
    examples: int
    tokens: int

def evaluate(
    model: Optional[_Path], validation: _Path, *, device: str = "cpu", dtype: Literal["f32", "bf16", "f16"] = "f32",
    threads: Optional[int] = None, **options: Any,
) -> Evaluation:
    """The loss on `validation` of `model`, with the adapter `init_adapter` when
    method="lora", its data prepared as finetune prepares it (same keywords): `loss` is the
    mean cross-entropy per label token (transformers' eval_loss)."""
    ...

def merge(model: Optional[_Path], adapter: _Path, output: _Path) -> None:
    """Writes `model` (None: the default model) with the LoRA adapter folder `adapter`
    merged into its weights (PEFT's merge_and_unload) as an HF folder in `output`, which runs
    at full speed without the adapter."""
    ...

def default_model_path() -> str:
    """The default model's path, as Model.load() finds it; raises ModelLoadError when none."""
    ...
