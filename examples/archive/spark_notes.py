"""The same as process_notes.py, with Apache Spark: de-identify a folder of .txt notes into
Parquet (mapInArrow over medgen.ray.Deidentify).

    python examples/archive/spark_notes.py notes/ out/                     # a laptop, 2 cores
    python examples/archive/spark_notes.py notes/ out/ --master spark://head:7077  # a cluster

The output has one row per note: path, deidentified, entities, status, error.
"""
import argparse
import os
import sys

from pyspark.sql import SparkSession

from medgen.ray import Deidentify
from medgen.spark import map_in_arrow

parser = argparse.ArgumentParser()
parser.add_argument("notes")
parser.add_argument("output")
parser.add_argument("--master", default="local[2]")
args = parser.parse_args()

# The Python workers must be this Python (the one with medgen), not the first on PATH.
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
spark = SparkSession.builder.master(args.master).appName("medgen-notes").getOrCreate()
notes = spark.read.format("binaryFile").option("pathGlobFilter", "*.txt").load(args.notes)
out = map_in_arrow(notes.select("path", "content"), Deidentify, column="content")
out.drop("content").write.mode("overwrite").parquet(args.output)
print(spark.read.parquet(args.output).groupBy("status").count().collect())
