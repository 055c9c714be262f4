"""medgen.ray on a local Ray cluster started here (two actor workers): every note processed
exactly once and as medgen processes it alone, a worker killed mid-job, a killed job run
again, bad rows as statuses, bad configurations refused before the work starts."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT

ray = pytest.importorskip("ray")
pa = pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402
import ray.cloudpickle  # noqa: E402

import medgen  # noqa: E402
import medgen.ray as mr  # noqa: E402

spec = importlib.util.spec_from_file_location("make_notes", ROOT / "examples/archive/make_notes.py")
make_notes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_notes)

N = 1000
# Rows no model can take, added to the synthetic notes: (id, text, status).
BAD = [("bad-empty", "", "empty"), ("bad-blank", "  \n ", "empty"), ("bad-null", None, "empty"),
       ("bad-nul", "Patient\x00\x01\x02", "binary")]


@pytest.fixture(scope="module")
def cluster(one_ray_cluster):
    # Logical CPUs: two actor workers and one for Ray Data's read and write tasks.
    ray.init(num_cpus=3, include_dashboard=False, object_store_memory=300 * 2**20, log_to_driver=False)
    # The test's own step classes travel to the workers by value (tests/ is not on their path).
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """1,000 synthetic notes and the bad rows, in 4 Parquet files (columns id, text)."""
    path = make_notes.write_table(tmp_path_factory.mktemp("notes"), N)
    pq.write_table(pa.table({"id": [b[0] for b in BAD], "text": pa.array([b[1] for b in BAD], pa.string())}),
                   path / "part-bad.parquet")
    return path


def read_output(path):
    return {r["id"]: r for r in pq.read_table(path).to_pylist()}


def assert_each_note_once(out):
    ids = pq.read_table(out, columns=["id"])["id"].to_pylist()
    expected = [i for i, _ in make_notes.notes(N)] + [b[0] for b in BAD]
    assert sorted(ids) == sorted(expected), "a note lost or written twice"


def test_deidentify_processes_each_note_once_as_medgen_alone(cluster, table, tmp_path):
    ds = mr.map_batches(ray.data.read_parquet(table), mr.Deidentify, column="text", mapping_column="mapping",
                        workers=2, batch_size=100)
    summary = mr.write_parquet(ds, tmp_path / "out", id_column="id")
    assert (summary.rows, summary.written, summary.duplicates) == (N + len(BAD), N + len(BAD), 0)
    assert summary.failures == {"empty": 3, "binary": 1}
    assert_each_note_once(tmp_path / "out")
    out = read_output(tmp_path / "out")
    for id, text in make_notes.notes(N):
        alone = medgen.deid.deidentify(text)
        row = out[id]
        assert row["status"] == "ok" and row["error"] is None
        assert row["deidentified"] == alone["text"]
        assert row["entities"] == [{k: e[k] for k in ("category", "start", "end", "confidence")}
                                   for e in alone["entities"]]
        assert dict(row["mapping"]) == alone["mapping"]
    for id, _, status in BAD:
        assert out[id]["status"] == status and out[id]["error"] and out[id]["deidentified"] is None


def test_rerun_of_a_finished_job_writes_nothing_more(cluster, table, tmp_path):
    for _ in range(2):
        ds = mr.map_batches(ray.data.read_parquet(table), mr.Deidentify, workers=2, batch_size=250)
        summary = mr.write_parquet(ds, tmp_path / "out", id_column="id")
    assert (summary.rows, summary.written, summary.duplicates) == (N + len(BAD), 0, 0)


class DiesOnce(mr.Deidentify):
    """Deidentify whose process kills itself on its third batch, once (a marker file says so)."""

    def __init__(self, marker, **options):
        super().__init__(**options)
        self.marker, self.batches = marker, 0

    def __call__(self, batch):
        self.batches += 1
        if self.batches == 3 and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return super().__call__(batch)


def test_worker_killed_mid_job_the_job_still_completes(cluster, table, tmp_path):
    marker = tmp_path / "killed"
    ds = mr.map_batches(ray.data.read_parquet(table), DiesOnce, marker=str(marker), workers=2, batch_size=50)
    summary = mr.write_parquet(ds, tmp_path / "out", id_column="id")
    assert marker.exists(), "no worker was killed"
    assert (summary.rows, summary.duplicates) == (N + len(BAD), 0)
    assert_each_note_once(tmp_path / "out")


KILLED_JOB = """
import os, signal, sys, time
import ray, medgen.ray as mr

address, table, out = sys.argv[1:]

class KillsTheJob(mr.Deidentify):
    # On its 4th batch, once some rows are committed (Ray Data's checkpoint holds a committed
    # file, not only a ".pending" one), kills the job's driver (this script).
    def __init__(self, driver, **options):
        super().__init__(**options)
        self.driver, self.batches = driver, 0

    def __call__(self, batch):
        self.batches += 1
        if self.batches == 4:
            committed = lambda: [f for f in os.listdir(out + ".checkpoint")
                                 if f.endswith(".parquet") and not f.endswith(".pending.parquet")]
            while not os.path.isdir(out + ".checkpoint") or not committed():
                time.sleep(0.1)
            os.kill(self.driver, signal.SIGKILL)
            time.sleep(60)
        return super().__call__(batch)

