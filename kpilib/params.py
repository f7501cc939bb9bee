"""Parameters and KPI schemes: YAML files turned into validated objects.

Unknown keys, wrong types and empty values are errors naming the file and the key. Run parameters
are merged from ``params/base.yaml``, then ``params/departments/<id>.yaml`` where it exists, then
``--set key=value`` overrides, in that order.

Values are checked against the declared type of their key before anything uses them: a number must
be a finite number (not ``true``, not ``.inf``, not ``1); import os``); a text key keeps what was
written (``007``, ``NO``, ``1e3`` and ``2024-01-01`` are text there, see `kpilib.io.read_yaml`). A
report notebook only ever receives these validated values, under names the runner chooses.
"""

from __future__ import annotations

import keyword
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import pandas as pd
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from kpilib import paths
from kpilib.errors import ParamsError
from kpilib.io import read_yaml
from kpilib.metrics import METRICS, MetricSettings
from kpilib.schemas import CRM

_WEIGHT_TOLERANCE = 1e-6
_Model = TypeVar("_Model", bound=BaseModel)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _not_a_boolean(value: Any) -> Any:
    # pydantic would take true as 1; a number key given true/false is a mistake.
    if isinstance(value, bool):
        raise ValueError("true/false is not a number")
    return value


Number = Annotated[float, BeforeValidator(_not_a_boolean)]
"""A finite number; true/false, ``.inf``, ``.nan`` and text that is not a number are refused."""
Whole = Annotated[int, BeforeValidator(_not_a_boolean)]
"""A whole number; true/false, fractions and text that is not a whole number are refused."""


class _Strict(BaseModel):
    # Unknown keys are errors; numbers are finite; a number where text is expected (a YAML
    # ``2024`` or ``1e3`` for a name) is taken as the text it was written as.
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        str_min_length=1,
        allow_inf_nan=False,
        coerce_numbers_to_str=True,
    )

    @field_validator("*", mode="before")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        # A key left blank in YAML reads as None: an error, not a silent "use the default".
        if value is None:
            raise ValueError("empty value; give a value or leave the key out")
        return value


class Target(_Strict):
    """A KPI's target.

    ``absolute``: the target is ``value`` itself. ``relative``: the baseline's value times
    ``1 + value`` (0.10 is 10% growth). ``increase``: the baseline's value plus ``value``.
    ``by_tier`` replaces ``value`` for managers of that tier.
    """

    type: Literal["absolute", "relative", "increase"] = "absolute"
    value: Number
    by_tier: dict[str, Number] = Field(default_factory=dict)

    def value_for(self, tier: str | None) -> float:
        """The target value for a manager's tier (the plain value for others and departments)."""
        return self.by_tier.get(tier, self.value) if tier else self.value


class Kpi(_Strict):
    """One KPI: a registered metric with its target, polarity, weight in its goal and cap.

    ``drives`` names the business result the KPI is meant to raise, which the quarterly
    verification tests it against; left out, service KPIs drive existing-client revenue and all
    others net profit (`kpilib.links.intended_result`).
    """

    metric: str
    id: str | None = None
    name: str | None = None
    level: Literal["manager", "department"] = "manager"
    weight: Number | None = Field(default=None, gt=0, le=1)
    target: Target
    polarity: Literal["higher", "lower"] | None = None
    cap: Number | None = Field(default=None, gt=0)
    params: dict[str, Number] = Field(default_factory=dict)
    drives: Literal["net_profit", "revenue", "existing_client_revenue"] | None = None

    @field_validator("metric")
    @classmethod
    def _registered(cls, metric: str) -> str:
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
        return metric

    @model_validator(mode="after")
    def _known_params(self) -> Kpi:
        unknown = set(self.params) - set(METRICS[self.metric].params)
        if unknown:
            allowed = ", ".join(METRICS[self.metric].params) or "none"
            raise ValueError(
                f"unknown parameter(s) {sorted(unknown)} for metric "
                f"{self.metric!r} (allowed: {allowed})"
            )
        return self

    @property
    def key(self) -> str:
        """The KPI's id, defaulting to its metric."""
        return self.id or self.metric

    @property
    def label(self) -> str:
        """The KPI's display name, defaulting to the metric's."""
        return self.name or METRICS[self.metric].label

    @property
    def direction(self) -> Literal["higher", "lower"]:
        """Which way is better: the scheme's word, else the metric's."""
        return self.polarity or METRICS[self.metric].polarity


