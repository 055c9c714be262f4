"""medgen inside Ray Data (`pip install medgen[ray]`): callable classes for
`Dataset.map_batches` that load a model once per actor and turn a batch of rows (a
pyarrow.Table) into the same rows with medgen's results added, and a Parquet writer that a
killed job can re-run without losing or duplicating a row.

    import ray, medgen.ray
    ds = ray.data.read_parquet("notes/")                       # columns: id, text
    ds = medgen.ray.map_batches(ds, medgen.ray.Deidentify, column="text", workers=2)
    print(medgen.ray.write_parquet(ds.drop_columns(["text"]), "out/", id_column="id"))

On a cluster the same lines run after `ray.init("ray://head:10001")`.

Every step adds a `status` column ("ok", or the kind of failure: "empty", "binary",
"too_long", "invalid", "error") and an `error` column (the message, or null): a bad row never
fails the job. A bad configuration (a column that does not exist, a model path missing on a
worker, a mapping column with de-identification off) fails it at once.

The steps only need pyarrow, so medgen.spark runs the same classes in Spark's mapInArrow.
"""

import json
import os
import socket
import sys
import time
from dataclasses import dataclass, field

import pyarrow as pa

import medgen

__all__ = ["Deidentify", "RunTask", "Generate", "Score", "map_batches", "write_parquet", "Summary"]

# The status of a row that medgen refused, by the exception it raised.
_KINDS = {medgen.ContextLengthError: "too_long", medgen.InvalidArgumentError: "invalid"}


class _BadRow(Exception):
    """A row that is not text medgen can take: `kind` is its status."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


def _text(value, allow_empty=False):
    """The row's text as str; _BadRow when it is missing, empty or not text."""
    if value is None:
        raise _BadRow("empty", "the value is null")
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as e:
            raise _BadRow("binary", f"not UTF-8 text: {e}") from None
    if "\x00" in value:
        raise _BadRow("binary", "the text contains NUL bytes")
    if not allow_empty and not value.strip():
        raise _BadRow("empty", "the text is empty")
    return value


def _failure(e):
    """(status, error) of a row whose processing raised `e`; re-raises what is not a row's fault."""
    if isinstance(e, _BadRow):
        return e.kind, str(e)
    if isinstance(e, medgen.MedgenError):
        kind = next((k for cls, k in _KINDS.items() if isinstance(e, cls)), "error")
        return kind, f"{type(e).__name__}: {e}"
    raise e


def _worker():
    """This process in words, for errors: host, pid and, under Ray, the node id."""
    where = f"{socket.gethostname()} (pid {os.getpid()}"
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        where += f", Ray node {ray.get_runtime_context().get_node_id()}"
    return where + ")"


def _config_dict(config, options):
    """`config` (None, a dict or a GenerationConfig) updated by `options`, as a plain dict."""
    if isinstance(config, medgen.GenerationConfig):
        config = config.to_dict()
    fields = dict(config or {}, **options)
    medgen.GenerationConfig(**fields).validate()  # a bad field fails here, on the driver
    return fields


def _load(path, adapter, threads, device, dtype):
    """Model.load, with an error that names this worker when the model is not there."""
    for p in (path, adapter):
        if p is not None and not os.path.exists(p):
            raise FileNotFoundError(f"model path {os.fspath(p)} does not exist on worker {_worker()}")
    try:
        return medgen.Model.load(path, threads=threads, device=device, dtype=dtype, adapter=adapter)
    except medgen.MedgenError as e:
        raise type(e)(f"on worker {_worker()}: {e}") from e


def _as_table(batch):
    """A batch as Ray Data or Spark hands it over (Table, RecordBatch, pandas, dict of arrays)."""
    if isinstance(batch, pa.Table):
        return batch
    if isinstance(batch, pa.RecordBatch):
        return pa.Table.from_batches([batch])
    if hasattr(batch, "columns") and hasattr(batch, "iloc"):
        return pa.Table.from_pandas(batch, preserve_index=False)
    return pa.table(batch)


