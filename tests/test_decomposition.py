"""Gap decompositions: exact by construction, checked by hand, by property and on the demo.

Hand cases use the sales source in ``conftest.py`` (March 2025: m1 won d11 1,600,000 from lead l1
and d12 50,000, lost d13; leads l1 and l2 are m1's, l3 is m2's) and the documents' example of
``kpilib.testing`` (Vasily and Valery, 400,000 RUB each, Vasily with 100 extra hours).
"""

from __future__ import annotations

import math
from dataclasses import astuple
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kpilib import paths, plots
from kpilib.decomposition import (
    EVERYTHING_ELSE,
    Funnel,
    dimension_labels,
    driver_gap,
    driver_table,
    funnel,
    labelled_won,
    mix_by,
    mix_gap,
    plan_funnel,
    plan_target,
    shapley_product,
    top_segments,
    whole_units,
)
from kpilib.demo import ground_truth
from kpilib.io import read_source
from kpilib.metrics import MetricSettings, indicators
from kpilib.testing import vasily_valery

MARCH = pd.Period("2025-03", freq="M")
SEPTEMBER = pd.Period("2026-09", freq="M")
NAN = math.nan


@pytest.fixture(scope="module")
def demo():
    return read_source(paths.DEMO_DATA)


def contributions(gap: pd.DataFrame) -> dict[str, float]:
    return dict(zip(gap["factor"], gap["contribution"], strict=True))


def close(total: float, expected: float, *scales: float) -> bool:
    """Equal within 1e-9 of the largest magnitude involved."""
    return abs(total - expected) <= 1e-9 * max(1.0, *(abs(s) for s in scales if not math.isnan(s)))


# --- Shapley and the funnel's drivers, by hand ------------------------------------------------


def test_two_factors_doubling_share_the_change_equally():
    # 2 x 3 = 6 becomes 4 x 6 = 24: each order gives one factor 6 and the other 12; mean 9 each.
    assert [9.0, 9.0] == shapley_product([2.0, 3.0], [4.0, 6.0])


def test_shapley_is_safe_with_zeros():
    # 5 x 4 = 20 falls to 0 x 4: the whole drop is the first factor's.
    assert [-20.0, 0.0] == shapley_product([5.0, 4.0], [0.0, 4.0])


def test_doubling_leads_at_equal_rates_is_all_lead_volume():
    reference = Funnel(100, 50, 20, 2_000_000, 1_000_000, 10, 1500)
    actual = Funnel(200, 100, 40, 4_000_000, 2_000_000, 20, 1500)
    gap = driver_gap(actual, reference, "revenue")
    expected = {"leads": 2e6, "closed_per_lead": 0.0, "win_rate": 0.0, "avg_deal": 0.0}
    assert expected == pytest.approx(contributions(gap))
    assert ["Leads", "Closed deals per lead", "Win rate", "Average deal"] == list(gap["label"])


def test_leads_and_average_deal_doubling_split_the_gap_equally():
    # 100 x 0.5 x 0.4 x 100,000 = 2M against 200 x 0.5 x 0.4 x 200,000 = 8M: 3M each.
    reference = Funnel(100, 50, 20, 2_000_000, 0, 0, 1500)
    actual = Funnel(200, 100, 40, 8_000_000, 0, 0, 1500)
    gap = driver_gap(actual, reference, "revenue")
    assert {"leads": 3e6, "closed_per_lead": 0.0, "win_rate": 0.0, "avg_deal": 3e6} == (
        pytest.approx(contributions(gap))
    )


def test_without_leads_the_chain_starts_at_closed_deals():
    reference = Funnel(NAN, 10, 4, 400, 0, 0, 1500)
    actual = Funnel(NAN, 20, 4, 400, 0, 0, 1500)
    gap = driver_gap(actual, reference, "revenue")
    assert ["closed", "win_rate", "avg_deal"] == list(gap["factor"])
    assert 0.0 == pytest.approx(gap["contribution"].sum())


