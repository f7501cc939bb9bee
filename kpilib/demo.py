"""Deterministic demo CRM data with known, planted effects.

``generate(DemoConfig())`` returns every table of the CRM data contract (DESIGN.md) as DataFrames
keyed by table name; the same config always gives identical tables. ``ground_truth(config)`` returns
the ids, months and sizes of the effects planted in them, which the analytics' tests must find:

1. **Seasonality**: the number of deals closing in a month (won and lost alike) is scaled by
   ``SEASONALITY[calendar month]``: January 0.75 and August 0.78 are the lows, March 1.18 and
   December 1.24 the peaks; the twelve factors average 1.0.
2. **Stars**: one ``star`` manager in every sales department (two in ``south``) wins
   ``STAR_WON_FACTOR`` = 1.35x the deals of a regular and sells ``STAR_AMOUNT_FACTOR`` = 1.3x larger
   amounts, so a star's revenue is about 1.75x a regular's.
3. **High revenue, low profit**: in ``north`` the regular "Vasily Orlov" and his peer, the regular
   "Valery Smirnov", have the same deals (dates, stages, products; amounts within about 3% each,
   totals within about 1%), so their revenue matches in every month. Each of Vasily's won deals
   takes technical hours worth 20-30% of its amount at ``HOURLY_COST`` = 1,500 RUB/h
   (``HIGH_HOURS_COST_SHARE``; about 65 hours per 400,000 RUB, 165 per 1,000,000), other
   managers' deals 0-8 hours and Valery's none. So Vasily's net profit (revenue - cost_price -
   1,500 * extra_hours) is about 25% of revenue lower than Valery's in every month, roughly 60%
   lower in total (as in the design card: 100,000 against 250,000 RUB on equal revenue).
4. **A slipping service department**: ``logistics`` delivers on time 97% of the time and fulfils an
   order in about 3 days, except for deliveries promised in the three months ending two months
   before ``end`` (2026-06 to 2026-08 by default): on-time share 75% and about 5 days' fulfilment.
   It recovers afterwards.
5. **A KPI pilot with a real uplift**: ``east`` runs the KPI system from ``kpi_since`` = the first
   of the month 11 months before ``end`` (2025-11-01 by default; the last 12 months). From that
   month on its managers win ``PILOT_UPLIFT`` = 1.15x as many deals (lost deals unchanged), so its
   revenue rises by about 15% against the other departments, which have no ``kpi_since`` and no
   uplift.

Other properties: deals close 5-60 days after creation (so deals closing in the first month were
created up to 60 days before it, and so were their leads), win rate is about 40%, deals still open
at ``end`` are those created in its last two months; a new client's first won deal is ``new`` and
usually large (about one contract of at least 1,500,000 RUB per manager and month), so the clients
table holds a couple of thousand companies. In ``west`` one regular leaves a third of the way in and
a replacement is hired the next day. Monthly department revenue plans are 4% above the mean of the
season-adjusted pre-pilot average and the previous year's actual for the same month, so departments
without the pilot land at about 92-97% of plan and ``east`` above it once the pilot runs; plans
run ``PLAN_AHEAD`` = 3 months past ``end``.

6. **A KPI with a lagged link to results**: in ``SLOW_RESPONSE_SHARE`` = 30% of manager-months,
   drawn independently, a manager's clients wait ``SLOW_RESPONSE_FACTOR`` = 3x as long for a first
   response (about 10.5 hours instead of 3.5, so the 8-hour response KPI is missed). The month after
   such a month the manager's won deals with existing clients are worth ``SLOW_RESPONSE_LOSS`` =
   35% less (amount, cost price and technical hours alike; deal counts and dates unchanged). The
   response KPI therefore leads existing-client revenue and net profit by one month
   (``RESPONSE_LAG``) and has no link to the same month's results. Valery's slow months are
   Vasily's, so their revenue still matches.
7. **KPIs without a link to results**: delivery timeliness is drawn independently of everything a
   manager does (the logistics slip hits every department alike), so meeting the on-time delivery
   and fulfilment KPIs does not raise a manager's revenue or profit in the same or a later month.

For data at scale, ``DemoConfig.deal_rate`` multiplies every manager's deals per month (won, lost
and open alike; 1.0 gives the figures above, about 12 per manager and month): 315 gives about ten
million deals over 12 departments and 30 months. The planted effects keep their sizes; clients,
leads, deliveries and requests grow with the deals.
"""

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kpilib.errors import ParamsError

__all__ = ["SEASONALITY", "DemoConfig", "GroundTruth", "generate", "ground_truth"]