class _Step:
    """A step's shape: the columns it reads (`inputs`) and adds (`fields`, pyarrow fields).
    Subclasses set them in __init__ and implement `_row(row) -> dict` or `_rows(rows)`."""

    inputs: list
    fields: list
    status_column = "status"
    error_column = "error"

    def _columns(self, status_column, error_column, *outputs):
        self.status_column, self.error_column = status_column, error_column
        self.fields = [*outputs, pa.field(status_column, pa.string()), pa.field(error_column, pa.string())]

    def check(self, columns):
        """ValueError unless `columns` (a dataset's column names) hold this step's inputs and
        none of its outputs."""
        columns = list(columns)
        name = type(self).__name__
        missing = [c for c in self.inputs if c not in columns]
        if missing:
            raise ValueError(f"{name}: no column {missing[0]!r} in the dataset; its columns are {columns}")
        clash = [f.name for f in self.fields if f.name in columns]
        if clash:
            raise ValueError(f"{name} would overwrite the column {clash[0]!r}: name its output otherwise "
                             f"(output=, status_column=, error_column=, mapping_column=)")

    def output_schema(self, schema):
        """The schema of this step's output for an input of pyarrow schema `schema`."""
        for f in self.fields:
            schema = schema.append(f)
        return schema

    def __call__(self, batch):
        table = _as_table(batch)
        self.check(table.column_names)
        rows = table.select(self.inputs).to_pylist()
        results = self._rows(rows)
        for f in self.fields:
            table = table.append_column(f, pa.array([r.get(f.name) for r in results], type=f.type))
        return table

    def _rows(self, rows):
        return [self._safe(self._row, row) for row in rows]

    def _safe(self, fn, *args):
        """fn(*args) with status "ok", or its failure as status and error."""
        try:
            out = fn(*args)
        except Exception as e:  # noqa: BLE001 - _failure re-raises what is not a row's fault
            status, error = _failure(e)
            return {self.status_column: status, self.error_column: error}
        out[self.status_column] = "ok"
        return out


_ENTITY = pa.struct([("category", pa.string()), ("start", pa.int64()), ("end", pa.int64()),
                     ("confidence", pa.float64())])
_FINDING = pa.struct([("kind", pa.string()), ("start", pa.int64()), ("end", pa.int64()),
                      ("text", pa.string()), ("detail", pa.string())])
_MAPPING = pa.map_(pa.string(), pa.string())


class Deidentify(_Step):
    """De-identifies the text column `column` (medgen.deid.deidentify, same `mode`,
    `shift_days`, `shift_key`) into `output`, with the PHI spans found in `entities`
    (category, start, end, confidence: the identifiers themselves stay out of it).

    `mapping_column`: also keep the mapping placeholder → original (PHI) in that column;
    None (the default) keeps it nowhere. Needs no model: one process of Python per actor.

        ds.map_batches(Deidentify, fn_constructor_kwargs={"column": "text"},
                       batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=2))
    """

    def __init__(self, column="text", *, output="deidentified", entities="entities", mode="placeholder",
                 shift_days=None, shift_key=None, mapping_column=None, status_column="status",
                 error_column="error", load=True):
        if mode not in ("placeholder", "redact", "mask", "shift-dates"):
            raise ValueError(f"Deidentify: unknown mode {mode!r} (placeholder, redact, mask, shift-dates)")
        self.inputs = [column]
        self.column, self.mode, self.shift_days, self.shift_key = column, mode, shift_days, shift_key
        self.output, self.entities, self.mapping_column = output, entities, mapping_column
        outputs = [pa.field(output, pa.string()), pa.field(entities, pa.list_(_ENTITY))]
        if mapping_column is not None:
            outputs.append(pa.field(mapping_column, _MAPPING))
        self._columns(status_column, error_column, *outputs)

    def _row(self, row):
        result = medgen.deid.deidentify(_text(row[self.column]), self.mode,
                                        shift_days=self.shift_days, shift_key=self.shift_key)
        out = {self.output: result["text"],
               self.entities: [{k: e[k] for k in ("category", "start", "end", "confidence")}
                               for e in result["entities"]]}
        if self.mapping_column is not None:
            out[self.mapping_column] = list(result["mapping"].items())
        return out