def test_without_won_deals_revenue_per_closed_deal_carries_the_drop():
    reference = Funnel(100, 10, 4, 400_000, 0, 0, 1500)
    actual = Funnel(100, 10, 0, 0, 0, 0, 1500)
    gap = driver_gap(actual, reference, "revenue")
    assert {"leads": 0.0, "closed_per_lead": 0.0, "revenue_per_closed": -400_000.0} == (
        pytest.approx(contributions(gap))
    )


def test_zero_leads_merge_into_closed_deals_and_no_closed_deals_into_won_per_lead():
    no_leads = driver_gap(Funnel(0, 5, 2, 200, 0, 0, 1), Funnel(10, 5, 2, 100, 0, 0, 1), "revenue")
    assert ["closed", "win_rate", "avg_deal"] == list(no_leads["factor"])
    no_closed = driver_gap(Funnel(10, 0, 0, 0, 0, 0, 1), Funnel(10, 5, 2, 100, 0, 0, 1), "revenue")
    assert ["leads", "revenue_per_lead"] == list(no_closed["factor"])
    assert -100.0 == pytest.approx(no_closed["contribution"].sum())


def test_the_documents_example_profit_gap_is_all_extra_costs():
    crm = vasily_valery()
    vasily = funnel(crm, [MARCH], "manager", "vasily", 1500)
    valery = funnel(crm, [MARCH], "manager", "valery", 1500)
    assert math.isnan(vasily.leads)  # the source has no leads table: no data, not zero
    gap = driver_gap(vasily, valery, "net_profit")
    assert {
        "closed": 0.0,
        "win_rate": 0.0,
        "avg_deal": 0.0,
        "gross_margin": 0.0,
        "extra_costs": -150_000.0,
    } == pytest.approx(contributions(gap))
    assert -150_000.0 == vasily.net_profit - valery.net_profit


def test_net_profit_needs_one_hourly_cost():
    with pytest.raises(ValueError, match="same hourly cost"):
        driver_gap(Funnel(1, 1, 1, 1, 0, 1, 1500), Funnel(1, 1, 1, 1, 0, 1, 2000), "net_profit")


def test_an_unknown_cost_price_leaves_the_profit_gap_unknown():
    gap = driver_gap(Funnel(1, 1, 1, 10, NAN, 0, 1), Funnel(1, 1, 1, 5, 2, 0, 1), "net_profit")
    assert gap.loc[gap["factor"].ne("extra_costs"), "contribution"].isna().all()


# --- funnel state ------------------------------------------------------------------------------


def test_funnel_counts_one_managers_month(sales_crm):
    state = funnel(sales_crm, [MARCH], "manager", "m1", 1500)
    # The source has no cost price or extra hours: no data, not zero.
    assert [2, 3, 2, 1_650_000, NAN, NAN, 1500] == pytest.approx(astuple(state), nan_ok=True)


def test_funnel_of_several_months_is_their_mean_and_skips_months_without_data(sales_crm):
    year_ago = pd.Period("2024-03", freq="M")
    mean = funnel(sales_crm, [year_ago, MARCH, pd.Period("2030-01", freq="M")], "manager", "m2", 1)
    assert (0.5, 1.0, 1.0, 190_000.0) == (mean.leads, mean.closed, mean.won, mean.revenue)
    assert math.isnan(funnel(sales_crm, [pd.Period("2030-01", freq="M")], "manager", "m2", 1).won)


SHARED_FIGURES = (
    "revenue", "leads", "win_rate", "avg_deal", "cost_price", "extra_costs", "net_profit",
)  # fmt: skip


@pytest.mark.parametrize(("level", "entity"), [("department", "north"), ("manager", "vasily")])
def test_funnel_agrees_with_the_indicators_on_the_demo(demo, level, entity):
    entity = ground_truth().high_hours_manager_id if entity == "vasily" else entity
    state = funnel(demo, [SEPTEMBER], level, entity, 1500)
    expected = indicators(demo, SEPTEMBER, level, MetricSettings(technical_hour_cost=1500))
    same = {"deals_won": "won", **{name: name for name in SHARED_FIGURES}}
    assert expected.loc[entity, list(same)].to_list() == pytest.approx(
        [getattr(state, name) for name in same.values()]
    )


