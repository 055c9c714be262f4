from os import PathLike
from typing import Iterator, Literal, Optional, Sequence, TypedDict, Union, overload

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
             dtype: Literal["f32", "bf16", "f16"] = "f32", threads: Optional[int] = None) -> "Model": ...
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
    def run_task(self, task: str, note: str, *, deid: Literal["placeholder", "redact", "none"] = "placeholder",
                 reidentify: bool = False, config: Optional[GenerationConfig] = None, **options) -> TaskResult: ...
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
    kind: Literal["unsupported_number", "unsupported_medication", "negation_flip", "phi"]
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

class TaskResult(TypedDict):
    text: str
    sections: list[str]
    missing_sections: list[str]
    findings: list[Finding]
    notice: str
    audit: dict
    mapping: dict[str, str]

def detect(text: str) -> list[Entity]: ...
def deidentify(text: str, mode: Literal["placeholder", "redact", "mask", "shift-dates"] = "placeholder", *,
               shift_days: Optional[int] = None, shift_key: Optional[str] = None) -> Deidentified: ...
def reidentify(text: str, mapping: dict[str, str]) -> str: ...
def check(source: str, output: str) -> list[Finding]: ...
def rouge(prediction: str, reference: str, use_stemmer: bool = False) -> Rouge: ...
def sentence_bleu(prediction: str, reference: str) -> Bleu: ...
def corpus_bleu(predictions: Sequence[str], references: Sequence[str]) -> Bleu: ...
def task_names() -> list[str]: ...
def task_info(name: str) -> dict: ...
def task_sections(name: str, output: str) -> dict[str, list[str]]: ...

class MedgenError(Exception): ...
class ModelLoadError(MedgenError): ...
class UnsupportedError(MedgenError): ...
class InvalidArgumentError(MedgenError): ...
class ContextLengthError(MedgenError): ...
class DeviceError(MedgenError): ...
class TokenizerError(MedgenError): ...
class TemplateError(MedgenError): ...
class TorchError(MedgenError): ...


def default_model_path() -> str:
    """The default model's path, as Model.load() finds it; raises ModelLoadError when none."""
    ...
