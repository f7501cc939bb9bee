"""The CRM data contract: one pandera model per table, and the validated bundle `CRM`.

Every model coerces its columns to the contract's types; a value that cannot be coerced is a
validation failure, never a silent NaN. Identifiers are strings, so codes such as ``007`` or ``NO``
stay exactly what they are. Only ``managers`` and ``deals`` are required tables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

STAGES = ("open", "won", "lost")
SALE_TYPES = ("new", "repeat", "upsell", "cross_sell", "subscription")
DEPARTMENT_KINDS = ("sales", "service")
DEFAULT_TIER = "regular"


def _not_before(later: pd.Series, earlier: pd.Series) -> pd.Series:
    """Row-wise ``later >= earlier``; rows where either is missing or unreadable pass.

    An unreadable date is already reported as a conversion failure of its own column; reading
    both sides leniently here keeps the order rule checked on every other row.
    """
    later = pd.to_datetime(later, errors="coerce", format="mixed")
    earlier = pd.to_datetime(earlier, errors="coerce", format="mixed")
    return later.isna() | earlier.isna() | (later >= earlier)


FINITE_RULE = "must be a finite number"


def _finite(values: pd.Series) -> pd.Series:
    """Whether each number is finite: "inf", "-Infinity" or "1e400" read as numbers but are not
    amounts a report can add up (pandera leaves missing values out before asking)."""
    return pd.Series(np.isfinite(values.to_numpy(dtype="float64")), index=values.index)


class _Contract(pa.DataFrameModel):
    class Config:
        coerce = True
        strict = False  # extra columns of a CRM export are kept, untouched


class Departments(_Contract):
    department_id: Series[str] = pa.Field(unique=True)
    name: Optional[Series[str]] = pa.Field(nullable=True)
    kind: Optional[Series[str]] = pa.Field(nullable=True, isin=list(DEPARTMENT_KINDS))
    kpi_since: Optional[Series[pd.Timestamp]] = pa.Field(nullable=True)


class Managers(_Contract):
    manager_id: Series[str] = pa.Field(unique=True)
    department_id: Series[str]
    name: Optional[Series[str]] = pa.Field(nullable=True)
    tier: Optional[Series[str]] = pa.Field(nullable=True)
    hired_on: Optional[Series[pd.Timestamp]] = pa.Field(nullable=True)
    left_on: Optional[Series[pd.Timestamp]] = pa.Field(nullable=True)


class Clients(_Contract):
    client_id: Series[str] = pa.Field(unique=True)
    name: Optional[Series[str]] = pa.Field(nullable=True)
    segment: Optional[Series[str]] = pa.Field(nullable=True)


class Products(_Contract):
    product_id: Series[str] = pa.Field(unique=True)
    name: Optional[Series[str]] = pa.Field(nullable=True)
    category: Optional[Series[str]] = pa.Field(nullable=True)


class Deals(_Contract):
    deal_id: Series[str] = pa.Field(unique=True)
    manager_id: Series[str]
    stage: Series[str] = pa.Field(isin=list(STAGES))
    created_on: Series[pd.Timestamp]
    closed_on: Optional[Series[pd.Timestamp]] = pa.Field(nullable=True)
    amount: Series[float] = pa.Field(ge=0)
    client_id: Optional[Series[str]] = pa.Field(nullable=True)
    product_id: Optional[Series[str]] = pa.Field(nullable=True)
    cost_price: Optional[Series[float]] = pa.Field(ge=0, nullable=True)
    extra_hours: Optional[Series[float]] = pa.Field(ge=0, nullable=True)
    sale_type: Optional[Series[str]] = pa.Field(nullable=True, isin=list(SALE_TYPES))
    lead_id: Optional[Series[str]] = pa.Field(nullable=True)

    @pa.check("amount", "cost_price", "extra_hours", name="finite", error=FINITE_RULE)
    def finite(cls, values: Series[float]) -> Series[bool]:
        return _finite(values)

    @pa.dataframe_check(error="closed_on is required for won and lost deals")
    def closed_deals_have_close_date(cls, df: pd.DataFrame) -> Series[bool]:
        if "closed_on" not in df:
            return df["stage"] == "open"
        return (df["stage"] == "open") | df["closed_on"].notna()

    @pa.dataframe_check(error="closed_on must not be before created_on")
    def closed_after_created(cls, df: pd.DataFrame) -> Series[bool]:
        if "closed_on" not in df:
            return pd.Series(True, index=df.index)
        return _not_before(df["closed_on"], df["created_on"])


class Deliveries(_Contract):
    deal_id: Series[str]
    promised_on: Series[pd.Timestamp]
    delivered_on: Optional[Series[pd.Timestamp]] = pa.Field(nullable=True)
    department_id: Optional[Series[str]] = pa.Field(nullable=True)


class Requests(_Contract):
    request_id: Series[str] = pa.Field(unique=True)
    received_at: Series[pd.Timestamp]
    first_response_at: Optional[Series[pd.Timestamp]] = pa.Field(nullable=True)
    client_id: Optional[Series[str]] = pa.Field(nullable=True)
    manager_id: Optional[Series[str]] = pa.Field(nullable=True)
    department_id: Optional[Series[str]] = pa.Field(nullable=True)

    @pa.dataframe_check(error="first_response_at must not be before received_at")
    def response_after_receipt(cls, df: pd.DataFrame) -> Series[bool]:
        if "first_response_at" not in df:
            return pd.Series(True, index=df.index)
        return _not_before(df["first_response_at"], df["received_at"])


class Leads(_Contract):
    lead_id: Series[str] = pa.Field(unique=True)
    created_on: Series[pd.Timestamp]
    channel: Optional[Series[str]] = pa.Field(nullable=True)
    manager_id: Optional[Series[str]] = pa.Field(nullable=True)
    cost: Optional[Series[float]] = pa.Field(ge=0, nullable=True)

    @pa.check("cost", name="finite", error=FINITE_RULE)
    def finite(cls, values: Series[float]) -> Series[bool]:
        return _finite(values)


class Plans(_Contract):
    period: Series[str] = pa.Field(str_matches=r"^\d{4}-(0[1-9]|1[0-2])$")
    metric: Series[str]
    target: Series[float]
    manager_id: Optional[Series[str]] = pa.Field(nullable=True)
    department_id: Optional[Series[str]] = pa.Field(nullable=True)

    @pa.check("target", name="finite", error=FINITE_RULE)
    def finite(cls, values: Series[float]) -> Series[bool]:
        return _finite(values)

    @pa.dataframe_check(error="exactly one of manager_id and department_id must be set")
    def one_owner(cls, df: pd.DataFrame) -> Series[bool]:
        manager = df["manager_id"].notna() if "manager_id" in df else False
        department = df["department_id"].notna() if "department_id" in df else False
        return pd.Series(manager ^ department, index=df.index)


MODELS: dict[str, type[_Contract]] = {
    "departments": Departments,
    "managers": Managers,
    "clients": Clients,
    "products": Products,
    "deals": Deals,
    "deliveries": Deliveries,
    "requests": Requests,
    "leads": Leads,
    "plans": Plans,
}
REQUIRED_TABLES = ("managers", "deals")
OPTIONAL_TABLES = tuple(name for name in MODELS if name not in REQUIRED_TABLES)

# (table, column) -> (referenced table, referenced column): checked when both tables are present.
FOREIGN_KEYS: dict[tuple[str, str], tuple[str, str]] = {
    ("managers", "department_id"): ("departments", "department_id"),
    ("deals", "manager_id"): ("managers", "manager_id"),
    ("deals", "client_id"): ("clients", "client_id"),
    ("deals", "product_id"): ("products", "product_id"),
    ("deals", "lead_id"): ("leads", "lead_id"),
    ("deliveries", "deal_id"): ("deals", "deal_id"),
    ("deliveries", "department_id"): ("departments", "department_id"),
    ("requests", "client_id"): ("clients", "client_id"),
    ("requests", "manager_id"): ("managers", "manager_id"),
    ("requests", "department_id"): ("departments", "department_id"),
    ("leads", "manager_id"): ("managers", "manager_id"),
    ("plans", "manager_id"): ("managers", "manager_id"),
    ("plans", "department_id"): ("departments", "department_id"),
}


def first_won_deals(deals: pd.DataFrame) -> pd.DataFrame:
    """Each client's first won deal (earliest close; ties broken by deal id): what makes it new."""
    if "client_id" not in deals or "closed_on" not in deals:
        return deals.iloc[0:0]
    won = deals.loc[deals["stage"].eq("won") & deals["client_id"].notna()]
    return won.sort_values(["closed_on", "deal_id"]).drop_duplicates("client_id")