SEASONALITY: dict[int, float] = {
    1: 0.75, 2: 0.92, 3: 1.18, 4: 1.05, 5: 0.95, 6: 1.00,
    7: 0.90, 8: 0.78, 9: 1.05, 10: 1.08, 11: 1.10, 12: 1.24,
}  # fmt: skip
STAR_WON_FACTOR = 1.35
STAR_AMOUNT_FACTOR = 1.3
PILOT_UPLIFT = 1.15
HOURLY_COST = 1_500.0  # the design card's cost of a technical staff hour, RUB
HIGH_HOURS_COST_SHARE = (0.2, 0.3)  # Vasily's extra-hour cost as a share of a won deal's amount
ON_TIME_NORMAL, ON_TIME_SLIP = 0.97, 0.75
PLAN_AHEAD = 3  # months of plans past the last month with data
SLOW_RESPONSE_SHARE = 0.3  # manager-months in which clients wait long for answers
SLOW_RESPONSE_FACTOR = 3.0  # how much longer they wait in such a month
SLOW_RESPONSE_LOSS = 0.35  # existing-client deal value lost the month after
RESPONSE_LAG = 1  # months from slow answers to lost repeat business
UNLINKED_KPIS = ("on_time_delivery", "fulfilment_days")  # metrics drawn without a link to results
# Expected days from closing to delivery: promises fall 2-5 days after closing (3.5 on average);
# normally orders arrive on the promised day or the day before and late ones 1-4 days after it;
# in the slip on-time orders arrive on the promised day and late ones 2-10 days after it.
FULFILMENT_DAYS_NORMAL, FULFILMENT_DAYS_SLIP = 3.1, 5.0
PILOT_DEPARTMENT, SLIP_DEPARTMENT, SUPPORT_DEPARTMENT = "east", "logistics", "support"

_SALES_IDS = ("north", "south", "east", "west")
_WON_RATE, _LOST_RATE = 4.5, 7.5  # deals per regular manager and month at seasonal factor 1
_NEW_SHARE = {"won": 0.38, "lost": 0.55, "open": 0.45}  # deals aimed at a new client
_SEGMENTS, _SEGMENT_P, _SEGMENT_MULT = (
    ("SMB", "Mid-market", "Enterprise"),
    (0.5, 0.35, 0.15),
    (0.6, 1.0, 1.9),
)
_PRODUCTS = (  # name, category, typical amount (RUB), cost share, popularity
    ("CRM licence", "Software", 800_000, 0.42, 0.18),
    ("Analytics module", "Software", 500_000, 0.40, 0.12),
    ("Server rack", "Hardware", 1_400_000, 0.68, 0.10),
    ("Network kit", "Hardware", 900_000, 0.65, 0.14),
    ("POS terminals", "Hardware", 600_000, 0.62, 0.12),
    ("Implementation project", "Services", 1_100_000, 0.55, 0.14),
    ("Support contract", "Services", 450_000, 0.50, 0.12),
    ("Training programme", "Services", 350_000, 0.45, 0.08),
)
_TYPE_MULT = {"new": 2.6, "repeat": 1.0, "upsell": 0.8, "cross_sell": 0.9, "subscription": 0.7}
_EXISTING_TYPES, _EXISTING_P = (
    ("repeat", "upsell", "cross_sell", "subscription"),
    (0.4, 0.25, 0.2, 0.15),
)
_CHANNELS = ("web", "referral", "cold_call", "event", "partner")
_CHANNEL_COST = np.array([2_500.0, 1_000.0, 1_800.0, 9_000.0, 6_000.0])
_CONVERTED_P, _UNCONVERTED_P = (0.3, 0.25, 0.15, 0.12, 0.18), (0.45, 0.08, 0.3, 0.1, 0.07)
_PROSPECTS = 300  # companies that only ever have lost or open deals
# fmt: off
_FIRST = (
    "Alexei", "Dmitry", "Sergei", "Andrei", "Ivan", "Mikhail", "Nikolai", "Pavel", "Oleg",
    "Igor", "Roman", "Maxim", "Olga", "Elena", "Natalia", "Anna", "Maria", "Irina", "Tatiana",
    "Svetlana", "Ekaterina", "Yulia",
)
_LAST = (
    "Ivanov", "Petrov", "Sidorov", "Kuznetsov", "Popov", "Volkov", "Lebedev", "Kozlov",
    "Morozov", "Novikov", "Fedorov", "Belov", "Egorov", "Pavlov", "Semenov", "Golubev",
)
_COMPANY_A = (
    "Volga", "Ural", "Baikal", "Neva", "Amur", "Sever", "Yug", "Vostok", "Zapad", "Kama", "Oka",
    "Don", "Altai", "Sibir", "Taiga", "Kristall", "Avangard", "Progress", "Zenit", "Vector",
    "Meridian", "Polyus", "Orion", "Atlant", "Rubin", "Granit", "Start", "Kvant", "Sfera",
    "Impuls", "Signal", "Forum", "Alfa", "Omega", "Delta", "Vega",
)
_COMPANY_B = (
    "Steel", "Foods", "Logistics", "Retail", "Pharma", "Energy", "Agro", "Textile", "Motors",
    "Telecom", "Build", "Chemicals", "Paper", "Glass", "Trade", "Media", "Systems", "Invest",
    "Dairy", "Timber", "Metals", "Plast", "Service", "Tech",
)
# fmt: on
_FORMS = ("LLC", "JSC")
_DEAL_COLUMNS = [
    "deal_id", "manager_id", "stage", "created_on", "closed_on", "amount", "client_id",
    "product_id", "cost_price", "extra_hours", "sale_type", "lead_id",
]  # fmt: skip