class Goal(_Strict):
    """A weighted goal grouping KPIs (KPI weights within a goal default to equal shares)."""

    id: str
    name: str
    weight: Number = Field(gt=0, le=1)
    kpis: list[Kpi] = Field(min_length=1)

    @model_validator(mode="after")
    def _kpi_weights(self) -> Goal:
        given = [kpi.weight for kpi in self.kpis if kpi.weight is not None]
        if given and len(given) != len(self.kpis):
            raise ValueError("give every KPI of the goal a weight, or none (equal shares)")
        if given and not math.isclose(sum(given), 1.0, abs_tol=_WEIGHT_TOLERANCE):
            raise ValueError(f"KPI weights within the goal sum to {sum(given):g}, not 1")
        return self

    def kpi_weight(self, kpi: Kpi) -> float:
        """The KPI's weight in the whole scheme: goal weight times its share of the goal."""
        share = kpi.weight if kpi.weight is not None else 1 / len(self.kpis)
        return self.weight * share


class Baseline(_Strict):
    """The reference period of relative targets and growth.

    ``year_ago``: the same month a year before. ``trailing``: the mean of the `months` months
    before the period.
    """

    method: Literal["year_ago", "trailing"] = "year_ago"
    months: Whole = Field(default=3, ge=1, le=24)

    def months_for(self, period: pd.Period) -> tuple[pd.Period, ...]:
        """The baseline months of a period."""
        if self.method == "year_ago":
            return (period - 12,)
        return tuple(period - offset for offset in range(self.months, 0, -1))


class Scheme(_Strict):
    """A KPI scheme: weighted goals of KPIs with targets."""

    name: str
    description: str | None = None
    technical_hour_cost: Number = Field(default=1500.0, ge=0)
    baseline: Baseline = Field(default_factory=Baseline)
    default_cap: Number = Field(default=1.2, gt=0)
    goals: list[Goal] = Field(min_length=1)

    @model_validator(mode="after")
    def _goal_weights(self) -> Scheme:
        total = sum(goal.weight for goal in self.goals)
        if not math.isclose(total, 1.0, abs_tol=_WEIGHT_TOLERANCE):
            raise ValueError(f"goal weights sum to {total:g}, not 1")
        keys = [kpi.key for goal in self.goals for kpi in goal.kpis]
        doubles = sorted({key for key in keys if keys.count(key) > 1})
        if doubles:
            raise ValueError(f"KPI ids must be unique; repeated: {doubles} (give each an id)")
        return self

    def with_hour_cost(self, cost: float | None) -> Scheme:
        """The scheme with another technical hour cost (unchanged when `cost` is None)."""
        return self if cost is None else self.model_copy(update={"technical_hour_cost": cost})

    def weighted_kpis(self) -> list[tuple[Goal, Kpi, float]]:
        """Every KPI with its goal and its weight in the whole scheme."""
        return [(goal, kpi, goal.kpi_weight(kpi)) for goal in self.goals for kpi in goal.kpis]

    def settings(
        self, period: pd.Period, params: Mapping[str, float] | None = None
    ) -> MetricSettings:
        """The indicator settings of a period, with a KPI's own parameters where given."""
        defaults = {
            name: value
            for goal in self.goals
            for kpi in goal.kpis
            for name, value in kpi.params.items()
        }
        return MetricSettings(
            technical_hour_cost=self.technical_hour_cost,
            baseline=self.baseline.months_for(period),
            **{**defaults, **(params or {})},
        )


class RunParams(_Strict):
    """Parameters of one department's report run (``params/base.yaml`` and its overrides).

    Values from ``--set`` arrive as text and are converted to the key's type here: ``6`` for a
    number of months is 6, ``six`` or ``1); import os`` is refused naming the key.
    """

    scheme: str = "schemes/sales_funnel.yaml"
    currency: str = "RUB"
    trend_months: Whole = Field(default=12, ge=2, le=60)
    link_months: Whole = Field(default=12, ge=6, le=36)
    technical_hour_cost: Number | None = Field(default=None, ge=0)
    department_name: str | None = None