class _ModelStep(_Step):
    def _model(self, load, model, adapter, threads, device, dtype):
        self.model_path = model
        self.model = _load(model, adapter, threads, device, dtype) if load else None


class RunTask(_ModelStep):
    """Runs the clinical task `task` (medgen.tasks.names()) on each note of `column`, as
    Model.run_task does (same `deid`, `shift_days`, `shift_key`, `reidentify`, config and
    generation options): the draft in `output`, its `sections`, `missing_sections`,
    `findings`, the `notice` and the `audit` record (JSON). `mapping_column`: keep the
    de-identification mapping (PHI) in that column; refused with deid="none".

    `model`, `adapter`, `threads`, `device`, `dtype`: Model.load's, once per actor.
    """

    def __init__(self, task, column="text", *, model=None, adapter=None, threads=None, device="cpu",
                 dtype="f32", deid="placeholder", shift_days=None, shift_key=None, reidentify=False,
                 mapping_column=None, output="draft", config=None, status_column="status",
                 error_column="error", load=True, **options):
        if task not in medgen.tasks.names():
            raise ValueError(f"RunTask: unknown task {task!r}; the tasks are {medgen.tasks.names()}")
        if mapping_column is not None and deid == "none":
            raise ValueError("RunTask: mapping_column needs de-identification, but deid='none' "
                             "(a note that is not de-identified has no mapping)")
        self.inputs = [column]
        self.task, self.column, self.output, self.mapping_column = task, column, output, mapping_column
        self.task_options = dict(deid=deid, shift_days=shift_days, shift_key=shift_key, reidentify=reidentify)
        self.config = _config_dict(config, options)
        outputs = [pa.field(output, pa.string()), pa.field("sections", pa.list_(pa.string())),
                   pa.field("missing_sections", pa.list_(pa.string())), pa.field("findings", pa.list_(_FINDING)),
                   pa.field("notice", pa.string()), pa.field("audit", pa.string())]
        if mapping_column is not None:
            outputs.append(pa.field(mapping_column, _MAPPING))
        self._columns(status_column, error_column, *outputs)
        self._model(load, model, adapter, threads, device, dtype)
        self._config = medgen.GenerationConfig(**self.config)

    def _row(self, row):
        # The core runs a task on one note at a time (there is no batched run_task).
        r = self.model.run_task(self.task, _text(row[self.column]), config=self._config, **self.task_options)
        out = {self.output: r["text"], "sections": r["sections"], "missing_sections": r["missing_sections"],
               "findings": r["findings"], "notice": r["notice"], "audit": json.dumps(r["audit"])}
        if self.mapping_column is not None:
            out[self.mapping_column] = list(r["mapping"].items())
        return out


class Generate(_ModelStep):
    """Generates from each prompt of `column` with `config` (a GenerationConfig or a dict of
    its fields) and generation options: the text in `output`, `finish_reason` and
    `generated_tokens`. A batch is generated `batch_size` prompts at a time, in one pass
    per step (Model.generate with a list); each result equals the prompt generated alone.

    `model`, `adapter`, `threads`, `device`, `dtype`: Model.load's, once per actor.
    """

    def __init__(self, column="prompt", *, model=None, adapter=None, threads=None, device="cpu", dtype="f32",
                 output="generation", config=None, batch_size=8, status_column="status", error_column="error",
                 load=True, **options):
        self.inputs = [column]
        self.column, self.output, self.batch_size = column, output, batch_size
        self.config = _config_dict(config, options)
        self._columns(status_column, error_column, pa.field(output, pa.string()),
                      pa.field("finish_reason", pa.string()), pa.field("generated_tokens", pa.int64()))
        self._model(load, model, adapter, threads, device, dtype)
        self._config = medgen.GenerationConfig(**self.config)

    def _out(self, g):
        return {self.output: g.text, "finish_reason": g.finish_reason, "generated_tokens": len(g.token_ids),
                self.status_column: "ok"}

    def _one(self, prompt):
        return self._out(self.model.generate(prompt, self._config))

    def _rows(self, rows):
        results = [None] * len(rows)
        good = []
        for i, row in enumerate(rows):
            try:
                good.append((i, _text(row[self.column])))
            except _BadRow as e:
                results[i] = {self.status_column: e.kind, self.error_column: str(e)}
        try:
            generations = self.model.generate([p for _, p in good], self._config, batch_size=self.batch_size)
            for (i, _), g in zip(good, generations):
                results[i] = self._out(g)
        except medgen.MedgenError:
            # One prompt the model refuses (too long, say) fails the whole list: generate the
            # batch one prompt at a time, so that only that row fails.
            for i, prompt in good:
                results[i] = self._safe(self._one, prompt)
        return results


