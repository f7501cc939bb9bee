"""The monthly report's "why" sections: gaps to plan and baseline, the peer gap, service causes."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from kpilib import paths, views
from kpilib.demo import DemoConfig, ground_truth
from kpilib.explain import (
    department_gap,
    gap_sentence,
    main_drivers,
    mix_table,
    peer_gap,
    reference_months,
    segment_table,
)
from kpilib.findings import findings
from kpilib.metrics import indicators
from kpilib.monthly import prepare_monthly

SCHEME = str(paths.DEFAULT_SCHEME)
TRUTH = ground_truth(DemoConfig())


def _money(text: str) -> float:
    """A whole-unit money cell such as "−1,234 RUB" back as a number."""
    return float(text.replace("\u2212", "-").replace(",", "").split()[0])


def test_revenue_gap_is_read_against_the_plan_and_adds_up_exactly(report):
    gap = department_gap(report, "revenue")
    plan = report.crm.plans.set_index(["department_id", "period"]).at[("north", "2026-09"),
                                                                       "target"]  # fmt: skip
    actual = indicators(report.crm, report.period, "department")["revenue"]["north"]
    assert ("plan", plan, actual) == (gap.reference_name, gap.reference, gap.actual)
    assert gap.drivers["contribution"].sum() == pytest.approx(actual - plan, abs=1e-6)


def test_profit_gap_is_read_against_the_scheme_baseline_month(report):
    gap = department_gap(report, "net_profit")
    year_ago = pd.Period("2025-09", "M")
    base = indicators(report.crm, year_ago, "department")["net_profit"]["north"]
    assert ("baseline", (year_ago,)) == (gap.reference_name, gap.reference_months)
    assert gap.reference == pytest.approx(base)
    assert gap.drivers["contribution"].sum() == pytest.approx(gap.gap, abs=1e-6)
    assert "extra_costs" in set(gap.drivers["factor"])


def test_without_a_year_of_history_the_reference_is_the_months_before(source):
    early = prepare_monthly(department="west", period="2025-02", data=str(source), scheme=SCHEME)
    assert (pd.Period("2024-11", "M"), pd.Period("2024-12", "M"), pd.Period("2025-01", "M")) == (
        reference_months(early)
    )


def test_gap_sentence_names_the_gap_and_its_largest_drivers_in_its_direction(report):
    gap = department_gap(report, "revenue")
    sentence = gap_sentence(gap, report.currency)
    verb = "missed" if gap.gap < 0 else "beat"
    assert sentence.startswith(f"Revenue {verb} the plan by ")
    largest = gap.drivers.loc[(gap.drivers["contribution"] * math.copysign(1, gap.gap)).idxmax()]
    assert main_drivers(gap, report.currency).startswith(largest["label"].lower())


def test_mix_and_segment_tables_add_up_to_the_revenue_gap_as_printed(report):
    gap = department_gap(report, "revenue")
    printed = round(gap.actual) - round(gap.reference)
    for dimension in ("business", "sale_type", "product", "segment"):
        table = mix_table(report, gap, dimension)
        groups, total = table.iloc[:-1], table.iloc[-1]
        assert "Total" == total.iloc[0] and printed == _money(total["Change"]), dimension
        assert printed == sum(_money(v) for v in groups["Change"]), dimension
        parts = groups[["of which volume", "mix", "average deal"]].map(_money).sum(axis=1)
        assert list(groups["Change"].map(_money)) == list(parts), dimension
    segments = segment_table(report, gap)
    assert printed == sum(_money(v) for v in segments["Contribution"])
    assert "everything else" == segments["Segment"].iloc[-1]


def _short(month: str, source, department: str = "north"):
    """A report with a short history: enough for the month's findings, quicker to score."""
    return prepare_monthly(
        department=department, period=month, data=str(source), scheme=SCHEME, trend_months=4
    )


@pytest.mark.parametrize("month", ["2026-03", "2026-06", "2026-09"])
def test_the_high_extra_hours_managers_profit_gap_is_attributed_to_extra_costs(source, month):
    monthly = _short(month, source)
    pair = peer_gap(monthly)
    names = monthly.card.managers.set_index("manager_id")["name"]
    assert names[TRUTH.high_hours_manager_id] == pair.low["Manager"]
    assert pair.drivers["contribution"].sum() == pytest.approx(pair.gap, abs=1e-6)
    assert ["revenue", "gross_margin", "extra_costs"] == list(pair.drivers["factor"])
    # Whoever the widest-gap peer is, extra costs are the largest part of the gap, and the
    # findings say so.
    assert "extra_costs" == pair.drivers.loc[pair.drivers["contribution"].idxmin(), "factor"]
    assert pair.share("extra_costs") >= 0.5
    assert "extra technical costs explain" in " ".join(findings(monthly))


@pytest.mark.parametrize("department", ["north", "south", "east", "west"])
def test_findings_name_the_logistics_slip_as_the_cause_in_the_slip_months(source, department):
    for month in TRUTH.slip_months:
        text = " ".join(findings(_short(month, source, department)))
        assert "On-time delivery missed" in text, (department, month)
        assert "because Logistics slipped in weeks 2026-W23 to 2026-W35" in text, month


def test_findings_do_not_blame_logistics_outside_the_slip(source):
    before = findings(_short("2026-02", source))
    assert not any("Logistics slipped" in sentence for sentence in before)
    after = findings(_short("2026-10", source))
    # After the slip, only the "Earlier:" sentence speaks of it; no miss of October is blamed.
    blamed = [s for s in after if "Logistics slipped" in s]
    assert blamed and all(s.startswith("Earlier: ") for s in blamed)


def test_a_report_after_the_slip_still_names_it_as_the_cause_of_earlier_misses(source):
    after = prepare_monthly(department="west", period="2026-10", data=str(source), scheme=SCHEME)
    first, last = TRUTH.slip_months[0], TRUTH.slip_months[-1]
    [sentence] = [s for s in findings(after) if s.startswith("Earlier: On-time delivery")]
    assert f"missed in {first} to {last} while Logistics slipped company-wide" in sentence
    assert "Logistics has met its level since 2026-09" in sentence


def test_the_first_month_of_the_data_has_no_baseline_and_says_so(source):
    first = prepare_monthly(department="north", period="2024-05", data=str(source), scheme=SCHEME,
                            trend_months=2)  # fmt: skip
    gap = department_gap(first, "net_profit")
    assert () == gap.reference_months and math.isnan(gap.gap)
    assert "the data holds no earlier month" in gap_sentence(gap, first.currency)
    findings(first)  # and the findings are written without it


def test_a_dollar_in_a_managers_name_is_drawn_literally(report):
    pair = peer_gap(report)
    named = type(pair)({**pair.low, "Manager": "Dmitry $x^$"}, pair.high, pair.drivers)
    png, meta = views.peer_chart(named, report.currency)._repr_png_()
    assert png.startswith(b"\x89PNG") and "Dmitry $x^$" in meta["alt"]