@dataclass(frozen=True)
class DemoConfig:
    """What to generate; validated on creation (raises ``ParamsError``)."""

    seed: int = 42
    end: str = "2026-10"  # last month with data (YYYY-MM); data covers `months` months ending there
    months: int = 30  # at least 24: 12 before the pilot and 12 in it
    sales_departments: int = 4  # at least 4
    managers_per_department: int = 7  # at least 6
    deal_rate: float = 1.0  # factor on every manager's deals per month (> 0; 1.0 = about 12)

    def __post_init__(self) -> None:
        problems = [
            "end must be YYYY-MM" if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", self.end) else "",
            "months must be at least 24" if self.months < 24 else "",
            "sales_departments must be at least 4" if self.sales_departments < 4 else "",
            "managers_per_department must be at least 6"
            if self.managers_per_department < 6
            else "",
            "deal_rate must be a finite number above 0"
            if not (isinstance(self.deal_rate, int | float) and 0 < self.deal_rate < math.inf)
            else "",
        ]
        if any(problems):
            raise ParamsError(f"DemoConfig: {'; '.join(p for p in problems if p)}")


@dataclass(frozen=True)
class GroundTruth:
    """The effects planted by ``generate`` (sizes are the generator's factors; see module doc)."""

    star_manager_ids: tuple[str, ...]
    star_revenue_factor: float  # star revenue / regular revenue, expected
    high_hours_manager_id: str  # Vasily: same revenue as his peer, far lower net profit
    revenue_peer_id: str  # Valery: same department and tier, no extra hours
    high_hours_cost_share: tuple[float, float]  # his extra hours * hourly_cost / amount
    hourly_cost: float
    slipping_department_id: str
    slip_months: tuple[str, ...]  # months (YYYY-MM) of promised_on with the slip
    on_time_share_normal: float
    on_time_share_slip: float
    fulfilment_days_normal: float  # mean days from closed_on to delivered_on
    fulfilment_days_slip: float
    pilot_department_id: str
    pilot_start: pd.Timestamp  # the pilot department's kpi_since
    pilot_uplift: float  # factor on won deals from pilot_start on
    seasonality: tuple[float, ...]  # factor for January ... December
    lagged_link_metric: str  # the KPI metric that leads results
    lagged_link_lag: int  # by this many months
    lagged_link_loss: float  # share of existing-client deal value lost after a missed month
    slow_response_months: frozenset[tuple[str, str]]  # (manager_id, YYYY-MM) with slow answers
    unlinked_metrics: tuple[str, ...]  # KPI metrics planted without a link to results


def generate(config: DemoConfig = DemoConfig()) -> dict[str, pd.DataFrame]:
    """Generate the demo CRM.

    Args:
        config: Seed, period and size of the company.

    Returns:
        The tables of the data contract keyed by table name (``departments``, ``managers``,
        ``clients``, ``products``, ``deals``, ``deliveries``, ``requests``, ``leads``, ``plans``).
    """
    roster_rng, rng = _rngs(config)
    roster = _roster(config, roster_rng)
    last_day = _day(config.end, end=True)
    deals, unborn = _skeleton(config, roster, rng)
    deals, segments = _assign_clients(deals, rng)
    deals = _price(deals, segments, roster, rng)
    deals, segments = _mirror_peer(deals, segments, roster, rng)
    slow = _slow_months(config, roster, _rngs(config, 4)[3])
    deals = _identify(_lose_repeat_business(deals, slow, config), roster)
    early = _early_leads(unborn, roster, last_day, _rngs(config, 3)[2])
    leads, lead_of_deal = _leads(deals, last_day, rng, early)
    won = deals[deals["stage"].eq("won")]
    return {
        "departments": _departments(config),
        "managers": roster.drop(columns="role"),
        "clients": _clients(segments, rng),
        "products": _products(),
        "deals": _deals_table(deals, lead_of_deal),
        "deliveries": _deliveries(won, config, rng),
        "requests": _requests(won, last_day, rng, slow, config),
        "leads": leads,
        "plans": _plans(deals, config),
    }


def ground_truth(config: DemoConfig = DemoConfig()) -> GroundTruth:
    """The effects planted by ``generate(config)``.

    Args:
        config: The same config as given to ``generate``.

    Returns:
        The ids, months and sizes of the planted effects (see the module docstring).
    """
    roster = _roster(config, _rngs(config)[0])
    slow = _slow_months(config, roster, _rngs(config, 4)[3])
    rows, columns = np.nonzero(slow)
    months = _window(config).strftime("%Y-%m")
    return GroundTruth(
        star_manager_ids=tuple(roster.loc[roster["tier"].eq("star"), "manager_id"]),
        star_revenue_factor=round(STAR_WON_FACTOR * STAR_AMOUNT_FACTOR, 3),
        high_hours_manager_id=roster.loc[roster["role"].eq("vasily"), "manager_id"].item(),
        revenue_peer_id=roster.loc[roster["role"].eq("valery"), "manager_id"].item(),
        high_hours_cost_share=HIGH_HOURS_COST_SHARE,
        hourly_cost=HOURLY_COST,
        slipping_department_id=SLIP_DEPARTMENT,
        slip_months=tuple(_slip_months(config)),
        on_time_share_normal=ON_TIME_NORMAL,
        on_time_share_slip=ON_TIME_SLIP,
        fulfilment_days_normal=FULFILMENT_DAYS_NORMAL,
        fulfilment_days_slip=FULFILMENT_DAYS_SLIP,
        pilot_department_id=PILOT_DEPARTMENT,
        pilot_start=_kpi_since(config),
        pilot_uplift=PILOT_UPLIFT,
        seasonality=tuple(SEASONALITY[m] for m in range(1, 13)),
        lagged_link_metric="response_hours",
        lagged_link_lag=RESPONSE_LAG,
        lagged_link_loss=SLOW_RESPONSE_LOSS,
        slow_response_months=frozenset(
            zip(roster["manager_id"].to_numpy()[rows], months[columns], strict=True)
        ),
        unlinked_metrics=UNLINKED_KPIS,
    )