def contract_columns(table: str) -> list[str]:
    """The contract's column names of a table, in contract order."""
    return list(MODELS[table].to_schema().columns)


def date_columns(table: str) -> list[str]:
    """The contract's date (and timestamp) columns of a table, in contract order."""
    columns = MODELS[table].to_schema().columns
    return [name for name, column in columns.items() if "datetime" in str(column.dtype)]


@dataclass(frozen=True)
class CRM:
    """A validated data source: the contract's tables, ``None`` where a table is absent.

    Attributes:
        managers: Validated managers, ``tier`` filled with the contract default.
        deals: Validated deals, ``sale_type`` derived where the source left it empty.
        fingerprint: A digest of the source files, recorded in every report's provenance.
        source: Where the data came from, for people.

    The tables are read-only by convention: values derived from them once (the deals with their
    departments, the months the data covers) are kept by `derived` for every later call.
    """

    managers: pd.DataFrame
    deals: pd.DataFrame
    departments: pd.DataFrame | None = None
    clients: pd.DataFrame | None = None
    products: pd.DataFrame | None = None
    deliveries: pd.DataFrame | None = None
    requests: pd.DataFrame | None = None
    leads: pd.DataFrame | None = None
    plans: pd.DataFrame | None = None
    fingerprint: str = ""
    source: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)
    _derived: dict[str, Any] = field(default_factory=dict, init=False, compare=False, repr=False)

    def derived(self, key: str, compute: Callable[[], Any]) -> Any:
        """A value derived from the tables, computed on first use and kept."""
        if key not in self._derived:
            self._derived[key] = compute()
        return self._derived[key]

    def kept(self, key: str) -> Any:
        """The value `derived` or `keep` holds under `key`, or None: never computes it."""
        return self._derived.get(key)

    def keep(self, key: str, value: Any) -> None:
        """Keep a value derived from the tables under `key`, for later `kept` calls."""
        self._derived[key] = value

    def has(self, table: str) -> bool:
        """Whether the source holds `table` (an absent table means "no data", not zero)."""
        return getattr(self, table) is not None

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables the source holds, by name, in the contract's order (absent ones left out)."""
        return {name: getattr(self, name) for name in MODELS if self.has(name)}
