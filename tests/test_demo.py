"""The demo generator: contract-valid tables with the documented effects visibly planted."""

import numpy as np
import pandas as pd
import pytest

from kpilib.demo import DemoConfig, GroundTruth, generate, ground_truth
from kpilib.errors import ParamsError
from kpilib.validation import validate_tables

TABLES = {
    "departments": ["department_id", "name", "kind", "kpi_since"],
    "managers": ["manager_id", "department_id", "name", "tier", "hired_on", "left_on"],
    "clients": ["client_id", "name", "segment"],
    "products": ["product_id", "name", "category"],
    "deals": [
        "deal_id", "manager_id", "stage", "created_on", "closed_on", "amount", "client_id",
        "product_id", "cost_price", "extra_hours", "sale_type", "lead_id",
    ],
    "deliveries": ["deal_id", "promised_on", "delivered_on", "department_id"],
    "requests": [
        "request_id", "received_at", "first_response_at", "client_id", "manager_id",
        "department_id",
    ],
    "leads": ["lead_id", "created_on", "channel", "manager_id", "cost"],
    "plans": ["period", "metric", "target", "department_id", "manager_id"],
}  # fmt: skip
IDS = {
    "departments": "department_id",
    "managers": "manager_id",
    "clients": "client_id",
    "products": "product_id",
    "deals": "deal_id",
    "requests": "request_id",
    "leads": "lead_id",
}
FOREIGN_KEYS = [  # (table, column, referenced table)
    ("managers", "department_id", "departments"),
    ("deals", "manager_id", "managers"),
    ("deals", "client_id", "clients"),
    ("deals", "product_id", "products"),
    ("deals", "lead_id", "leads"),
    ("deliveries", "deal_id", "deals"),
    ("deliveries", "department_id", "departments"),
    ("requests", "client_id", "clients"),
    ("requests", "manager_id", "managers"),
    ("requests", "department_id", "departments"),
    ("leads", "manager_id", "managers"),
    ("plans", "department_id", "departments"),
]


@pytest.fixture(scope="module")
def crm() -> dict[str, pd.DataFrame]:
    return generate()


@pytest.fixture(scope="module")
def truth() -> GroundTruth:
    return ground_truth()


