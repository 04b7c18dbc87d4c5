"""Request and response models, generated from the configured feature schema.

Field names come from the environment (``workloads.forecast.columns``), so the models are built
at start with ``create_model``; each column is an alias of a safe Python name, which keeps odd
column names (spaces, dashes) working. Unknown fields are refused: a typo in a feature name is a
422 naming it, not a silently missing feature.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, create_model

# pandas timestamps end in 2262; far dates would overflow the calendar features.
MIN_YEAR, MAX_YEAR = 1900, 2200


YEAR_PATTERN = r"^(19[0-9]{2}|2[01][0-9]{2}|2200)-"


def _string_only(v: Any) -> Any:
    # Lax pydantic would read a number as a Unix time; the schema says string, so refuse it.
    if not isinstance(v, str):
        raise ValueError("must be a date-time string like '2024-06-01T00:00:00Z' (or a date '2024-06-01')")
    return v


def _in_range(v: dt.datetime) -> dt.datetime:
    if not MIN_YEAR <= v.year <= MAX_YEAR:
        raise ValueError(f"year must be between {MIN_YEAR} and {MAX_YEAR}")
    return v


# One type, not date | datetime: a union would put its member names into the error's field path.
# pydantic's datetime also accepts a plain date ("2024-06-01" = midnight); naive means UTC.
Stamp = Annotated[dt.datetime, BeforeValidator(_string_only), AfterValidator(_in_range), WithJsonSchema(
    {"type": "string", "format": "date-time", "pattern": YEAR_PATTERN,
     "description": f"date-time (naive = UTC) or date, years {MIN_YEAR}-{MAX_YEAR}"})]
# Strict: a JSON number or null. Lax mode would turn true/"1.5" into floats the schema does not allow.
# Bounded to float32 (the model's input type): a larger number would silently become infinity.
F32_MAX = 3.4e38
Feature = Annotated[float | None, Field(allow_inf_nan=False, strict=True, ge=-F32_MAX, le=F32_MAX)]


class ModelRef(BaseModel):
    name: str
    version: str


class ErrorBody(BaseModel):
    status: int
    code: str
    message: str
    field: str | None = None
    group: dict[str, str] | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class ModelInfo(BaseModel):
    name: str
    version: str
    alias: str
    group: dict[str, str]
    status: str | None = None
    model_type: str | None = Field(None, description="the group's model, chosen by backtest (e.g. auto_ets, xgboost)")
    first_ts: str | None = Field(None, description="first period the model was trained on")
    last_ts: str | None = Field(None, description="last trained period: forecasts start one period after it")
    frequency: str | None = Field(None, description="the periods' pandas offset alias (D, W, MS, ...)")
    horizon: int | None = Field(None, description="periods after last_ts the model forecasts (1 to horizon)")
    season_length: int | None = None
    backtest_windows: int | None = None
    levels: list[int] = Field([], description="prediction interval levels (lo_L/hi_L in predictions)")
    trained_at: str | None = None
    run_id: str | None = None
    metrics: dict[str, float | None] = Field({}, description="backtest metrics of the model (and of the baseline)")
    model_bytes: int | None = None


def example_request(models, periods: int = 3) -> tuple[tuple | None, list[str] | None, list[int]]:
    """A served group and the first periods after its last trained period (the OpenAPI example):
    a request a client can send as it is. ``models``: a version's GroupModels."""
    groups = models.groups()
    if not groups:
        return None, None, []
    info, spec = models.group_info(groups[0]), models.spec
    if not info.get("last_ts") or not spec.forecasts_future:  # a bundle of calendar boosters: any date
        return groups[0], None, list(spec.levels)
    import pandas as pd

    from ..forecast.frequency import future_dates

    dates = future_dates(pd.Timestamp(info["last_ts"]), spec.frequency, min(periods, int(spec.horizon)))
    return groups[0], [f"{d.date().isoformat()}T00:00:00Z" for d in dates], list(spec.levels)


