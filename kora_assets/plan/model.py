"""The migration plan: a typed, validated description of what moves where and how.

The plan is the single source of truth every other layer reads: the asset factory builds
assets from it, workers compile their transforms and validators from it, checks compare
source and target as it says they should map.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kora_assets.plan.types import KoraType, parse_type
from kora_assets.transforms.operators import Operator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Rules(_Strict):
    """Per-column record rules, checked inline on every row."""

    min: float | None = None
    max: float | None = None
    regex: str | None = None
    allowed: list[str] | None = None

    @field_validator("regex")
    @classmethod
    def _compiles(cls, v):
        if v is not None:
            import re

            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"regex {v!r} does not compile: {exc}") from None
        return v


class ColumnPlan(_Strict):
    target: str | None = Field(None, description="target column name; defaults to the source name")
    type: str = Field(description="target type in kora's vocabulary, e.g. varchar(80), numeric(12,2)")
    nullable: bool = True
    transform: list[Operator] = Field(default_factory=list)
    rules: Rules = Field(default_factory=Rules)
    default: str | int | float | bool | None = Field(
        None, description="target DDL default: a value, or CURRENT_TIMESTAMP, CURRENT_DATE, CURRENT_TIME")
    on_update: Literal["CURRENT_TIMESTAMP"] | None = Field(
        None, description="set to the clock when the application updates the row (MySQL's ON UPDATE "
                          "CURRENT_TIMESTAMP; a trigger on PostgreSQL)")
    identity: bool = Field(False, description="the target generates the column's values after cut-over (PostgreSQL "
                                              "identity, restarted past the migrated keys); kora init sets it for "
                                              "auto-increment, serial and identity source columns")
    semantic: str | None = Field(None, description="semantic type (e.g. email); 'off' disables")
    thresholds: dict[str, float | bool] = Field(
        default_factory=dict, description="statistical-check thresholds for this column (see checks/statistical.py)")

    @field_validator("semantic", mode="before")
    @classmethod
    def _semantic_off(cls, v):
        return "off" if v is False else v  # YAML reads a bare `off` as false

    @field_validator("type")
    @classmethod
    def _type_parses(cls, v):
        parse_type(v)
        return v

    @model_validator(mode="after")
    def _identity_is_an_integer_without_default(self):
        if self.identity and not self.ktype.is_integer:
            raise ValueError(f"identity needs an integer type (smallint, integer, bigint), not {self.type}")
        if self.identity and self.default is not None:
            raise ValueError("a column has either identity or a default, not both")
        if self.on_update and self.ktype.name not in ("timestamp", "timestamptz"):
            raise ValueError(f"on_update needs a timestamp type, not {self.type}")
        return self

    @property
    def ktype(self) -> KoraType:
        return parse_type(self.type)


class ForeignKey(_Strict):
    columns: list[str] = Field(min_length=1)
    references: str = Field(description="source name of the parent table")
    ref_columns: list[str] = Field(min_length=1)
    on_delete: Literal["no action", "restrict", "cascade", "set null", "set default"] = "no action"
    on_update: Literal["no action", "restrict", "cascade", "set null", "set default"] = "no action"
    name: str | None = None


class Index(_Strict):
    columns: list[str] = Field(min_length=1)
    unique: bool = False
    name: str | None = None


class Partitioning(_Strict):
    """How a table splits into Dagster partitions.

    ``key_range``: static partitions over an integer column, normally the (leading) primary
    key column; ``bounds`` are the lower bounds of partitions 2..n (partition 1 is open below,
    the last open above), so every row lands in exactly one partition and each partition
    reads one index range.
    ``time``: daily or monthly windows over a timestamp column, for tables that keep growing.
    ``none``: the table is a single partition.
    """

    kind: Literal["key_range", "time", "none"] = "none"
    column: str | None = None
    bounds: list[int] = Field(default_factory=list)
    granularity: Literal["daily", "monthly"] = "monthly"
    start: dt.date | None = None

    @field_validator("bounds")
    @classmethod
    def _sorted(cls, v):
        if any(b <= a for a, b in zip(v, v[1:])):
            raise ValueError("bounds must be strictly increasing")
        return v


DAGSTER_NAME = r"^[A-Za-z0-9_]+$"  # what Dagster accepts as a group, job or key prefix


class TablePlan(_Strict):
    target: str | None = None
    group: str | None = Field(None, pattern=DAGSTER_NAME, description="Dagster asset group; defaults to the plan name")
    primary_key: list[str] = Field(default_factory=list)
    columns: dict[str, ColumnPlan] = Field(min_length=1)
    foreign_keys: list[ForeignKey] = Field(default_factory=list)
    unique: list[list[str]] = Field(default_factory=list)
    indexes: list[Index] = Field(default_factory=list)
    partitioning: Partitioning = Field(default_factory=Partitioning)
    chunk_rows: int | None = Field(None, gt=0)
    thresholds: dict[str, float | bool] = Field(
        default_factory=dict, description="statistical-check thresholds for every column of the table")

    def target_column(self, source_column: str) -> str:
        return self.columns[source_column].target or source_column

    def unique_sets(self) -> list[list[str]]:
        """The unique column sets (source names) beside the primary key: constraints and unique indexes."""
        sets = [list(u) for u in self.unique] + [list(ix.columns) for ix in self.indexes if ix.unique]
        return [s for s in sets if s != list(self.primary_key)]


class Endpoint(_Strict):
    url: str = Field(description="SQLAlchemy-style URL; ${VAR} references environment variables")
    schema_: str | None = Field(None, alias="schema")


class Settings(_Strict):
    # Rows per batch inside a partition: a worker holds a few batches at once (reading the next
    # while the last one's COPY runs). TPC-H lineitem in one worker, 8 partitions: peak RSS
    # 343 MiB at 100k rows, 295 at 50k, 288 at 25k; CPU the same at 50k, +7% at 25k.
    chunk_rows: int = Field(50_000, gt=0)
    workers: int = Field(2, ge=1, le=256)
    lossy_fixes_allowed: bool = False
    max_fix_attempts: int = Field(3, ge=1)
    detect_mojibake: bool = True


class Plan(_Strict):
    version: Literal[1] = 1
    name: str = Field("kora", pattern=DAGSTER_NAME, description="prefix of the asset keys, jobs and sensors")
    source: Endpoint
    target: Endpoint
    settings: Settings = Field(default_factory=Settings)
    tables: dict[str, TablePlan] = Field(min_length=1)
    query_log: str | None = Field(None, description="file of SQL the application ran (replay checks)")

    def target_name(self, table: str) -> str:
        return self.tables[table].target or table

    def table_by_target(self, target: str) -> str:
        for name in self.tables:
            if self.target_name(name) == target:
                return name
        raise KeyError(target)

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