def _describe(error: ValidationError, source: str) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"- {source}: {key}: {item['msg']}")
    return "\n".join(lines)


def validate_report_parameters(model: type[_Model], parameters: Mapping[str, Any]) -> _Model:
    """A notebook's parameters validated by its model.

    Raises:
        ParamsError: Listing every invalid or unknown parameter.
    """
    try:
        return model.model_validate(dict(parameters))
    except ValidationError as error:
        lines = [f"- {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()]
        raise ParamsError("Report parameters are invalid:\n" + "\n".join(lines)) from None


def load_report_inputs(
    data: str, scheme: str, technical_hour_cost: float | None, mapping: str = ""
) -> tuple[CRM, Path, Scheme]:
    """A report's validated data source and scheme (with the run's hour cost), paths as given.

    Relative paths start at the kit's folder (`kpilib.paths.resolve`); `data` is any source
    `kpilib.sources.open_source` reads, through `mapping` when one is given.

    Returns:
        The data source, the scheme file's path and the scheme.
    """
    from kpilib.sources import open_source  # the sources read parameters' files too

    crm = open_source(data, mapping or None)
    scheme_file = paths.resolve(scheme)
    return crm, scheme_file, load_scheme(scheme_file).with_hour_cost(technical_hour_cost)


def load_scheme(path: Path) -> Scheme:
    """Read and validate a KPI scheme file.

    Raises:
        ParamsError: Naming the file and every offending key.
    """
    try:
        return Scheme.model_validate(read_yaml(path))
    except ValidationError as error:
        raise ParamsError(f"KPI scheme {path} is invalid:\n{_describe(error, str(path))}") from None


def parse_overrides(pairs: Sequence[str]) -> dict[str, str]:
    """``key=value`` strings from the command line as a mapping (values stay text).

    The key is split at the first ``=`` and stripped of surrounding spaces; it must be a name
    (ASCII letters, digits and underscores, not starting with a digit, not a Python keyword).
    Whether the key is a known parameter and the value fits its type is checked by
    `load_run_params`.

    Raises:
        ParamsError: A pair has no ``=``, an empty key or a key that is not a name.
    """
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ParamsError(f"--set {pair!r} must look like key=value.")
        if not _NAME.fullmatch(key) or keyword.iskeyword(key):
            raise ParamsError(
                f"--set {pair!r}: {key!r} is not a parameter name (ASCII letters, digits and "
                "underscores, not starting with a digit)."
            )
        overrides[key] = value
    return overrides


def department_params_path(params_dir: Path, department_id: str) -> Path:
    """Where a department's own parameters live."""
    return params_dir / "departments" / f"{department_id}.yaml"


def load_run_params(
    params_dir: Path, department_id: str | None = None, overrides: Mapping[str, Any] | None = None
) -> RunParams:
    """Merge base, department and command-line parameters and validate them.

    Raises:
        ParamsError: Naming the file (or ``--set``) and key of every problem.
    """
    layers: list[tuple[str, Mapping[str, Any]]] = []
    base = params_dir / "base.yaml"
    if base.exists():
        layers.append((str(base), read_yaml(base)))
    if department_id is not None:
        own = department_params_path(params_dir, department_id)
        if own.exists():
            layers.append((str(own), read_yaml(own)))
    layers.append(("--set", dict(overrides or {})))
    for source, layer in layers:
        try:
            RunParams.model_validate(layer)
        except ValidationError as error:
            raise ParamsError(f"Parameters are invalid:\n{_describe(error, source)}") from None
    merged: dict[str, Any] = {}
    for _, layer in layers:
        merged.update(layer)
    return RunParams.model_validate(merged)


def scheme_path(params_dir: Path, run: RunParams) -> Path:
    """The scheme file a run uses; relative paths are relative to the params folder."""
    path = Path(run.scheme)
    return path if path.is_absolute() else params_dir / path


def effective_scheme(params_dir: Path, run: RunParams) -> Scheme:
    """The run's scheme, with the run's hourly cost where it overrides the scheme's."""
    scheme = load_scheme(scheme_path(params_dir, run))
    return scheme.with_hour_cost(run.technical_hour_cost)