@pytest.fixture(scope="module")
def won(crm: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Won deals with the manager's department and tier and the closing month."""
    managers = crm["managers"][["manager_id", "department_id", "tier", "hired_on", "left_on"]]
    deals = crm["deals"]
    return (
        deals[deals["stage"].eq("won")]
        .merge(managers, on="manager_id")
        .assign(month=lambda d: d["closed_on"].dt.to_period("M"))
    )


def _monthly(series: pd.Series) -> pd.Series:
    return series.dt.to_period("M")


def test_same_config_gives_identical_tables_and_another_seed_differs(crm):
    again = generate(DemoConfig())
    other = generate(DemoConfig(seed=7))
    for name, table in crm.items():
        pd.testing.assert_frame_equal(table, again[name])
    assert not crm["deals"].equals(other["deals"])


def test_every_contract_table_has_exactly_its_columns(crm):
    assert set(TABLES) == set(crm)
    for name, columns in TABLES.items():
        assert columns == list(crm[name].columns), name


def test_identifiers_are_unique_strings(crm):
    for name, column in IDS.items():
        ids = crm[name][column]
        assert ids.is_unique, name
        assert ids.map(type).eq(str).all(), name
    for name, column, _ in FOREIGN_KEYS:
        assert crm[name][column].dropna().map(type).eq(str).all(), (name, column)
    assert crm["managers"]["manager_id"].str.fullmatch(r"M\d{3}").all()
    assert crm["deals"]["deal_id"].str.fullmatch(r"D\d{6}").all()


def test_foreign_keys_point_to_existing_rows(crm):
    for name, column, target in FOREIGN_KEYS:
        values = crm[name][column].dropna()
        missing = ~values.isin(crm[target][IDS.get(target, column)])
        assert missing.sum() == 0, (name, column)
    assert crm["deals"]["deal_id"].is_unique
    assert crm["deliveries"]["deal_id"].is_unique


def test_dates_are_datetimes_at_midnight_and_timestamps_are_datetimes(crm):
    dates = {
        "departments": ["kpi_since"],
        "managers": ["hired_on", "left_on"],
        "deals": ["created_on", "closed_on"],
        "deliveries": ["promised_on", "delivered_on"],
        "leads": ["created_on"],
    }
    for name, columns in dates.items():
        for column in columns:
            values = crm[name][column]
            assert pd.api.types.is_datetime64_dtype(values), (name, column)
            assert values.dropna().eq(values.dropna().dt.normalize()).all(), (name, column)
    for column in ["received_at", "first_response_at"]:
        assert pd.api.types.is_datetime64_dtype(crm["requests"][column])


def test_departments_are_four_sales_and_two_service_with_only_east_piloting(crm, truth):
    departments = crm["departments"].set_index("department_id")
    sales = departments.index[departments["kind"].eq("sales")]
    assert list(sales) == ["north", "south", "east", "west"]
    assert {"logistics", "support"} == set(departments.index[departments["kind"].eq("service")])
    assert list(departments.index[departments["kpi_since"].notna()]) == ["east"]
    assert truth.pilot_start == departments.loc["east", "kpi_since"]


def test_each_sales_department_has_six_plus_managers_and_both_tiers(crm):
    managers = crm["managers"]
    sales = crm["departments"].query("kind == 'sales'")["department_id"]
    assert set(sales) == set(managers["department_id"])
    for _, team in managers.groupby("department_id"):
        assert len(team) >= 6
        assert 1 <= team["tier"].eq("star").sum() <= 2
        assert team["tier"].eq("regular").any()
    assert managers["left_on"].notna().sum() == 1


def test_deals_cover_thirty_months_and_respect_the_contract(crm):
    deals = crm["deals"]
    closed = deals[deals["stage"].isin(["won", "lost"])]
    assert {"open", "won", "lost"} == set(deals["stage"])
    assert _monthly(closed["closed_on"]).nunique() == 30
    assert closed["closed_on"].notna().all()
    assert deals.loc[deals["stage"].eq("open"), "closed_on"].isna().all()
    assert (closed["closed_on"] >= closed["created_on"]).all()
    assert (closed["closed_on"] <= pd.Timestamp("2026-10-31")).all()
    assert (deals[["amount", "cost_price", "extra_hours"]] >= 0).all().all()
    assert 8_000 <= len(deals) <= 12_000
    assert 0.3 <= len(deals.query("stage == 'won'")) / len(closed) <= 0.45
    assert (deals["cost_price"] / deals["amount"]).between(0.4, 0.7).all()


def test_amounts_are_realistic_b2b_with_about_one_big_new_client_per_manager_and_month(won):
    assert won["amount"].between(150_000, 6_000_000).all()
    per_manager = won.groupby("manager_id")["amount"].sum() / 30
    assert 3e6 <= per_manager.median() <= 8e6
    big_new = won[won["sale_type"].eq("new") & won["amount"].ge(1_500_000)]
    active_months = won.groupby("manager_id")["month"].nunique().sum()
    assert 0.8 <= len(big_new) / active_months <= 3


def test_open_deals_were_created_in_the_last_two_months(crm):
    open_deals = crm["deals"].query("stage == 'open'")
    assert (open_deals["created_on"] >= pd.Timestamp("2026-08-31")).all()


def test_deals_fall_within_their_managers_employment(crm):
    deals = crm["deals"].merge(crm["managers"], on="manager_id")
    assert (deals["created_on"] >= deals["hired_on"]).all()
    still_there = deals["left_on"].isna() | deals["closed_on"].isna()
    assert (still_there | (deals["closed_on"] <= deals["left_on"])).all()


def test_a_clients_first_won_deal_is_new_and_later_ones_are_not(crm):
    deals = crm["deals"].sort_values(["closed_on", "deal_id"])
    won = deals[deals["stage"].eq("won")]
    first = ~won.duplicated("client_id")
    assert won.loc[first, "sale_type"].eq("new").all()
    assert won.loc[~first, "sale_type"].ne("new").all()
    acquired = won[first].set_index("client_id")["closed_on"]
    others = deals[deals["stage"].ne("won")]
    acquired_on = others["client_id"].map(acquired)
    before = acquired_on.isna() | (others["created_on"] <= acquired_on)
    assert others.loc[before, "sale_type"].eq("new").all()


def test_leads_precede_their_deals(crm):
    deals = crm["deals"].dropna(subset=["lead_id"])
    lead_created = deals["lead_id"].map(crm["leads"].set_index("lead_id")["created_on"])
    assert (lead_created <= deals["created_on"]).all()
    assert crm["deals"]["lead_id"].dropna().is_unique
    assert (crm["leads"]["cost"] >= 0).all()


def test_deliveries_are_one_per_won_deal_and_promised_after_closing(crm):
    deals = crm["deals"].set_index("deal_id")
    deliveries = crm["deliveries"]
    assert set(deals.index[deals["stage"].eq("won")]) == set(deliveries["deal_id"])
    lag = (deliveries["promised_on"] - deliveries["deal_id"].map(deals["closed_on"])).dt.days
    assert lag.between(2, 5).all()
    assert deliveries["delivered_on"].dropna().le(pd.Timestamp("2026-10-31")).all()
    assert 0 < deliveries["delivered_on"].isna().sum() < 0.05 * len(deliveries)


def test_requests_are_answered_within_hours(crm):
    requests = crm["requests"]
    hours = (requests["first_response_at"] - requests["received_at"]).dt.total_seconds() / 3600
    assert (hours.dropna() > 0).all()
    assert 2 <= hours.median() <= 6
    assert 0 < requests["first_response_at"].isna().mean() < 0.05


def test_plans_cover_each_sales_department_and_month_with_exactly_one_owner(crm):
    plans = crm["plans"]
    assert len(plans) == 4 * (30 + 3)  # the data's months and the three months after them
    assert "2027-01" == plans["period"].max()
    assert not plans.duplicated(["period", "department_id"]).any()
    assert plans["manager_id"].isna().all() and plans["department_id"].notna().all()
    assert plans["period"].str.fullmatch(r"\d{4}-\d{2}").all()


def test_plans_are_near_actual_revenue(crm, won):
    actual = won.groupby(["department_id", won["month"].astype(str)])["amount"].sum()
    target = crm["plans"].set_index(["department_id", "period"])["target"]
    ratio = (actual / target).dropna()
    assert 0.85 <= ratio.median() <= 1.1


def test_seasonality_shows_in_won_deals_per_calendar_month(won, truth):
    counts = won.groupby("month").size()
    index = (counts / counts.mean()).groupby(counts.index.month).mean()
    planted = pd.Series(truth.seasonality, index=range(1, 13))
    assert np.corrcoef(planted, index)[0, 1] > 0.9
    assert index[[1, 8]].max() < 0.85 and index[[3, 12]].min() > 1.1


def test_stars_sell_about_one_and_three_quarters_of_a_regular(won, truth, crm):
    managers = crm["managers"]
    full_time = managers["left_on"].isna() & (managers["hired_on"] < pd.Timestamp("2024-05-01"))
    revenue = won.groupby("manager_id")["amount"].sum().reindex(managers["manager_id"])
    frame = managers.assign(revenue=revenue.to_numpy())[full_time.to_numpy()]
    by_tier = frame.groupby(["department_id", "tier"])["revenue"].mean().unstack()
    ratio = by_tier["star"] / by_tier["regular"]
    assert set(truth.star_manager_ids) == set(managers.query("tier == 'star'")["manager_id"])
    assert ratio.between(1.4, 2.3).all(), ratio
    assert truth.star_revenue_factor == pytest.approx(ratio.mean(), rel=0.12)


def test_vasily_sells_as_much_as_valery_but_earns_far_less_in_every_month(won, truth, crm):
    names = crm["managers"].set_index("manager_id")["name"]
    vasily, valery = truth.high_hours_manager_id, truth.revenue_peer_id
    assert names[vasily].startswith("Vasily ") and names[valery].startswith("Valery ")
    team = crm["managers"].set_index("manager_id").loc[[vasily, valery]]
    assert team["department_id"].nunique() == 1 and {"regular"} == set(team["tier"])
    deals = won.assign(
        extra_cost=truth.hourly_cost * won["extra_hours"],
        profit=won["amount"] - won["cost_price"] - truth.hourly_cost * won["extra_hours"],
    )
    share = deals["extra_cost"] / deals["amount"]
    low, high = truth.high_hours_cost_share
    assert share[deals["manager_id"].eq(vasily)].between(low - 0.01, high + 0.01).all()
    assert deals.loc[deals["manager_id"].eq(valery), "extra_hours"].eq(0).all()
    assert deals.loc[deals["manager_id"].ne(vasily), "extra_hours"].between(0, 8).mean() > 0.95
    monthly = deals.groupby(["manager_id", "month"])[["amount", "profit"]].sum()
    pair = monthly.loc[vasily].join(monthly.loc[valery], suffixes=("_vasily", "_valery"))
    revenue_gap = (pair["amount_vasily"] - pair["amount_valery"]).abs() / pair["amount_valery"]
    profit_gap = (pair["profit_valery"] - pair["profit_vasily"]) / pair["amount_valery"]
    assert pair["amount_vasily"].sum() == pytest.approx(pair["amount_valery"].sum(), rel=0.02)
    assert (revenue_gap < 0.1).all()
    assert (profit_gap > 0.15).all()
    assert pair["profit_vasily"].sum() < 0.6 * pair["profit_valery"].sum()


def test_logistics_slips_in_the_three_planted_months_and_recovers(crm, truth):
    deliveries = crm["deliveries"].dropna(subset=["delivered_on"])
    closed = deliveries["deal_id"].map(crm["deals"].set_index("deal_id")["closed_on"])
    frame = deliveries.assign(
        month=_monthly(deliveries["promised_on"]).astype(str),
        on_time=deliveries["delivered_on"] <= deliveries["promised_on"],
        days=(deliveries["delivered_on"] - closed).dt.days,
    )
    frame = frame[frame["month"] <= "2026-10"]
    monthly = frame.groupby("month")[["on_time", "days"]].mean()
    slip = monthly.index.isin(truth.slip_months)
    assert truth.slip_months == ("2026-06", "2026-07", "2026-08")
    assert monthly.loc[slip, "on_time"].between(0.65, 0.85).all()
    assert monthly.loc[~slip, "on_time"].min() >= 0.9
    assert truth.fulfilment_days_slip == pytest.approx(monthly.loc[slip, "days"].mean(), abs=0.5)
    assert truth.fulfilment_days_normal == pytest.approx(monthly.loc[~slip, "days"].mean(), abs=0.3)
    assert monthly.loc[["2026-09", "2026-10"], "on_time"].min() >= 0.9


def test_east_wins_about_fifteen_percent_more_deals_after_its_pilot_starts(won, truth):
    after = won["closed_on"] >= truth.pilot_start
    months = won.groupby(after)["month"].nunique()
    rate = won.groupby(["department_id", after]).size().unstack() / months
    change = rate[True] / rate[False]
    relative = change["east"] / change.drop("east").mean()
    assert months[True] == 12 and months[False] == 18
    assert truth.pilot_uplift == pytest.approx(relative, abs=0.06)


def test_small_config_keeps_every_effect_site():
    config = DemoConfig(
        seed=3, end="2025-12", months=24, sales_departments=5, managers_per_department=6
    )
    tables = generate(config)
    small = ground_truth(config)
    assert "sales5" in set(tables["departments"]["department_id"])
    assert pd.Timestamp("2025-01-01") == small.pilot_start
    assert small.slip_months == ("2025-08", "2025-09", "2025-10")
    assert small.high_hours_manager_id in set(tables["deals"]["manager_id"])


@pytest.mark.parametrize(
    "change",
    [
        {"months": 23},
        {"sales_departments": 3},
        {"managers_per_department": 5},
        {"end": "2026-13"},
        {"deal_rate": 0.0},
        {"deal_rate": -1.0},
        {"deal_rate": float("nan")},
        {"deal_rate": float("inf")},
        {"deal_rate": "2"},
    ],
)
def test_config_outside_the_supported_range_is_refused(change):
    with pytest.raises(ParamsError):
        DemoConfig(**change)


@pytest.mark.parametrize("rate", [0.5, 4.0])
def test_deal_rate_scales_every_stage_of_the_deals_and_what_follows_them(crm, rate):
    scaled = generate(DemoConfig(deal_rate=rate))
    assert len(crm["deals"]) * rate == pytest.approx(len(scaled["deals"]), rel=0.05)
    stages = crm["deals"]["stage"].value_counts() * rate
    # open deals are a few hundred at the natural rate, so their count varies most
    assert stages.to_dict() == pytest.approx(
        scaled["deals"]["stage"].value_counts().to_dict(), rel=0.15
    )
    for table in ("deliveries", "requests", "leads"):
        assert len(crm[table]) * rate == pytest.approx(len(scaled[table]), rel=0.1), table
    for table in ("departments", "managers", "products", "plans"):
        assert len(crm[table]) == len(scaled[table]), table
    validate_tables(scaled)  # still within the data contract


@pytest.fixture(scope="module")
def response_months(crm, truth) -> pd.DataFrame:
    """Each manager-month's mean response hours, and whether it was planted slow."""
    requests = crm["requests"].dropna(subset=["first_response_at"])
    hours = (requests["first_response_at"] - requests["received_at"]).dt.total_seconds() / 3600
    frame = requests.assign(hours=hours, month=_monthly(requests["received_at"]))
    means = frame.groupby(["manager_id", "month"])["hours"].mean().rename("hours").reset_index()
    planted = [
        (m, f"{p:%Y-%m}") in truth.slow_response_months
        for m, p in means[["manager_id", "month"]].itertuples(index=False)
    ]
    return means.assign(slow=planted)


def test_slow_answers_fall_in_about_three_in_ten_manager_months(response_months, truth):
    assert "response_hours" == truth.lagged_link_metric
    assert 0.25 < response_months["slow"].mean() < 0.35
    fast = response_months.loc[~response_months["slow"], "hours"]
    slow = response_months.loc[response_months["slow"], "hours"]
    # About 3.5 hours usually, three times that in a slow month: the 8-hour KPI is mostly missed.
    assert fast.median() < 4.5 and 9 < slow.median() < 12
    assert (fast <= 8).mean() > 0.97 and (slow > 8).mean() > 0.75


def test_existing_client_deals_lose_value_the_month_after_slow_answers(won, response_months, truth):
    existing = won.loc[won["sale_type"].ne("new")]
    before = response_months.assign(month=response_months["month"] + truth.lagged_link_lag)
    deals = existing.merge(before[["manager_id", "month", "slow"]], on=["manager_id", "month"])
    mean_amount = deals.groupby("slow")["amount"].mean()
    assert 0.35 == truth.lagged_link_loss
    assert 0.65 == pytest.approx(mean_amount[True] / mean_amount[False], abs=0.07)
    # New-client deals are untouched.
    new = won.loc[won["sale_type"].eq("new")].merge(
        before[["manager_id", "month", "slow"]], on=["manager_id", "month"]
    )
    new_means = new.groupby("slow")["amount"].mean()
    assert 0.85 < new_means[True] / new_means[False] < 1.15


def test_valery_has_vasilys_slow_months_so_their_revenue_still_matches(truth):
    def months(manager: str) -> set[str]:
        return {month for who, month in truth.slow_response_months if who == manager}

    assert len(months(truth.high_hours_manager_id)) > 3
    assert months(truth.high_hours_manager_id) == months(truth.revenue_peer_id)
