"""Rows per second of the archive pipeline on a local Ray with 1 and 2 workers: de-identifying
10,000 notes, and generating 16 tokens from 400 prompts with a model (the job's whole time,
Ray Data's start-up and actor start-up included).

    python examples/archive/throughput.py MODEL    # an HF folder or GGUF; tests/.cache/tiny/llama
"""
import sys
import tempfile
from pathlib import Path

import ray

import medgen.ray as mr

sys.path.insert(0, str(Path(__file__).parent))
import make_notes  # noqa: E402

model = sys.argv[1]
with tempfile.TemporaryDirectory() as tmp:
    notes = make_notes.write_table(Path(tmp) / "notes", 10000)
    prompts = Path(tmp) / "prompts"
    make_notes.write_table(prompts, 400)
    for workers in (1, 2):
        ray.init(num_cpus=workers + 1, include_dashboard=False, log_to_driver=False)
        ds = mr.map_batches(ray.data.read_parquet(notes), mr.Deidentify, workers=workers, batch_size=100)
        deid = mr.write_parquet(ds, Path(tmp) / f"deid-{workers}", id_column="id")
        # The second line of a note: short enough for a tiny test model's 128 tokens.
        ds = ray.data.read_parquet(prompts).map_batches(
            lambda b: b.set_column(1, "text", [[t.split("\n")[1] for t in b["text"].to_pylist()]]),
            batch_format="pyarrow")
        ds = mr.map_batches(ds, mr.Generate, column="text", model=model, max_new_tokens=16, min_new_tokens=16,
                            threads=1, workers=workers, batch_size=8)
        gen = mr.write_parquet(ds, Path(tmp) / f"gen-{workers}", id_column="id")
        ray.shutdown()
        print(f"RESULT workers={workers} deidentify: {deid}\nRESULT workers={workers} generate: {gen}", flush=True)
