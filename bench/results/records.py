"""Stored metrics as typed records: each field declared once, with its type and how it is averaged over training
seeds (`metric(...)`). `parse` then `dump` gives back the stored dict exactly; `over_seeds` averages replicas.
None stands for a field the row does not hold (metrics never store a top-level null)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any, NotRequired, Self, TypedDict

from bench.results.metrics import replica_mean


class Prop(TypedDict):
    """A proportion as stored (`Proportion.as_dict` of `bench.results.metrics`); a mean over seeds adds seeds and
    replicas."""

    k: int
    n: int
    value: float
    lo: float
    hi: float
    seeds: NotRequired[int]
    replicas: NotRequired[list[Prop]]


class Summary(TypedDict):
    """Mean and median of per-image values (`bench.results.metrics.summary`)."""

    mean: float
    median: float


OverSeeds = Callable[[list[Any]], Any]  # one field's values, one per seed (None where a seed lacks it) -> the mean


def proportion_mean(values: list[Any]) -> Prop | None:
    """The mean over seeds with its interval (`bench.results.metrics.replica_mean`); None where no seed has it."""
    return replica_mean(values) if any(values) else None


def plain_mean(values: list[Any]) -> float | None:
    """The plain mean of the seeds that have a value."""
    got = [v for v in values if v is not None]
    return sum(got) / len(got) if got else None


def rounded_mean(values: list[Any]) -> int | None:
    """A count's mean over the seeds that have it, rounded."""
    m = plain_mean(values)
    return None if m is None else int(round(m))


def summary_mean(values: list[Any]) -> Summary | None:
    """Each statistic (mean, median) averaged over the seeds that have it."""
    got = [v for v in values if v]
    if not got:
        return None
    return Summary(mean=sum(v["mean"] for v in got) / len(got), median=sum(v["median"] for v in got) / len(got))


def first_seed(values: list[Any]) -> Any:
    """Not averaged: the first seed's value (replica 0 stands for its group), None where it has none."""
    return values[0] if values else None


def per_key(over_seeds: OverSeeds) -> OverSeeds:
    """For a dict of values (`by_subset`): each key's values over seeds, averaged with `over_seeds`."""
    def each(values: list[Any]) -> dict | None:
        got = [v for v in values if v]
        keys = dict.fromkeys(k for v in got for k in v)
        return {k: over_seeds([v.get(k) if v else None for v in values]) for k in keys} if got else None
    return each


def metric(over_seeds: OverSeeds, *, optional: bool = False) -> Any:
    """Declare a field: how it is averaged over training seeds; `optional`: absent from some rows (older ones, or
    only some cells'), its default None."""
    if optional:
        return field(default=None, metadata={"over_seeds": over_seeds})
    return field(metadata={"over_seeds": over_seeds})


@dataclass(frozen=True, kw_only=True)
class MetricRecord:
    """A kind's stored metrics. Keys no field declares are kept in `extra`, so nothing stored is lost."""

    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def declared(cls) -> list[Field]:
        return [f for f in fields(cls) if "over_seeds" in f.metadata]

    @classmethod
    def parse(cls, stored: Mapping[str, Any], strict: bool = False) -> Self:
        """The record of a stored metrics dict, a field it lacks None. `strict`: a required field it lacks, or a
        key no field declares, is an error (what the tests check of every stored kind)."""
        declared = cls.declared()
        names = {f.name for f in declared}
        extra = {k: v for k, v in stored.items() if k not in names}
        missing = [f.name for f in declared if f.name not in stored and f.default is MISSING]
        if strict and (missing or extra):
            raise ValueError(f"{cls.__name__}: the stored metrics lack {missing or 'nothing'}, and hold "
                             f"undeclared {sorted(extra) or 'nothing'}")
        return cls(**{f.name: stored.get(f.name) for f in declared}, extra=extra)

    @classmethod
    def of(cls, stored: Any) -> Self | None:
        """`parse` for a frame's value: None for a cell with no stored metrics (None, or pandas' NaN)."""
        return cls.parse(stored) if isinstance(stored, Mapping) and stored else None

    def dump(self) -> dict[str, Any]:
        """The stored dict: the declared fields that are set, then the extra keys."""
        out = {f.name: v for f in self.declared() if (v := getattr(self, f.name)) is not None}
        return {**out, **self.extra}

    @classmethod
    def over_seeds(cls, records: Sequence[Self | None]) -> Self | None:
        """The mean over training replicas, field by field as declared (None for a seed without the cell, or
        where no seed has a field); None when no seed has the cell."""
        if not any(r is not None for r in records):
            return None
        return cls(**{f.name: f.metadata["over_seeds"]([None if r is None else getattr(r, f.name) for r in records])
                      for f in cls.declared()})