class Schemas:
    """The generated models plus the column mapping between aliases and attribute names."""

    def __init__(self, keys: list[str], timestamp: str, features: list[str], max_batch_rows: int,
                 example_group: tuple[str, ...] | None = None, example_dates: list[str] | None = None,
                 levels: list[int] | None = None):
        """``example_group``/``example_dates``: a served group and periods it can forecast (the first
        ones after its last trained period), so the OpenAPI example is a request a client can send."""
        self.keys, self.timestamp, self.features = keys, timestamp, features
        self.example_version: str | None = None  # the served version the example was made for
        self.key_attr = {k: f"k{i}" for i, k in enumerate(keys)}
        self.feature_attr = {f: f"f{i}" for i, f in enumerate(features)}
        self.example_group = tuple(example_group) if example_group else tuple(f"{k}-1" for k in keys)
        # Mutable on purpose: set_example puts a newly served version's group and dates in place.
        group_example = dict(zip(keys, self.example_group))
        dates = example_dates or [f"{dt.date.today().isoformat()}T00:00:00Z"]
        row_examples = [{timestamp: d, **{f: 0.0 for f in features}} for d in dates]
        self._examples = (group_example, row_examples)
        bands = [f"{side}_{lv}" for lv in (levels or [80, 95]) for side in ("lo", "hi")]
        strict = ConfigDict(extra="forbid", populate_by_name=False)

        self.Group = create_model(
            "Group", __config__=ConfigDict(extra="forbid", json_schema_extra={"examples": [group_example]}),
            **{a: (str, Field(alias=k, min_length=1, max_length=200)) for k, a in self.key_attr.items()})
        self.Row = create_model(
            "Row", __config__=ConfigDict(**strict, json_schema_extra={"examples": [row_examples[0]]}),
            ts=(Stamp, Field(alias=timestamp, description="the period to forecast: one of the 1 to horizon periods "
                             "after the group's last trained period (GET /v1/models/{group}), on its frequency")),
            **{a: (Feature, Field(None, alias=f, description=f"feature {f!r} in that period: required by groups whose "
                                  "model uses features (model_type xgboost), in a row for every period from the "
                                  "first after the history to the furthest one requested; ignored otherwise"))
               for f, a in self.feature_attr.items()})
        request_example = {"group": group_example, "rows": row_examples}
        self.PredictRequest = create_model(
            "PredictRequest", __config__=ConfigDict(extra="forbid", json_schema_extra={"examples": [request_example]}),
            group=(self.Group, Field(description=f"the group: {', '.join(keys)}")),
            rows=(list[self.Row], Field(min_length=1, description=f"1 to {max_batch_rows} rows of one group",
                                        json_schema_extra={"maxItems": max_batch_rows})))
        self.PredictResponse = create_model(
            "PredictResponse",
            request_id=(str, ...), model=(ModelRef, ...), group=(dict[str, str], ...),
            model_type=(str | None, Field(None, description="the group's model (chosen by backtest)")),
            predictions=(list[float | None], Field(description="the point forecast, one per row, in order")),
            intervals=(dict[str, list[float | None]], Field(
                description=f"prediction interval bounds per row, in order: {', '.join(bands)} (lo_L/hi_L: the "
                            "L % interval); empty for a model without intervals")))

    def set_example(self, group: tuple[str, ...] | None, dates: list[str] | None) -> None:
        """The OpenAPI example for another served version (the generated models read it at schema time)."""
        group_example, row_examples = self._examples
        if group:
            group_example.update(zip(self.keys, group))
        if dates:  # in place: the Row model's example is the first of these dicts
            template = {k: v for k, v in row_examples[0].items() if k != self.timestamp}
            for i, d in enumerate(dates):
                if i < len(row_examples):
                    row_examples[i][self.timestamp] = d
                else:
                    row_examples.append({self.timestamp: d, **template})
            del row_examples[len(dates):]

    def group_key(self, req: Any) -> tuple[str, ...]:
        return tuple(getattr(req.group, self.key_attr[k]) for k in self.keys)

    def model_input(self, req: Any):
        """The validated rows as the service forecasts them (dates + feature values by name)."""
        from .service import Rows

        attrs = self.feature_attr.items()
        return Rows([r.ts for r in req.rows], [{f: getattr(r, a) for f, a in attrs} for r in req.rows])

    def rows_json(self, req: Any) -> list[dict[str, Any]]:
        ts, attrs = self.timestamp, self.feature_attr.items()
        return [{ts: r.ts.isoformat(), **{f: getattr(r, a) for f, a in attrs}} for r in req.rows]