def test_a_plan_is_the_reference_funnel_scaled_to_its_revenue():
    reference = Funnel(100, 50, 20, 2_000_000, 1_000_000, 40, 1500)
    plan = plan_funnel(reference, 3_000_000)
    assert Funnel(150, 75, 30, 3_000_000, 1_500_000, 60, 1500) == plan
    rates = ("closed_per_lead", "win_rate", "avg_deal", "gross_margin")
    assert [getattr(reference, r) for r in rates] == pytest.approx(
        [getattr(plan, r) for r in rates]
    )
    unreadable = plan_funnel(Funnel(5, 3, 0, 0, 0, 0, 1500), 1_000)
    assert 1_000 == unreadable.revenue and math.isnan(unreadable.leads)
    assert (
        -1_000
        == driver_gap(Funnel(5, 3, 0, 0, 0, 0, 1500), unreadable, "revenue")["contribution"].sum()
    )


def test_plan_target_reads_the_plans_table(demo):
    assert 52_760_000.0 == plan_target(demo, SEPTEMBER, "department", "north")  # plans.csv
    assert math.isnan(plan_target(demo, SEPTEMBER, "manager", "M001"))


# --- display -----------------------------------------------------------------------------------


def test_whole_units_give_the_remainder_to_the_largest_remainders():
    parts = pd.Series([1.5, 1.5, 1.0], index=["a", "b", "c"])
    assert [2.0, 1.0, 1.0] == whole_units(parts, 4.0).to_list()
    assert [0.0, -1.0, 0.0] == whole_units(pd.Series([-0.4, -0.4, -0.2]), -1.0).to_list()
    assert [1.0, np.nan] == pytest.approx(
        whole_units(pd.Series([1.2, NAN]), 3.0).to_list(), nan_ok=True
    )


def test_driver_table_adds_up_as_shown():
    vasily = Funnel(NAN, 1, 1, 400_000, 150_000, 100, 1500)
    valery = Funnel(NAN, 1, 1, 400_000, 150_000, 0, 1500)
    table = driver_table(driver_gap(vasily, valery, "net_profit"), "money", "RUB")
    assert ["Factor", "Reference", "Actual", "Contribution"] == list(table.columns)
    assert {
        "Factor": "Total gap",
        "Reference": "250,000 RUB",
        "Actual": "100,000 RUB",
        "Contribution": "\u2212150,000 RUB",
    } == table.iloc[-1].to_dict()
    assert ["1", "100.0%", "400,000 RUB", "62.5%", "0 RUB"] == list(table["Reference"][:-1])
    assert "\u2212150,000 RUB" == table.set_index("Factor").at["Extra costs", "Contribution"]


def test_driver_table_shows_an_unknown_profit_gap_as_no_data():
    gap = driver_gap(Funnel(1, 1, 1, 10, NAN, 0, 1), Funnel(1, 1, 1, 5, 2, 0, 1), "net_profit")
    total = driver_table(gap, "money", "RUB").iloc[-1]
    assert ("no data", "no data") == (total["Actual"], total["Contribution"])


# --- mix ---------------------------------------------------------------------------------------


def won(groups: list[str | None], amounts: list[float]) -> tuple[pd.DataFrame, pd.Series]:
    frame = pd.DataFrame({"amount": amounts}, dtype=float)
    return frame, pd.Series(groups, index=frame.index, dtype="object")


