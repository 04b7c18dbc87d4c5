"""The few places where the Spark and pandas the jobs meet differ between this machine and the cluster.

The kit develops on pyspark 4.2 with pandas 2; the jobs run on the Databricks runtime of
target_runtime.py (Spark 3.5.0, pandas 1.5.3, numpy 1.23.5, pyarrow 14.0.1). Each helper does
the same thing on both; the Spark 3.5 test leg (.venv-spark35) runs them on the runtime's versions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

PANDAS_2 = int(pd.__version__.split(".")[0]) >= 2


def asi8_ns(arr) -> np.ndarray:
    """A naive DatetimeArray as int64 nanoseconds; pandas < 2 has no units other than ns (no as_unit)."""
    return arr.as_unit("ns").asi8 if hasattr(arr, "as_unit") else arr.asi8


def spark_to_arrow(df) -> pa.Table:
    """``DataFrame.toArrow()`` (Spark >= 4.0); on Spark 3.5 the Arrow collect that toPandas uses."""
    if hasattr(df, "toArrow"):
        return df.toArrow()
    from pyspark.sql.pandas.types import to_arrow_schema

    # Spark 3.5's toPandas collects Arrow batches this way; the schema keeps an empty result typed.
    return pa.Table.from_batches(df._collect_as_arrow(), schema=to_arrow_schema(df.schema))


def try_cast(name: str, to: str):
    """``col(name).try_cast(to)`` (Spark >= 4.0); on Spark 3.5 the SQL function of the same meaning."""
    from pyspark.sql import Column
    from pyspark.sql import functions as F

    if hasattr(Column, "try_cast"):
        return F.col(name).try_cast(to)
    quoted = name.replace("`", "``")
    return F.expr(f"try_cast(`{quoted}` AS {to})")
