"""Clinician review of drafts (medgen-core's `review`): each sentence linked to the source
spans that support it, the review page, and the hash-chained review log.

    result = model.run_task("discharge_summary", note, review_log="drafts.audit.jsonl")
    [a for a in result.attributions if not a["supported"]]   # sentences nothing supports
    result.to_html("draft.html")                             # one self-contained page
    medgen.review.decide("drafts.audit.jsonl", result.draft_id, "edit", "dr-042", text=final)
    medgen.review.verify("drafts.audit.jsonl")               # AuditTamperedError if altered
"""

import os
from typing import Any, Dict, List, Optional, Union

from ._medgen import InvalidArgumentError, review_attribute, review_decide, review_verify

__all__ = ["attribute", "decide", "verify", "TaskResult"]

PathLike = Union[str, "os.PathLike[str]"]


def attribute(
    source: str,
    draft: str,
    *,
    checks: bool = True,
    model: Any = None,
    task: Optional[str] = None,
    signal: Optional[Dict[str, Any]] = None,
) -> List[Dict[str, Any]]:
    """Each sentence of `draft` with the spans of `source` that support it: {start, end,
    text, spans: [{start, end, score}], score, supported, flags}, offsets in characters.
    Flags: "no_support", "unknown_placeholder", "repetition", "finding" (with `checks`, a
    safety check's finding falls in the sentence), and with the network's signal "no_gain".

    The base is lexical and clinical-concept matching. With a `model` (a `medgen.Model`) and
    the `task` that wrote the draft, the model's own signal joins it: the model reads the
    draft after the task's prompt, with and without the source; its attention on the source
    helps choose the spans, and how much the source raised its likelihood of each sentence
    ("note_gain", nats per token) rescues paraphrases the matching misses and flags
    sentences the source does not raise at all ("no_gain"). `signal` is that signal
    computed before (`model.network_signal(source, draft, task)`)."""
    if model is not None and signal is None:
        if task is None:
            raise InvalidArgumentError("invalid argument `task`: attribution with a model needs the task that wrote the draft")
        signal = model.network_signal(source, draft, task)
    elif task is not None and model is None:
        raise InvalidArgumentError("invalid argument `task`: only used with a model")
    if signal is not None:
        return review_attribute(source, draft, checks, signal["shares"], signal["gains"])
    return review_attribute(source, draft, checks)


def decide(log: PathLike, draft_id: str, decision: str, reviewer: str, text: Optional[str] = None) -> Dict[str, Any]:
    """Appends a reviewer's decision ("accept", "edit" or "reject") on draft `draft_id` to the
    review log: the reviewer's identifier, the time, and the SHA-256 of `text` (the final
    text; required for accept and edit, refused for reject). Returns the logged entry."""
    return review_decide(os.fspath(log), draft_id, decision, reviewer, text)


def verify(log: PathLike) -> Dict[str, Any]:
    """Checks the review log's hash chain: {entries, drafts, reviews, head_sha256}. Raises
    AuditTamperedError naming the first altered line, FileError when there is no such file (a
    mistyped path is no clean log) or it cannot be read."""
    return review_verify(os.fspath(log))


class TaskResult(dict):
    """What `Model.run_task` returns: a dict whose keys also read as attributes
    (`result.text`, `result.attributions`), and the review page."""

    def __init__(self, data: Dict[str, Any], html: str):
        super().__init__(data)
        self._html = html

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def to_html(self, path: Optional[PathLike] = None, *, overwrite: bool = False) -> str:
        """The review page as a string; with `path`, also written there (an existing file only
        with `overwrite`)."""
        if path is not None:
            mode = "w" if overwrite else "x"
            with open(path, mode, encoding="utf-8") as f:
                f.write(self._html)
        return self._html