@dataclass(frozen=True, kw_only=True)
class CleanMetrics(MetricRecord):
    """A clean cell (Table I): `classification_metrics` (`bench.results.metrics`) and `clean_breakdown`
    (`bench.results.subset_metrics`)."""

    accuracy: Prop = metric(proportion_mean)
    auroc: float = metric(plain_mean)
    n: int = metric(rounded_mean)
    fake_precision: Prop = metric(proportion_mean)
    fake_recall: Prop = metric(proportion_mean)
    real_precision: Prop = metric(proportion_mean)
    real_recall: Prop = metric(proportion_mean)
    abstained: Prop | None = metric(proportion_mean, optional=True)  # a smoothed detector's
    auroc_lo: float | None = metric(first_seed, optional=True)  # DeLong's interval (not in older rows)
    auroc_hi: float | None = metric(first_seed, optional=True)
    by_subset: dict[str, dict[str, Any]] | None = metric(first_seed, optional=True)  # subset -> its clean metrics
    video: dict[str, Any] | None = metric(first_seed, optional=True)


@dataclass(frozen=True, kw_only=True)
class AttackMetrics(MetricRecord):
    """An attack cell (Table II): one craft's examples scored on a target (`bench.cells.scoring.score_attack`)."""

    accuracy: Prop = metric(proportion_mean)
    clean_accuracy: Prop = metric(proportion_mean)
    success_rate: Prop = metric(proportion_mean)
    l2: Summary = metric(summary_mean)
    linf: Summary = metric(summary_mean)
    l2_successful: Summary = metric(summary_mean)
    linf_successful: Summary = metric(summary_mean)
    l2_per_image: dict[str, list] | None = metric(first_seed, optional=True)  # ids, l2 (not in older rows)
    by_subset: dict[str, Prop] | None = metric(per_key(proportion_mean), optional=True)
    smoothed: dict[str, Any] | None = metric(first_seed, optional=True)  # a smoothed target's per-image votes
    reference_accuracy: Prop | None = metric(proportion_mean, optional=True)  # a rerun check's reference


@dataclass(frozen=True, kw_only=True)
class CraftMetrics(MetricRecord):
    """A craft cell: an attack's examples before scoring (`bench.cells.craft.craft_examples`)."""

    l2: Summary = metric(summary_mean)
    linf: Summary = metric(summary_mean)
    n: int = metric(rounded_mean)
    seconds_per_image: float = metric(plain_mean)
    l2_before: Summary | None = metric(summary_mean, optional=True)
    linf_before: Summary | None = metric(summary_mean, optional=True)
    effective_params: dict[str, str] | None = metric(first_seed, optional=True)
    storage_aware: bool | None = metric(first_seed, optional=True)
    storage: list | None = metric(first_seed, optional=True)
    forward_per_image: float | None = metric(plain_mean, optional=True)
    backward_per_image: float | None = metric(plain_mean, optional=True)
    unchanged: Prop | None = metric(proportion_mean, optional=True)
    success_before_storage: Prop | None = metric(proportion_mean, optional=True)
    budget: dict[str, Any] | None = metric(first_seed, optional=True)  # the delivered examples' norm against the budget


@dataclass(frozen=True, kw_only=True)
class GradNormMetrics(MetricRecord):
    """A gradnorm cell: input-gradient norms of a variant (`bench.cells.scoring.gradient_norms`)."""

    mean: float = metric(plain_mean)
    median: float = metric(plain_mean)
    n: int = metric(rounded_mean)
    zero: int | None = metric(rounded_mean, optional=True)  # not in older rows
    non_finite: int | None = metric(rounded_mean, optional=True)