def test_mix_and_rate_effects_by_hand():
    # Reference: A 2 x 100, B 2 x 300 (N0 = 4, average 200). Actual: A 1 x 100, B 3 x 400.
    # Volume 0; mix 4 x ((0.25 - 0.5) x 100 + (0.75 - 0.5) x 300) = 200; rate 4 x 0.75 x 100 = 300.
    reference, ref_labels = won(["A", "A", "B", "B"], [100, 100, 300, 300])
    actual, act_labels = won(["A", "B", "B", "B"], [100, 400, 400, 400])
    split = mix_gap(actual, reference, act_labels, ref_labels)
    assert [0.0, 200.0, 300.0] == pytest.approx(split.effects["contribution"].to_list())
    groups = split.groups.set_index("group")
    assert [600.0, -100.0] == groups.loc[["B", "A"], "change"].to_list()
    assert groups[["volume", "mix", "rate"]].sum(axis=1).to_list() == pytest.approx(
        groups["change"].to_list()
    )


def test_a_group_sold_in_one_period_only_and_unlabelled_deals_stay_exact():
    reference, ref_labels = won(["A", None], [100, 50])
    actual, act_labels = won(["A", "C", "C"], [120, 300, 500])
    split = mix_gap(actual, reference, act_labels, ref_labels, reference_scale=0.5)
    groups = split.groups.set_index("group")
    assert {"A", "C", "(none)"} == set(groups.index)
    assert 0.0 == groups.at["C", "rate"]  # C takes its own average deal as the reference's
    assert 920 - 75 == pytest.approx(split.effects["contribution"].sum())
    assert 75.0 == split.reference_revenue


def test_mix_against_an_empty_reference_is_all_volume():
    reference, ref_labels = won([], [])
    actual, act_labels = won(["A", "B"], [100, 300])
    effects = mix_gap(actual, reference, act_labels, ref_labels).effects
    assert [400.0, 0.0, 0.0] == effects["contribution"].to_list()


def test_mix_by_product_against_the_year_ago_month_by_hand(sales_crm):
    # North, March 2024: Servers 100,000 + 200,000. March 2025: Servers 1,600,000, Support
    # 50,000 + 180,000. N0 = 2, N1 = 3, reference average 150,000; Support takes its own average
    # (115,000). Volume 1 x 150,000; mix 3 x ((1/3 - 1) x 150,000 + 2/3 x 115,000) = -70,000;
    # rate 3 x 1/3 x (1,600,000 - 150,000) = 1,450,000; together the gap of 1,530,000.
    split = mix_by(sales_crm, MARCH, [pd.Period("2024-03", freq="M")], "north", "product")
    assert [150_000.0, -70_000.0, 1_450_000.0] == pytest.approx(
        split.effects["contribution"].to_list()
    )
    assert ["Servers", "Support"] == list(split.groups["group"])
    unknown = mix_by(sales_crm, MARCH, [pd.Period("2020-01", freq="M")], "north", "product")
    assert unknown.effects["contribution"].isna().all()  # no reference data: no split


def test_business_and_channel_labels(sales_crm):
    deals = labelled_won(sales_crm, [MARCH], "north", ("business", "channel", "product"))
    labels = deals.set_index("deal_id")
    assert "web" == labels.at["d11", "channel"]
    assert "(no lead)" == labels.at["d12", "channel"]
    assert "phone" == labels.at["d14", "channel"]
    assert ["New business", "Existing clients", "New business"] == list(labels["business"])
    assert dimension_labels(vasily_valery(), vasily_valery().deals, "channel") is None


# --- segments ----------------------------------------------------------------------------------


def segments_frame(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["product", "segment", "amount"])


