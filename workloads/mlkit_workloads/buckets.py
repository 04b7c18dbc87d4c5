"""Several groups per pandas UDF call: how train_many and score lay their groups out on Spark.

A bucket is a hash of the group keys, so buckets hold about the same number of groups and a group
is always whole in one bucket. Each UDF call gets one bucket and loops over its groups (one call per
group costs Spark/Arrow ~5-7 ms of handover each on the cores the fits use). The rows are
range-partitioned on the bucket, so a task holds whole buckets; applyInPandas reuses that
partitioning (one shuffle).
"""

from __future__ import annotations

from contextlib import contextmanager

BUCKET = "_bucket"
# Most rows one UDF call holds in pandas, on average: a call's memory is its bucket's rows, not its
# partition's. 250k rows are ~60 groups of 4,000 rows (~20 MB as pandas).
MAX_ROWS_PER_CALL = 250_000
TASKS_PER_CORE = 4  # a core that finishes early takes the next task: the tail stays short


def layout(total_rows: int, groups: int, cores: int, max_rows: int = MAX_ROWS_PER_CALL) -> tuple[int, int]:
    """(tasks, buckets): TASKS_PER_CORE tasks per core, never more than the groups; buckets a multiple
    of the tasks, enough that a call holds at most ``max_rows`` rows on average, never more than the groups."""
    tasks = max(1, min(groups, TASKS_PER_CORE * cores))
    per_task = -(-total_rows // (tasks * max_rows))  # ceil
    return tasks, max(1, min(groups, tasks * max(1, per_task)))


def scoring_tasks(groups: int, cores: int, min_groups: int) -> int:
    """Tasks for a stage whose rows are few and whose work is per group (scoring): one per core
    while a task would get fewer than ``min_groups`` groups (each task costs a launch, a shuffle
    fetch and an Arrow round trip, measured ~0.3-0.5 s on this machine's 2 busy cores: a quarter of
    the stage at 1,000 groups with 4 tasks per core), up to TASKS_PER_CORE per core, never more
    than the groups."""
    return max(1, min(groups, TASKS_PER_CORE * cores, max(cores, groups // max(min_groups, 1))))


def numbered(pdf, keys: list[str], buckets: int):
    """``pdf`` (pandas, on the driver) with a BUCKET column: the groups dealt round-robin in order of
    appearance, so buckets differ by at most one group (a hash spreads 500 groups +- 4 %)."""
    return pdf.assign(**{BUCKET: (pdf.groupby(keys, sort=False).ngroup() % buckets).astype("int32")})


def bucketed(sdf, keys: list[str], tasks: int, buckets: int):
    """``sdf`` with a BUCKET column (hash of the keys mod ``buckets``), range-partitioned on it into ``tasks``."""
    from pyspark.sql import functions as F

    bucket = F.pmod(F.xxhash64(*keys), F.lit(buckets)).cast("int").alias(BUCKET)
    return sdf.select("*", bucket).repartitionByRange(tasks, BUCKET)


@contextmanager
def spark_conf(spark, **values: str):
    """Set Spark SQL confs for one block and put the previous values back."""
    before = {k: spark.conf.get(k, None) for k in values}
    for k, v in values.items():
        spark.conf.set(k, v)
    try:
        yield
    finally:
        for k, v in before.items():
            spark.conf.unset(k) if v is None else spark.conf.set(k, v)