def _rngs(config: DemoConfig, streams: int = 2) -> list[np.random.Generator]:
    # roster stream, data stream, the stream of leads whose deals come after the data, and the
    # stream of slow-response months (a spawned stream does not depend on how many are spawned)
    return np.random.default_rng(config.seed).spawn(streams)


def _window(config: DemoConfig) -> pd.PeriodIndex:
    return pd.period_range(end=pd.Period(config.end, "M"), periods=config.months, freq="M")


def _kpi_since(config: DemoConfig) -> pd.Timestamp:
    return (pd.Period(config.end, "M") - 11).start_time


def _slip_months(config: DemoConfig) -> list[str]:
    return [str(pd.Period(config.end, "M") - k) for k in (4, 3, 2)]


def _day(month: str, end: bool = False) -> int:
    """Day number (days since 1970-01-01) of a month's first or last day."""
    period = pd.Period(month, "M")
    stamp = period.end_time if end else period.start_time
    return int(np.datetime64(stamp.date(), "D").astype(np.int64))


def _dates(days: np.ndarray | pd.Series) -> np.ndarray:
    """Day numbers (NaN = missing) as datetime64 dates."""
    days = np.asarray(days, dtype=float)
    out = np.where(np.isnan(days), 0, days).astype("datetime64[D]").astype("datetime64[us]")
    return np.where(np.isnan(days), np.datetime64("NaT"), out)


def _sales_ids(n: int) -> list[str]:
    return [*_SALES_IDS, *(f"sales{i}" for i in range(5, n + 1))]