def test_top_segments_prefer_the_broader_segment_unless_clearly_outdone():
    reference = segments_frame([("A", "SMB", 100), ("A", "Ent", 100), ("B", "SMB", 100),
                                ("B", "Ent", 100)])  # fmt: skip
    # A falls by 100 in SMB and 90 in Ent: "product = A" (-190) beats "A, SMB" (-100 < 1.1 x 190).
    actual = segments_frame([("A", "SMB", 0), ("A", "Ent", 10), ("B", "SMB", 100),
                             ("B", "Ent", 100)])  # fmt: skip
    table = top_segments(actual, reference, ("product", "segment"))
    assert ["product = A", EVERYTHING_ELSE] == list(table["segment"])
    assert [-190.0, 0.0] == table["contribution"].to_list()
    # Gap -20. A, SMB falls by 100, more than 1.1x both "product = A" (-50) and "segment = SMB"
    # (-60), so it is named; then the only disjoint fall left, B, Ent (-10); the rest rose by 90.
    actual = segments_frame([("A", "SMB", 0), ("A", "Ent", 150), ("B", "SMB", 140),
                             ("B", "Ent", 90)])  # fmt: skip
    table = top_segments(actual, reference, ("product", "segment"))
    assert [
        "product = A, segment = SMB", "product = B, segment = Ent", EVERYTHING_ELSE
    ] == list(table["segment"])  # fmt: skip
    assert [-100.0, -10.0, 90.0] == table["contribution"].to_list()
    assert [5.0, 0.5, -4.5] == pytest.approx(table["share_of_gap"].to_list())


# --- properties: every split adds up -------------------------------------------------------------

amounts = st.one_of(st.just(0.0), st.floats(0.01, 1e4))


@st.composite
def funnels(draw, hour_cost: float = 1500.0) -> Funnel:
    leads = draw(st.one_of(st.just(NAN), amounts))
    closed = draw(amounts)
    won = closed * draw(st.one_of(st.just(0.0), st.just(1.0), st.floats(0.01, 1.0)))
    revenue = draw(st.one_of(st.just(0.0), st.floats(1.0, 1e9))) if won else 0.0
    cost = revenue * draw(st.floats(0.0, 1.5))
    return Funnel(leads, closed, won, revenue, cost, draw(amounts), hour_cost)


@settings(max_examples=200, deadline=None)
@given(funnels(), funnels(), st.sampled_from(["revenue", "net_profit"]))
def test_driver_contributions_add_up_to_the_gap(actual, reference, metric):
    gap = driver_gap(actual, reference, metric)
    expected = getattr(actual, metric) - getattr(reference, metric)
    scales = [
        getattr(state, name)
        for state in (actual, reference)
        for name in ("revenue", "cost_price", "extra_costs")
    ]
    # Float addition errs relative to the largest term added, here a contribution.
    assert close(gap["contribution"].sum(), expected, *scales, *gap["contribution"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1e7, 1e7), min_size=1, max_size=12))
def test_whole_units_add_up_to_the_rounded_total(values):
    parts = pd.Series(values)
    total = sum(values)
    rounded = whole_units(parts, total)
    assert round(total) == rounded.sum()
    assert (rounded - parts).abs().max() < 1.0 + 1e-6


deal_rows = st.lists(
    st.tuples(
        st.sampled_from(["A", "B", "C", None]),
        st.sampled_from(["SMB", "Ent"]),
        st.sampled_from(["web", "(no lead)"]),
        st.one_of(st.just(0.0), st.floats(1.0, 1e6)),
    ),
    max_size=25,
)
scales = st.sampled_from([1.0, 0.5, 1 / 3, 0.0, 2.7])


def deal_frame(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["product", "segment", "channel", "amount"]).astype(
        {"product": "object", "amount": float}
    )


@settings(max_examples=60, deadline=None)
@given(deal_rows, deal_rows, scales)
def test_mix_effects_and_group_changes_add_up_to_the_gap(actual_rows, reference_rows, scale):
    actual, reference = deal_frame(actual_rows), deal_frame(reference_rows)
    split = mix_gap(actual, reference, actual["product"], reference["product"], scale)
    expected = actual["amount"].sum() - scale * reference["amount"].sum()
    size = max(actual["amount"].sum(), scale * reference["amount"].sum())
    assert close(
        split.effects["contribution"].sum(), expected, size, *split.effects["contribution"]
    )
    assert close(split.groups["change"].sum(), expected, size, *split.groups["change"])
    parts = split.groups[["volume", "mix", "rate"]].sum(axis=1)
    assert np.allclose(parts, split.groups["change"], rtol=1e-9, atol=1e-9 * max(size, 1.0))


