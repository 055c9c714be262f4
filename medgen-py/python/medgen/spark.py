"""medgen inside Apache Spark: the steps of medgen.ray (Deidentify, RunTask, Generate,
Score) run by `DataFrame.mapInArrow`, same columns and statuses.

    from medgen.spark import map_in_arrow
    from medgen.ray import Deidentify
    out = map_in_arrow(spark.read.parquet("notes/"), Deidentify, column="text")
    out.drop("text").write.parquet("out/")

A model loads once per partition (each task of mapInArrow builds its step).
"""

from .ray import portable

__all__ = ["map_in_arrow"]


def map_in_arrow(df, step, **options):
    """`df` with `step(**options)` applied to each batch of rows, as a Spark DataFrame. The
    options and columns are checked here, before any task starts."""
    from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

    options = portable(options)
    spec = step(**options, load=False)
    spec.check(df.columns)
    schema = from_arrow_schema(spec.output_schema(to_arrow_schema(df.schema)))

    def run(batches):
        fn = step(**options)
        for batch in batches:
            yield from fn(batch).to_batches()

    return df.mapInArrow(run, schema)
