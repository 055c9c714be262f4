"""De-identify a folder of .txt notes (or draft a clinical task from each) into Parquet,
with Ray Data: one actor per worker, each row once even if the job is killed and run again.

    python examples/archive/make_notes.py notes/ 1000
    python examples/archive/process_notes.py notes/ out/ --workers 2              # a laptop
    python examples/archive/process_notes.py notes/ out/ --address ray://head:10001  # a cluster

On a cluster, `notes/` and `out/` are paths every worker reads (NFS, s3://...). The output
has one row per note: path, deidentified, entities, status, error (with --task: the draft,
sections, findings, audit); never the note itself, nor the mapping back to the identifiers.
"""
import argparse

import ray

import medgen.ray

parser = argparse.ArgumentParser()
parser.add_argument("notes")
parser.add_argument("output")
parser.add_argument("--address", default=None, help="the cluster's address (default: a local Ray)")
parser.add_argument("--workers", type=int, default=2)
parser.add_argument("--task", default=None, help="a clinical task (medgen.tasks.names()) instead of de-identification")
parser.add_argument("--model", default=None, help="the model for --task (default: medgen's)")
parser.add_argument("--max-new-tokens", type=int, default=256)
args = parser.parse_args()

# Locally, one CPU per worker and one for reading and writing; a cluster has its own.
ray.init(args.address) if args.address else ray.init(num_cpus=args.workers + 1)
ds = ray.data.read_binary_files(args.notes, include_paths=True, file_extensions=["txt"])
if args.task:
    ds = medgen.ray.map_batches(ds, medgen.ray.RunTask, task=args.task, column="bytes", model=args.model,
                                max_new_tokens=args.max_new_tokens, workers=args.workers, batch_size=8)
else:
    ds = medgen.ray.map_batches(ds, medgen.ray.Deidentify, column="bytes", workers=args.workers)
print(medgen.ray.write_parquet(ds.drop_columns(["bytes"]), args.output, id_column="path"))