ray.init(address, log_to_driver=False)
ds = mr.map_batches(ray.data.read_parquet(table), KillsTheJob, driver=os.getpid(), workers=2, batch_size=50)
mr.write_parquet(ds, out, id_column="id")
"""


def test_killed_job_run_again_writes_each_note_once(cluster, table, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    script = tmp_path / "job.py"
    script.write_text(KILLED_JOB)
    job = subprocess.Popen([sys.executable, str(script), cluster, str(table), str(out)])
    assert job.wait(timeout=120) == -signal.SIGKILL, "the job was not killed"
    # The kill can leave a file half written, or written and not committed: the run again
    # deletes those and writes their rows anew, and keeps the committed ones.
    left = set(out.iterdir())
    ds = mr.map_batches(ray.data.read_parquet(table), mr.Deidentify, workers=2, batch_size=50)
    summary = mr.write_parquet(ds, out, id_column="id")
    kept = left & set(out.iterdir())
    partial = sum(pq.ParquetFile(f).metadata.num_rows for f in kept)
    assert 0 < partial < N, partial
    assert summary.written == N + len(BAD) - partial and summary.duplicates == 0
    assert_each_note_once(out)


def test_generate_and_run_task_equal_medgen_alone(cluster, tiny_models):
    llama = str(tiny_models["llama"])
    model = medgen.Model.load(llama, threads=1)
    # Short texts: the tiny model reads 128 tokens.
    texts = [text.splitlines()[1] for _, text in make_notes.notes(12)]
    prompts = texts + ["word " * 300]
    ds = ray.data.from_items([{"id": str(i), "prompt": p} for i, p in enumerate(prompts)])
    ds = mr.map_batches(ds, mr.Generate, column="prompt", model=llama, max_new_tokens=6, batch_size=4, workers=2)
    rows = {r["id"]: r for r in ds.take_all()}
    for i, prompt in enumerate(texts):
        alone = model.generate(prompt, max_new_tokens=6)
        row = rows[str(i)]
        assert (row["status"], row["generation"], row["finish_reason"], row["generated_tokens"]) == (
            "ok", alone.text, alone.finish_reason, len(alone.token_ids))
    too_long = rows[str(len(texts))]
    assert too_long["status"] == "too_long" and "ContextLengthError" in too_long["error"]

    ds = ray.data.from_items([{"id": str(i), "text": text} for i, text in enumerate(texts[:4])])
    ds = mr.map_batches(ds, mr.RunTask, task="question_summary", model=llama,
                        config=medgen.GenerationConfig(max_new_tokens=6), workers=2)
    for row in ds.take_all():
        alone = model.run_task("question_summary", row["text"], max_new_tokens=6)
        assert row["status"] == "ok" and row["draft"] == alone["text"]
        assert (row["sections"], row["missing_sections"], row["findings"], row["notice"]) == (
            alone["sections"], alone["missing_sections"], alone["findings"], alone["notice"])
        assert json.loads(row["audit"])["output_sha256"] == alone["audit"]["output_sha256"]


def test_score_equals_medgen_metrics(cluster):
    pairs = [("the patient improved", "patient improved on antibiotics"), ("", "no change"), ("a b c", "a b c")]
    ds = ray.data.from_items([{"prediction": p, "reference": r} for p, r in pairs])
    rows = mr.map_batches(ds, mr.Score, workers=1).take_all()
    for row in rows:
        rouge = medgen.metrics.rouge(row["prediction"], row["reference"])
        assert row["rougeL"] == rouge["rougeL"]["fmeasure"] and row["rouge1"] == rouge["rouge1"]["fmeasure"]
        assert row["bleu"] == medgen.metrics.sentence_bleu(row["prediction"], row["reference"])["score"]


def test_bad_configuration_fails_before_the_work(cluster, table, tmp_path):
    ds = ray.data.read_parquet(table)
    with pytest.raises(ValueError, match=r"no column 'note' in the dataset; its columns are \['id', 'text'\]"):
        mr.map_batches(ds, mr.Deidentify, column="note")
    with pytest.raises(ValueError, match="mapping_column needs de-identification"):
        mr.map_batches(ds, mr.RunTask, task="soap_note", deid="none", mapping_column="mapping")
    with pytest.raises(ValueError, match="leave none of the cluster's 3 CPUs"):
        mr.map_batches(ds, mr.Deidentify, workers=3)
    with pytest.raises(ValueError, match="starts with a ray.data.read_"):
        mr.write_parquet(ray.data.from_items([{"id": "1", "text": "x"}]), tmp_path / "x", id_column="id")
    # The model is missing on the worker: the job fails as its actors start, naming the path.
    start = time.monotonic()
    missing = tmp_path / "no-such-model"
    with pytest.raises(Exception, match=f"model path {missing} does not exist on worker .*Ray node"):
        mr.map_batches(ds, mr.Generate, column="text", model=str(missing)).take_all()
    assert time.monotonic() - start < 60


def test_example_processes_a_folder_of_notes(cluster, tmp_path):
    notes = make_notes.write_folder(tmp_path / "notes", 30)
    (notes / "scan.txt").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xd8")
    proc = subprocess.run([sys.executable, str(ROOT / "examples/archive/process_notes.py"), str(notes),
                           str(tmp_path / "out"), "--address", cluster],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "31 rows in the output" in proc.stdout and "binary 1" in proc.stdout
    out = pq.read_table(tmp_path / "out")
    assert "bytes" not in out.column_names and "mapping" not in out.column_names
    assert sorted(os.path.basename(p) for p in out["path"].to_pylist()) == sorted(p.name for p in notes.iterdir())
