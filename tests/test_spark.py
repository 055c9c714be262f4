"""medgen.spark: the medgen.ray steps in PySpark's local mode (2 cores) over the same
synthetic notes, results equal to medgen run on each note alone."""

import importlib.util
import os
import subprocess
import sys

import pytest

from conftest import ROOT

pyspark = pytest.importorskip("pyspark")
pa = pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402
from pyspark.sql import SparkSession  # noqa: E402

import medgen  # noqa: E402
from medgen.ray import Deidentify, Generate, RunTask  # noqa: E402
from medgen.spark import map_in_arrow  # noqa: E402

spec = importlib.util.spec_from_file_location("make_notes", ROOT / "examples/archive/make_notes.py")
make_notes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_notes)

N = 1000


@pytest.fixture(scope="module")
def spark():
    if subprocess.run(["java", "-version"], capture_output=True).returncode != 0:
        pytest.skip("PySpark needs a Java runtime (java -version fails)")
    # Spark's Python workers: this interpreter, the one with medgen.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    session = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
               .config("spark.sql.shuffle.partitions", "2").getOrCreate())
    yield session
    session.stop()


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    path = make_notes.write_table(tmp_path_factory.mktemp("notes"), N)
    bad = pa.table({"id": ["bad-empty", "bad-nul"], "text": ["", "x\x00y"]})
    pq.write_table(bad, path / "part-bad.parquet")
    return path


def test_deidentify_in_spark_equals_medgen_alone(spark, table):
    out = map_in_arrow(spark.read.parquet(str(table)), Deidentify, column="text", mapping_column="mapping")
    rows = {r["id"]: r for r in out.collect()}
    assert len(rows) == N + 2
    for id, text in make_notes.notes(N):
        alone = medgen.deid.deidentify(text)
        row = rows[id]
        assert row["status"] == "ok" and row["deidentified"] == alone["text"]
        assert [e.asDict() for e in row["entities"]] == [
            {k: e[k] for k in ("category", "start", "end", "confidence")} for e in alone["entities"]]
        assert row["mapping"] == alone["mapping"]
    assert (rows["bad-empty"]["status"], rows["bad-nul"]["status"]) == ("empty", "binary")


def test_generate_and_run_task_in_spark_equal_medgen_alone(spark, tiny_models):
    llama = str(tiny_models["llama"])
    model = medgen.Model.load(llama, threads=1)
    texts = [text.splitlines()[1] for _, text in make_notes.notes(8)]
    df = spark.createDataFrame([(str(i), t) for i, t in enumerate(texts)], "id string, text string")
    for row in map_in_arrow(df, Generate, column="text", model=llama, max_new_tokens=6, threads=1).collect():
        alone = model.generate(row["text"], max_new_tokens=6)
        assert (row["status"], row["generation"], row["finish_reason"]) == ("ok", alone.text, alone.finish_reason)
    for row in map_in_arrow(df.limit(3), RunTask, task="question_summary", model=llama, max_new_tokens=6).collect():
        assert row["status"] == "ok"
        assert row["draft"] == model.run_task("question_summary", row["text"], max_new_tokens=6)["text"]


def test_bad_configuration_fails_before_spark_runs(spark, table):
    df = spark.read.parquet(str(table))
    with pytest.raises(ValueError, match=r"no column 'note' in the dataset; its columns are \['id', 'text'\]"):
        map_in_arrow(df, Deidentify, column="note")
    with pytest.raises(ValueError, match="mapping_column needs de-identification"):
        map_in_arrow(df, RunTask, task="soap_note", deid="none", mapping_column="mapping")


def test_spark_example_processes_a_folder_of_notes(spark, tmp_path):
    notes = make_notes.write_folder(tmp_path / "notes", 20)
    (notes / "scan.txt").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xd8")
    proc = subprocess.run([sys.executable, str(ROOT / "examples/archive/spark_notes.py"), str(notes),
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = pq.read_table(tmp_path / "out")
    assert out.num_rows == 21 and "content" not in out.column_names
    assert sorted(out["status"].to_pylist()) == ["binary"] + ["ok"] * 20