class Score(_Step):
    """ROUGE (F-measure of rouge1, rouge2, rougeL, rougeLsum) and sentence BLEU of each
    `prediction` against its `reference` (medgen.metrics, as rouge-score and sacrebleu)."""

    def __init__(self, prediction="prediction", reference="reference", *, use_stemmer=False,
                 status_column="status", error_column="error", load=True):
        self.inputs = [prediction, reference]
        self.prediction, self.reference, self.use_stemmer = prediction, reference, use_stemmer
        self._columns(status_column, error_column,
                      *(pa.field(n, pa.float64()) for n in ("rouge1", "rouge2", "rougeL", "rougeLsum", "bleu")))

    def _row(self, row):
        prediction = _text(row[self.prediction], allow_empty=True)
        reference = _text(row[self.reference], allow_empty=True)
        rouge = medgen.metrics.rouge(prediction, reference, use_stemmer=self.use_stemmer)
        out = {k: v["fmeasure"] for k, v in rouge.items()}
        out["bleu"] = medgen.metrics.sentence_bleu(prediction, reference)["score"]
        return out


def portable(options):
    """`options` with a GenerationConfig turned into the dict that travels to workers."""
    if isinstance(options.get("config"), medgen.GenerationConfig):
        options = dict(options, config=_config_dict(options["config"], {}))
    return options


def map_batches(ds, step, *, workers=1, batch_size=32, threads=None, num_gpus=0, **options):
    """`ds.map_batches(step, ...)` on `workers` actors, each with `threads` threads (Ray's
    num_cpus) and `num_gpus` GPUs, `batch_size` rows a batch; `options` are step's keywords.

    The options are checked here first, and the columns too when `ds`'s schema is known
    without running it (else each actor checks its first batch): a bad job fails at once.
    Model paths are checked where the model loads, on each worker."""
    import ray
    import ray.data

    options = portable(options)
    if threads is not None and step in (RunTask, Generate):
        options["threads"] = threads
    spec = step(**options, load=False)
    cpus = ray.cluster_resources().get("CPU", 0) if ray.is_initialized() else None
    if cpus is not None and workers * (threads or 1) >= cpus:
        # Actors holding every CPU leave none for the read and write tasks: Ray Data then
        # waits for ever (seen with Ray 2.55), so refuse now rather than hang.
        raise ValueError(f"{workers} workers of {threads or 1} CPU leave none of the cluster's {cpus:g} CPUs "
                         f"for reading and writing: use fewer workers, or more CPUs (ray.init(num_cpus=...))")
    schema = ds.schema(fetch_if_missing=False)
    if schema is not None:
        spec.check(schema.names)
    return ds.map_batches(step, fn_constructor_kwargs=options, batch_size=batch_size, batch_format="pyarrow",
                          compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=threads or 1,
                          num_gpus=num_gpus)


@dataclass
class Summary:
    """What a write_parquet run did: rows in the output folder (all runs), rows written by
    this run, its seconds, rows per second, duplicated ids (0 unless something is wrong) and
    the failures by kind (all runs)."""

    rows: int
    written: int
    seconds: float
    duplicates: int
    failures: dict = field(default_factory=dict)

    @property
    def rows_per_second(self):
        return self.written / self.seconds if self.seconds else 0.0

    def __str__(self):
        failures = ", ".join(f"{k} {n}" for k, n in sorted(self.failures.items())) or "none"
        return (f"{self.rows} rows in the output ({self.written} written now in {self.seconds:.1f} s, "
                f"{self.rows_per_second:.1f} rows/s); failures: {failures}; duplicated ids: {self.duplicates}")


