"""Several groups per pandas UDF call: how train_many and score lay their groups out on Spark.

A bucket is a hash of the group keys (training) or a round-robin deal of the groups on the driver
(scoring, whose rows are there already), so buckets hold about the same number of groups and a
group is always whole in one bucket. Each UDF call gets one bucket and loops over its groups (one
call per group costs Spark/Arrow ~5-7 ms of handover each on the cores the fits use).

Bucket b goes to task b mod tasks, exactly: the bucket column holds a *label*, an integer chosen
so that Spark's hash partitioning (``pmod(murmur3(label, 42), tasks)``) sends it to that task, and
the rows are ``repartition(tasks, label)``-ed; applyInPandas reuses that partitioning (one
shuffle). Range partitioning on the bucket (what this used before) samples its bounds: with as
many buckets as tasks it put two buckets in one task and none in another in 2 of 3 trials of the
scoring stage (1,000 groups, 2 tasks: one core idle, the stage ~1.5x longer).
"""

from __future__ import annotations

from contextlib import contextmanager

BUCKET = "_bucket"
# Most rows one UDF call holds in pandas, on average: a call's memory is its bucket's rows, not its
# partition's. 250k rows are ~60 groups of 4,000 rows (~20 MB as pandas).
MAX_ROWS_PER_CALL = 250_000
TASKS_PER_CORE = 4  # a core that finishes early takes the next task: the tail stays short
_SEED = 42  # Spark's Murmur3Hash seed (HashPartitioning, F.hash)


def layout(total_rows: int, groups: int, cores: int, max_rows: int = MAX_ROWS_PER_CALL) -> tuple[int, int]:
    """(tasks, buckets): TASKS_PER_CORE tasks per core, never more than the groups; buckets a multiple
    of the tasks, enough that a call holds at most ``max_rows`` rows on average, never more than the groups."""
    tasks = max(1, min(groups, TASKS_PER_CORE * cores))
    per_task = -(-total_rows // (tasks * max_rows))  # ceil
    return tasks, max(1, min(groups, tasks * max(1, per_task)))


def scoring_tasks(groups: int, cores: int, min_groups: int) -> int:
    """Tasks for a stage whose rows are few and whose work is per group (scoring): one per core
    while a task would get fewer than ``min_groups`` groups (each task costs a launch, a shuffle
    fetch and an Arrow round trip), up to TASKS_PER_CORE per core, never more than the groups."""
    return max(1, min(groups, TASKS_PER_CORE * cores, max(cores, groups // max(min_groups, 1))))


def _murmur3_int(value: int, seed: int = _SEED) -> int:
    """Spark's Murmur3_x86_32.hashInt (what ``F.hash`` and hash partitioning compute for an int)."""
    m = 0xFFFFFFFF

    def rotl(x: int, r: int) -> int:
        return ((x << r) | (x >> (32 - r))) & m

    k = (value & m) * 0xCC9E2D51 & m
    k = rotl(k, 15) * 0x1B873593 & m
    h = rotl(seed ^ k, 13)
    h = (h * 5 + 0xE6546B64) & m
    h ^= 4
    h ^= h >> 16
    h = h * 0x85EBCA6B & m
    h ^= h >> 13
    h = h * 0xC2B2AE35 & m
    h ^= h >> 16
    return h - (1 << 32) if h & 0x80000000 else h


def labels(buckets: int, tasks: int) -> list[int]:
    """One distinct int per bucket b such that Spark hash-partitions it into task b mod tasks."""
    want: dict[int, list[int]] = {}
    for b in range(buckets - 1, -1, -1):
        want.setdefault(b % tasks, []).append(b)
    out = [0] * buckets
    v, left = 0, buckets
    while left:
        free = want.get(_murmur3_int(v) % tasks)
        if free:
            out[free.pop()] = v
            left -= 1
        v += 1
    return out


def bucketed(sdf, keys: list[str], tasks: int, buckets: int):
    """``sdf`` with a BUCKET label column (from a hash of the keys mod ``buckets``), each bucket in
    task (bucket mod ``tasks``)."""
    from pyspark.sql import functions as F

    bucket = F.pmod(F.xxhash64(*keys), F.lit(buckets)).cast("int")
    label = F.array(*[F.lit(v) for v in labels(buckets, tasks)])[bucket].cast("int").alias(BUCKET)
    return sdf.select("*", label).repartition(tasks, BUCKET)


def dealt(spark, pdf, keys: list[str], tasks: int):
    """A driver-side pandas frame as a Spark frame with one bucket per task: the groups dealt
    round-robin in order of appearance (buckets differ by at most one group; a hash spreads 500
    groups +- 4 %)."""
    b = pdf.groupby(keys, sort=False).ngroup().to_numpy() % tasks
    names = labels(tasks, tasks)
    return spark.createDataFrame(pdf.assign(**{BUCKET: [names[i] for i in b]})).repartition(tasks, BUCKET)


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