def conditions(label: str) -> dict[str, str]:
    return dict(part.split(" = ") for part in label.split(", "))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deal_rows, deal_rows, scales, st.integers(1, 5))
def test_top_segments_are_disjoint_and_add_up_to_the_gap(actual_rows, reference_rows, scale, most):
    actual, reference = deal_frame(actual_rows), deal_frame(reference_rows)
    table = top_segments(actual, reference, most=most, reference_scale=scale)
    expected = actual["amount"].sum() - scale * reference["amount"].sum()
    size = max(actual["amount"].sum(), scale * reference["amount"].sum())
    assert close(table["contribution"].sum(), expected, size, *table["contribution"])
    assert EVERYTHING_ELSE == table["segment"].iloc[-1] and len(table) <= most + 1
    picked = [conditions(label) for label in table["segment"].iloc[:-1]]
    for one, other in combinations(picked, 2):
        assert any(one[d] != other[d] for d in one.keys() & other.keys())


# --- the demo's planted effects ---------------------------------------------------------------


def test_vasilys_profit_gap_to_his_peer_is_mostly_extra_costs(demo):
    truth = ground_truth()
    vasily = funnel(demo, [SEPTEMBER], "manager", truth.high_hours_manager_id, truth.hourly_cost)
    valery = funnel(demo, [SEPTEMBER], "manager", truth.revenue_peer_id, truth.hourly_cost)
    gap = driver_gap(vasily, valery, "net_profit")
    total = vasily.net_profit - valery.net_profit
    share = contributions(gap)["extra_costs"] / total
    assert total < 0
    assert share >= 0.8, f"extra costs explain {share:.1%} of the {total:,.0f} RUB gap"
    assert close(gap["contribution"].sum(), total, vasily.revenue, valery.revenue)


def test_norths_revenue_gap_to_plan_splits_exactly_on_the_demo(demo):
    plan = plan_target(demo, SEPTEMBER, "department", "north")
    baseline = funnel(demo, [SEPTEMBER - 12], "department", "north", 1500)
    actual = funnel(demo, [SEPTEMBER], "department", "north", 1500)
    total = actual.revenue - plan
    gap = driver_gap(actual, plan_funnel(baseline, plan), "revenue")
    assert close(gap["contribution"].sum(), total, plan)
    for dimension in ("product", "segment", "sale_type", "business"):
        split = mix_by(demo, SEPTEMBER, [SEPTEMBER - 12], "north", dimension, plan_revenue=plan)
        assert close(split.effects["contribution"].sum(), total, plan)
    dimensions = ("product", "segment", "channel")
    reference = labelled_won(demo, [SEPTEMBER - 12], "north", dimensions)
    segments = top_segments(
        labelled_won(demo, [SEPTEMBER], "north", dimensions),
        reference,
        reference_scale=plan / reference["amount"].sum(),
    )
    assert close(segments["contribution"].sum(), total, plan)


def test_waterfall_chart_labels_each_step_with_its_sign():
    table = pd.DataFrame({
        "label": ["$\\frac{1}$ Ltd", "<script>", "Win rate"],
        "contribution": [1_200_000.0, -800_000.0, -100_000.0],
    })  # fmt: skip
    figure = plots.waterfall_chart(table, "Plan", "Actual", "RUB", "Revenue", start=5_000_000)
    png, metadata = figure._repr_png_()
    assert png.startswith(b"\x89PNG")
    assert (
        "Revenue: from Plan 5.0M RUB to Actual 5.3M RUB; largest contribution: "
        "$\\frac{1}$ Ltd +1.2M RUB."
    ) == metadata["alt"]
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert {"+1.2M", "\u2212800.0K", "\u2212100.0K", "5.0M", "5.3M"} <= set(texts)