def _read_status(path, id_column, status_column):
    """The output folder's id and status columns (empty when there is none yet)."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, columns=[id_column, status_column])
    except (FileNotFoundError, pa.ArrowInvalid):
        return pa.table({id_column: pa.array([], pa.string()), status_column: pa.array([], pa.string())})
    return table


def _files(path):
    """The Parquet files in the output folder, by name (none when there is no folder yet)."""
    from pyarrow import fs

    filesystem, root = fs.FileSystem.from_uri(path)
    infos = filesystem.get_file_info(fs.FileSelector(root, allow_not_found=True))
    return filesystem, {i.path for i in infos if i.type == fs.FileType.File and i.path.endswith(".parquet")}


def _rows(filesystem, files):
    """Rows in the Parquet files `files`, from their footers."""
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(filesystem.open_input_file(f)).metadata.num_rows for f in files)


def _absolute(path):
    """A local path made absolute (pyarrow reads a relative one as a bad URI); a URI as it is."""
    path = os.fspath(path)
    return path if "://" in path else os.path.abspath(path)


def _starts_with_reads(ds):
    """Whether every source of `ds` is a read, where Ray Data's checkpoint filters rows (it
    would otherwise warn and write without one). Ray has no public API for this: the logical
    plan is Ray 2.55's."""
    ops = [ds._logical_plan.dag]
    while ops:
        op = ops.pop()
        if not op.input_dependencies and type(op).__name__ != "Read":
            return False
        ops.extend(op.input_dependencies)
    return True


def write_parquet(ds, path, *, id_column, checkpoint_path=None, status_column="status", **options):
    """Writes `ds` to Parquet files in the folder `path` (Ray Data's write_parquet, `options`
    are its keywords) so that a job killed at any point and run again over the same input
    writes each row once: Ray Data's checkpointing records the ids of each written file in
    `checkpoint_path` (default: `path` + ".checkpoint") with a two-phase commit, and a re-run
    deletes the files of uncommitted writes and skips the committed ids as it reads.

    `id_column`: a column, unique per row, that the read yields (a table's key, or "path"
    from read_binary_files(include_paths=True)). `ds` must start with a ray.data.read_*.
    Returns a Summary of the output folder."""
    from ray.data.checkpoint import CheckpointConfig

    if "mode" in options:
        raise ValueError("write_parquet appends to `path`, which the checkpoint describes; remove the "
                         "folder and its checkpoint to start again instead of passing mode")
    schema = ds.schema(fetch_if_missing=False)
    if schema is not None and id_column not in schema.names:
        raise ValueError(f"write_parquet: no id column {id_column!r} in the dataset; its columns are {schema.names}")
    if not _starts_with_reads(ds):
        raise ValueError("write_parquet can resume only a dataset that starts with a ray.data.read_* "
                         "(Ray Data skips the written ids as it reads)")
    path = _absolute(path)
    checkpoint_path = _absolute(checkpoint_path or path.rstrip("/") + ".checkpoint")
    # A killed run can leave a half-written file, which this write deletes: the rows written
    # now are those of the files it adds.
    _, before = _files(path)
    context = ds.context  # may be Ray's current DataContext: set for this write only
    previous = context.checkpoint_config
    context.checkpoint_config = CheckpointConfig(
        id_column=id_column, checkpoint_path=checkpoint_path, delete_checkpoint_on_success=False
    )
    start = time.perf_counter()
    try:
        ds.write_parquet(path, **options)
    finally:
        context.checkpoint_config = previous
    seconds = time.perf_counter() - start
    table = _read_status(path, id_column, status_column)
    filesystem, after = _files(path)
    statuses = table[status_column].value_counts().to_pylist()
    failures = {s["values"]: s["counts"] for s in statuses if s["values"] != "ok"}
    ids = table[id_column]
    return Summary(rows=table.num_rows, written=_rows(filesystem, after - before), seconds=seconds,
                   duplicates=table.num_rows - len(ids.unique()), failures=failures)