class ClassifierSchemas:
    """Request/response models of a single classifier: one row per case, the model's input columns
    (names and types from its MLflow signature where a version is loaded, else the environment's
    classifier features: categorical ones as strings). Every column is required in every row; null
    is a missing value (the model's imputers fill it)."""

    def __init__(self, job: str, columns: list, max_batch_rows: int, positive_label: str,
                 example_rows: list[dict[str, Any]] | None = None):
        self.job, self.columns, self.positive_label = job, columns, positive_label
        self.attr = {c.name: f"c{i}" for i, c in enumerate(columns)}
        self.example_version: str | None = None
        title = job.capitalize()

        def field_of(c):
            if c.kind == "string":
                return (str | None, Field(..., alias=c.name, max_length=200, description=f"{c.name!r} (category)"))
            return (Feature, Field(..., alias=c.name, description=f"{c.name!r} (number)"))

        # Mutable on purpose: set_example puts a newly served version's example rows in place.
        self._rows: list[dict[str, Any]] = []
        self._row: dict[str, Any] = {}
        self.set_example(example_rows or [])
        strict = ConfigDict(extra="forbid", populate_by_name=False, json_schema_extra={"examples": [self._row]})
        self.Row = create_model(f"{title}Row", __config__=strict,
                                **{self.attr[c.name]: field_of(c) for c in columns})
        self.PredictRequest = create_model(
            f"{title}PredictRequest",
            __config__=ConfigDict(extra="forbid", json_schema_extra={"examples": [{"rows": self._rows}]}),
            rows=(list[self.Row], Field(min_length=1, description=f"1 to {max_batch_rows} rows to classify",
                                        json_schema_extra={"maxItems": max_batch_rows})))
        self.PredictResponse = create_model(
            f"{title}PredictResponse",
            request_id=(str, ...), model=(ModelRef, ...),
            threshold=(float, Field(description="the model's probability cut: label 1 at or above it")),
            positive_label=(str, Field(description="the class label 1 stands for")),
            probabilities=(list[float], Field(description="probability of the positive class, one per row, in order")),
            labels=(list[int], Field(description="1 (positive_label) or 0 per row, at the threshold")))

    def set_example(self, rows: list[dict[str, Any]]) -> None:
        """Up to two rows of the version's input example that the schema accepts as they are, else a
        placeholder row (categories "No", numbers 0)."""
        placeholder = {c.name: ("No" if c.kind == "string" else 0.0) for c in self.columns}
        picked = [{c.name: r.get(c.name) for c in self.columns} for r in rows]
        picked = [r for r in picked if all(_fits(c, r[c.name]) for c in self.columns)][:2] or [placeholder]
        self._rows[:] = picked
        self._row.clear()
        self._row.update(picked[0])

    def model_input(self, req: Any) -> list[dict[str, Any]]:
        return [{c.name: getattr(r, self.attr[c.name]) for c in self.columns} for r in req.rows]


def _fits(column, value: Any) -> bool:
    """An input-example value the request schema accepts as it is (a NaN or a wrong type would not)."""
    if value is None:
        return True
    if column.kind == "string":
        return isinstance(value, str) and len(value) <= 200
    return isinstance(value, (int, float)) and not isinstance(value, bool) and abs(float(value)) <= F32_MAX