def _roster(config: DemoConfig, rng: np.random.Generator) -> pd.DataFrame:
    """Managers with an internal ``role``: star, vasily, valery, leaver, hire or empty."""
    size = config.managers_per_department
    departments, roles = [], []
    for dept in _sales_ids(config.sales_departments):
        role = np.full(size, "", dtype=object)
        perm = rng.permutation(size)
        role[perm[0]] = "star"
        special = {"south": ["star"], "north": ["vasily", "valery"], "west": ["leaver"]}
        for i, name in enumerate(special.get(dept, []), start=1):
            role[perm[i]] = name
        departments += [dept] * size
        roles += list(role)
    departments.append("west")
    roles.append("hire")
    combos = rng.choice(len(_FIRST) * len(_LAST), size=len(roles), replace=False)
    names = [_person(_FIRST[c // len(_LAST)], _LAST[c % len(_LAST)]) for c in combos]
    names = [
        {"vasily": "Vasily Orlov", "valery": "Valery Smirnov"}.get(r, n)
        for r, n in zip(roles, names, strict=True)
    ]
    start = _day(str(_window(config)[0]))
    change = _day(str(_window(config)[config.months // 3]))  # the leaver's successor starts here
    hired = start - rng.integers(60, 2500, len(roles)).astype(float)
    hired[-1] = change
    left = np.where(np.array(roles) == "leaver", change - 1.0, np.nan)
    return pd.DataFrame(
        {
            "manager_id": [f"M{i:03d}" for i in range(1, len(roles) + 1)],
            "department_id": departments,
            "name": names,
            "tier": ["star" if r == "star" else "regular" for r in roles],
            "hired_on": _dates(hired),
            "left_on": _dates(left),
            "role": roles,
        }
    )


def _person(first: str, last: str) -> str:
    female = first.endswith("a")  # true of exactly the women's names in _FIRST
    return f"{first} {last}{'a' if female else ''}"


def _skeleton(
    config: DemoConfig, roster: pd.DataFrame, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Deals by manager: stage, closing and creation day, and whether they aim at a new client.

    Returns:
        The deals created up to ``end``, and those created after it (not in the data; their
        leads, created before ``end``, are).
    """
    months = pd.period_range(_window(config)[0], periods=config.months + 2, freq="M")
    first = np.array([_day(str(m)) for m in months])
    season = np.array([SEASONALITY[m] for m in months.month])
    future = np.arange(len(months)) >= config.months  # deals closing there are still open
    star = np.where(roster["tier"].eq("star"), STAR_WON_FACTOR, 1.0)[:, None]
    pilot = roster["department_id"].eq(PILOT_DEPARTMENT).to_numpy()[:, None] & np.asarray(
        months.start_time >= _kpi_since(config)
    )
    won = _WON_RATE * config.deal_rate * season * star * np.where(pilot, PILOT_UPLIFT, 1.0)
    lost = _LOST_RATE * config.deal_rate * season * np.ones_like(star)
    parts = []
    for stage, rate in (
        ("won", won * ~future),
        ("lost", lost * ~future),
        ("open", (won + lost) * future),
    ):
        cell = np.repeat(np.arange(rate.size), rng.poisson(rate).ravel())
        manager, month = np.divmod(cell, len(months))
        closed = first[month] + np.floor(rng.random(cell.size) * months.days_in_month[month])
        cycle = np.clip(np.rint(rng.lognormal(np.log(24), 0.55, cell.size)), 5, 60)
        new = rng.random(cell.size) < _NEW_SHARE[stage]
        parts.append(
            pd.DataFrame(
                {
                    "manager": manager,
                    "stage": stage,
                    "closed": closed,
                    "created": closed - cycle,
                    "intent_new": new,
                }
            )
        )
    deals = pd.concat(parts, ignore_index=True)
    hired = _days_of(roster["hired_on"])[deals["manager"]]
    left = np.nan_to_num(_days_of(roster["left_on"])[deals["manager"]], nan=np.inf)
    keep = (deals["created"] >= hired) & (deals["closed"] <= left)
    inside = deals["created"] <= _day(config.end, end=True)
    return deals[keep & inside].reset_index(drop=True), deals[keep & ~inside]


def _identify(deals: pd.DataFrame, roster: pd.DataFrame) -> pd.DataFrame:
    """Order deals by creation and add the string ids and each deal's department."""
    deals = deals.sort_values(["created", "manager", "closed"], kind="stable", ignore_index=True)
    return deals.assign(
        deal_id=[f"D{i:06d}" for i in range(1, len(deals) + 1)],
        manager_id=roster["manager_id"].to_numpy()[deals["manager"]],
        department_id=roster["department_id"].to_numpy()[deals["manager"]],
        client_id=_client_ids(deals["client"]),
    )


def _days_of(dates: pd.Series) -> np.ndarray:
    days = dates.to_numpy().astype("datetime64[D]").astype(np.int64).astype(float)
    return np.where(dates.isna(), np.nan, days)


def _assign_clients(
    deals: pd.DataFrame, rng: np.random.Generator
) -> tuple[pd.DataFrame, np.ndarray]:
    """Give each deal a client and a sale type; return the deals and each client's segment index.

    Won deals aimed at a new client found a client of their manager. Deals aimed at an existing
    client pick one their manager won before the deal was created (none yet: a won deal founds a
    client, a lost or open one goes to a prospect). Other deals go to prospects, who never win.
    """
    n = len(deals)
    manager, created, closed = (deals[c].to_numpy() for c in ("manager", "created", "closed"))
    won = deals["stage"].eq("won").to_numpy()
    founding = won & deals["intent_new"].to_numpy()
    order = np.flatnonzero(founding)[np.lexsort((closed[founding], manager[founding]))]
    keys = manager[order] * 100_000 + closed[order]
    low = np.searchsorted(keys, manager * 100_000)
    known = np.searchsorted(keys, manager * 100_000 + created) - low
    existing = ~deals["intent_new"].to_numpy() & (known > 0)
    fresh = won & ~existing
    fresh_rows = np.flatnonzero(fresh)[np.argsort(closed[fresh], kind="stable")]
    client = np.zeros(n, dtype=np.int64)
    client[fresh_rows] = np.arange(fresh_rows.size)
    pick = low + np.floor(rng.random(n) * np.maximum(known, 1)).astype(np.int64)
    client[existing] = client[order[pick[existing]]]
    prospect = ~fresh & ~existing
    client[prospect] = fresh_rows.size + rng.integers(0, _PROSPECTS, prospect.sum())
    sale_type = np.where(existing, rng.choice(_EXISTING_TYPES, n, p=_EXISTING_P), "new")
    segments = rng.choice(len(_SEGMENTS), fresh_rows.size + _PROSPECTS, p=_SEGMENT_P)
    return deals.assign(client=client, sale_type=sale_type), segments


def _price(
    deals: pd.DataFrame, segments: np.ndarray, roster: pd.DataFrame, rng: np.random.Generator
) -> pd.DataFrame:
    """Add product, amount, cost_price and extra_hours."""
    n = len(deals)
    base, share, popularity = (np.array([p[k] for p in _PRODUCTS]) for k in (2, 3, 4))
    product = rng.choice(len(_PRODUCTS), n, p=popularity)
    subscription = deals["sale_type"].eq("subscription").to_numpy()
    product[subscription] = rng.choice([0, 6], subscription.sum())  # licences and support contracts
    star = roster["tier"].eq("star").to_numpy()[deals["manager"]]
    amount = (
        base[product]
        * np.array(_SEGMENT_MULT)[segments[deals["client"]]]
        * deals["sale_type"].map(_TYPE_MULT).to_numpy()
        * np.where(star, STAR_AMOUNT_FACTOR, 1.0)
        * rng.lognormal(0.0, 0.45, n)
    )
    amount = np.clip(amount, 150_000, 6_000_000).round(-3)
    cost_share = np.clip(share[product] * rng.uniform(0.95, 1.05, n), 0.4, 0.7)
    hours = rng.poisson(3.0, n) * (rng.random(n) < 0.7)
    vasily = (roster["role"].eq("vasily").to_numpy()[deals["manager"]]) & deals["stage"].eq("won")
    heavy = np.rint(amount * rng.uniform(*HIGH_HOURS_COST_SHARE, n) / HOURLY_COST)
    hours = np.where(vasily, heavy, hours).astype(float)
    return deals.assign(
        product=product,
        amount=amount,
        cost_price=(amount * cost_share).round(-2),
        extra_hours=hours,
    )


def _mirror_peer(
    deals: pd.DataFrame, segments: np.ndarray, roster: pd.DataFrame, rng: np.random.Generator
) -> tuple[pd.DataFrame, np.ndarray]:
    """Replace Valery's deals by a copy of Vasily's with twin clients and no extra hours."""
    vasily, valery = (roster.index[roster["role"].eq(r)][0] for r in ("vasily", "valery"))
    source = deals[deals["manager"].eq(vasily)]
    own = np.unique(source.loc[source["client"] < len(segments) - _PROSPECTS, "client"])
    twin = dict(zip(own, range(len(segments), len(segments) + own.size), strict=True))
    factor = rng.lognormal(0.0, 0.03, len(source))
    amount = np.clip(source["amount"] * factor, 150_000, 6_000_000).round(-3)
    copy = source.assign(
        manager=valery,
        client=source["client"].map(lambda c: twin.get(c, c)),
        amount=amount,
        cost_price=(source["cost_price"] / source["amount"] * amount).round(-2),
        extra_hours=0.0,
    )
    deals = pd.concat([deals[deals["manager"].ne(valery)], copy], ignore_index=True)
    return deals, np.concatenate([segments, segments[own]])


def _slow_months(config: DemoConfig, roster: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """Which manager-months (roster row x month of the window) have slow answers to requests."""
    slow = rng.random((len(roster), config.months)) < SLOW_RESPONSE_SHARE
    vasily, valery = (roster.index[roster["role"].eq(r)][0] for r in ("vasily", "valery"))
    slow[valery] = slow[vasily]
    return slow


def _month_index(days: np.ndarray, config: DemoConfig) -> np.ndarray:
    """Position of each day's month in the window (negative before it, >= months after it)."""
    months = np.asarray(days, dtype=np.int64).astype("datetime64[D]").astype("datetime64[M]")
    start = np.datetime64(str(_window(config)[0]), "M")
    return (months - start).astype(np.int64)


def _after_slow(manager: np.ndarray, month: np.ndarray, slow: np.ndarray) -> np.ndarray:
    """Whether the month `RESPONSE_LAG` months before each (manager, month) was slow."""
    before = month - RESPONSE_LAG
    inside = (before >= 0) & (before < slow.shape[1])
    hit = np.zeros(manager.size, dtype=bool)
    hit[inside] = slow[manager[inside], before[inside]]
    return hit


def _lose_repeat_business(
    deals: pd.DataFrame, slow: np.ndarray, config: DemoConfig
) -> pd.DataFrame:
    """Existing-client won deals closing the month after a slow month lose value."""
    won = deals["stage"].eq("won").to_numpy() & deals["sale_type"].ne("new").to_numpy()
    month = _month_index(deals["closed"].to_numpy(), config)
    hit = won & _after_slow(deals["manager"].to_numpy(), month, slow)
    factor = np.where(hit, 1.0 - SLOW_RESPONSE_LOSS, 1.0)
    amount = np.where(
        hit, np.clip(deals["amount"] * factor, 150_000, None).round(-3), deals["amount"]
    )
    kept = amount / deals["amount"].to_numpy()
    return deals.assign(
        amount=amount,
        cost_price=np.where(hit, (deals["cost_price"] * kept).round(-2), deals["cost_price"]),
        extra_hours=np.where(hit, np.rint(deals["extra_hours"] * kept), deals["extra_hours"]),
    )


def _lead_rows(
    created: np.ndarray, manager: np.ndarray, last_day: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Siblings (leads that never converted) around converted leads, and every lead's channel.

    Returns:
        Created days, managers, channels and costs: the converted leads first, then the siblings.
    """
    siblings = np.repeat(np.arange(created.size), rng.poisson(2.0, created.size))
    sib_created = np.minimum(created[siblings] + rng.integers(-15, 16, siblings.size), last_day)
    channel = np.concatenate(
        [
            rng.choice(len(_CHANNELS), created.size, p=_CONVERTED_P),
            rng.choice(len(_CHANNELS), siblings.size, p=_UNCONVERTED_P),
        ]
    )
    cost = (_CHANNEL_COST[channel] * rng.lognormal(0.0, 0.3, channel.size)).round(-1)
    return (
        np.concatenate([created, sib_created]),
        np.concatenate([manager, manager[siblings]]),
        channel,
        cost,
    )


def _early_leads(
    unborn: pd.DataFrame, roster: pd.DataFrame, last_day: int, rng: np.random.Generator
) -> pd.DataFrame:
    """Leads created up to ``end`` behind new-client deals created after it.

    A CRM export holds the leads of its last weeks whether or not their deals exist yet, so the
    lead count of the last months is as complete as any other month's.
    """
    new = unborn.loc[unborn["intent_new"].to_numpy() & (rng.random(len(unborn)) < 0.75)]
    created = new["created"].to_numpy() - rng.integers(0, 31, len(new))
    manager = roster["manager_id"].to_numpy()[new["manager"].to_numpy()]
    # Leads dated after the data are not in it (no capping at the last day, unlike siblings of
    # the data's own leads).
    no_cap = np.iinfo(np.int64).max
    created, manager, channel, cost = _lead_rows(created, manager, no_cap, rng)
    inside = created <= last_day
    return pd.DataFrame(
        {
            "created": created[inside],
            "manager": manager[inside],
            "channel": np.array(_CHANNELS)[channel[inside]],
            "cost": cost[inside],
            "deal": -1,
        }
    )


def _leads(
    deals: pd.DataFrame, last_day: int, rng: np.random.Generator, early: pd.DataFrame
) -> tuple[pd.DataFrame, np.ndarray]:
    """Leads behind most new-client deals plus the leads that never converted.

    Args:
        deals: The deals in the data.
        last_day: The data's last day.
        rng: The data stream.
        early: Leads whose deals come after the data (from `_early_leads`).

    Returns:
        The leads table and each deal's lead_id (NaN when the deal did not come from a lead).
    """
    rows = np.flatnonzero(deals["sale_type"].eq("new") & (rng.random(len(deals)) < 0.75))
    manager = deals["manager_id"].to_numpy()[rows]
    created = deals["created"].to_numpy()[rows] - rng.integers(0, 31, rows.size)
    created, managers, channel, cost = _lead_rows(created, manager, last_day, rng)
    leads = pd.concat(
        [
            pd.DataFrame(
                {
                    "created": created,
                    "manager": managers,
                    "channel": np.array(_CHANNELS)[channel],
                    "cost": cost,
                    "deal": np.concatenate([rows, np.full(created.size - rows.size, -1)]),
                }
            ),
            early,
        ],
        ignore_index=True,
    ).sort_values(["created", "manager"], kind="stable", ignore_index=True)
    lead_id = np.array([f"L{i:06d}" for i in range(1, len(leads) + 1)])
    of_deal = np.full(len(deals), np.nan, dtype=object)
    converted = leads["deal"].to_numpy() >= 0
    of_deal[leads["deal"].to_numpy()[converted]] = lead_id[converted]
    table = pd.DataFrame(
        {
            "lead_id": lead_id,
            "created_on": _dates(leads["created"]),
            "channel": leads["channel"],
            "manager_id": leads["manager"],
            "cost": leads["cost"],
        }
    )
    return table, of_deal


def _deliveries(won: pd.DataFrame, config: DemoConfig, rng: np.random.Generator) -> pd.DataFrame:
    """One delivery per won deal by logistics; late and slow when promised in the slip months."""
    n = len(won)
    lag = rng.integers(2, 6, n)
    promised = won["closed"].to_numpy() + lag
    slip_months = _slip_months(config)
    slip = (promised >= _day(slip_months[0])) & (promised <= _day(slip_months[-1], end=True))
    on_time = rng.random(n) < np.where(slip, ON_TIME_SLIP, ON_TIME_NORMAL)
    early = np.minimum(np.where(slip, 0, rng.integers(0, 2, n)), lag - 1)
    late = np.where(slip, rng.integers(2, 11, n), rng.integers(1, 5, n))
    delivered = np.where(on_time, promised - early, promised + late).astype(float)
    delivered[delivered > _day(config.end, end=True)] = np.nan  # not delivered yet
    return pd.DataFrame(
        {
            "deal_id": won["deal_id"].to_numpy(),
            "promised_on": _dates(promised),
            "delivered_on": _dates(delivered),
            "department_id": SLIP_DEPARTMENT,
        }
    )


def _requests(
    won: pd.DataFrame,
    last_day: int,
    rng: np.random.Generator,
    slow: np.ndarray,
    config: DemoConfig,
) -> pd.DataFrame:
    """Support requests from clients in the 90 days after a won deal, answered in about 4 hours.

    Requests to a manager in one of his slow months wait `SLOW_RESPONSE_FACTOR` times as long.
    """
    rows = np.repeat(np.arange(len(won)), rng.poisson(1.2, len(won)))
    day = won["closed"].to_numpy()[rows] + rng.integers(1, 91, rows.size)
    received = day * 86_400 + rng.integers(9 * 3600, 18 * 3600, rows.size)  # office hours
    wait = np.rint(rng.lognormal(np.log(3.5 * 3600), 0.45, rows.size))
    month = _month_index(day, config)
    in_slow = _after_slow(won["manager"].to_numpy()[rows], month + RESPONSE_LAG, slow)
    response = received + np.where(in_slow, np.rint(wait * SLOW_RESPONSE_FACTOR), wait)
    keep = day <= last_day
    unanswered = (rng.random(rows.size) < 0.02) | (response >= (last_day + 1) * 86_400)
    rows, received, response = rows[keep], received[keep], response[keep]
    order = np.argsort(received, kind="stable")
    answered = np.where(unanswered[keep], np.nan, response)[order]
    return pd.DataFrame(
        {
            "request_id": [f"R{i:06d}" for i in range(1, rows.size + 1)],
            "received_at": _timestamps(received[order]),
            "first_response_at": _timestamps(answered),
            "client_id": won["client_id"].to_numpy()[rows[order]],
            "manager_id": won["manager_id"].to_numpy()[rows[order]],
            "department_id": SUPPORT_DEPARTMENT,
        }
    )


def _plans(deals: pd.DataFrame, config: DemoConfig) -> pd.DataFrame:
    """Monthly revenue plans per sales department: 4% above expectation and last year's actual.

    Plans run ``PLAN_AHEAD`` months past the data, as a company's plans for the coming months do.
    """
    window = _window(config)
    planned = pd.period_range(window[0], periods=config.months + PLAN_AHEAD, freq="M")
    won = deals[deals["stage"].eq("won")]
    actual = (
        won.groupby(["department_id", _months_of(won["closed"])])["amount"]
        .sum()
        .unstack(fill_value=0.0)
        .reindex(index=_sales_ids(config.sales_departments), columns=window, fill_value=0.0)
    )
    season = np.array([SEASONALITY[m] for m in planned.month])
    before = np.asarray(window.start_time < _kpi_since(config))
    baseline = (actual.loc[:, before] / season[: len(window)][before]).mean(axis=1).to_numpy()
    expected = baseline[:, None] * season
    last_year = actual.reindex(columns=planned - 12).to_numpy()
    target = 1.04 * (expected + np.where(np.isnan(last_year), expected, last_year)) / 2
    return pd.DataFrame(
        {
            "period": np.tile(planned.strftime("%Y-%m"), len(actual)),
            "metric": "revenue",
            "target": target.round(-4).ravel(),
            "department_id": np.repeat(actual.index.to_numpy(), len(planned)),
            "manager_id": pd.Series(np.nan, index=range(target.size), dtype="str"),
        }
    )


def _months_of(days: pd.Series) -> pd.PeriodIndex:
    return pd.PeriodIndex(_dates(days), freq="M")


def _timestamps(seconds: np.ndarray) -> np.ndarray:
    seconds = np.asarray(seconds, dtype=float)
    out = np.where(np.isnan(seconds), 0, seconds).astype("datetime64[s]").astype("datetime64[us]")
    return np.where(np.isnan(seconds), np.datetime64("NaT"), out)


def _departments(config: DemoConfig) -> pd.DataFrame:
    sales = _sales_ids(config.sales_departments)
    ids = [*sales, SLIP_DEPARTMENT, SUPPORT_DEPARTMENT]
    names = [d.capitalize() if d in _SALES_IDS else f"Sales {d[5:]}" for d in sales]
    return pd.DataFrame(
        {
            "department_id": ids,
            "name": [*names, "Logistics", "Support"],
            "kind": ["sales"] * len(sales) + ["service"] * 2,
            "kpi_since": [_kpi_since(config) if d == PILOT_DEPARTMENT else pd.NaT for d in ids],
        }
    ).astype({"kpi_since": "datetime64[us]"})


def _clients(segments: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    combos = len(_COMPANY_A) * len(_COMPANY_B) * len(_FORMS)
    pick = rng.choice(combos, segments.size, replace=segments.size > combos)
    a, rest = np.divmod(pick, len(_COMPANY_B) * len(_FORMS))
    b, form = np.divmod(rest, len(_FORMS))
    return pd.DataFrame(
        {
            "client_id": _client_ids(np.arange(segments.size)),
            "name": [
                f"{_COMPANY_A[i]} {_COMPANY_B[j]} {_FORMS[k]}"
                for i, j, k in zip(a, b, form, strict=True)
            ],
            "segment": np.array(_SEGMENTS)[segments],
        }
    )


def _client_ids(index: np.ndarray) -> list[str]:
    return [f"C{i + 1:04d}" for i in index]


def _products() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "product_id": [f"P{i:02d}" for i in range(1, len(_PRODUCTS) + 1)],
            "name": [p[0] for p in _PRODUCTS],
            "category": [p[1] for p in _PRODUCTS],
        }
    )


def _deals_table(deals: pd.DataFrame, lead_id: np.ndarray) -> pd.DataFrame:
    table = deals.assign(
        created_on=_dates(deals["created"]),
        closed_on=_dates(deals["closed"].where(deals["stage"].ne("open"))),
        product_id=[f"P{p + 1:02d}" for p in deals["product"]],
        lead_id=pd.Series(lead_id, dtype="str"),
    )
    return table[_DEAL_COLUMNS]
