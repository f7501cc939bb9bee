"""Scheme stability: the scheme each month ran on, what changed, and attainment with it.

Recorded results are written to a temporary reports folder as the minimal JSON the reader needs:
``period``, ``department_id`` and ``scheme_definition`` (the keys `kpilib.stability` reads), and
once as the monthly report's own `monthly_json`. Schemes, changes and shares of managers meeting a
KPI are worked out by hand; on the demo data the shares are checked against the managers' actuals
and against the planted logistics slip (deliveries promised 2026-06 to 2026-08 late).
"""

# STYLE.md: asserts read `expected == actual`, which ruff's SIM300 calls a Yoda condition.

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from kpilib import paths
from kpilib.display import fmt
from kpilib.history import ScoreHistory, score_months
from kpilib.io import read_recorded_results, read_source, write_json
from kpilib.monthly import monthly_json
from kpilib.params import Scheme, load_scheme
from kpilib.periods import quarter_months
from kpilib.stability import (
    ATTAINMENT_COLUMNS,
    CHANGE_COLUMNS,
    TABLE_COLUMNS,
    SchemeInUse,
    attainment_by_month,
    scheme_changes,
    scheme_terms,
    schemes_in_use,
    score_in_use,
    stability_sentences,
    stability_table,
)

CURRENT = load_scheme(paths.DEFAULT_SCHEME)
QUARTER = pd.Period("2026Q3", freq="Q")
JULY, AUGUST, SEPTEMBER = quarter_months(QUARTER)
SALES = ["north", "south", "east", "west"]
SERVICE_SHARE = round(0.4 / 3, 12)  # a service KPI's weight: 40% shared by three


def tuned(
    new_clients: float = 2, new_clients_weight: float = 0.3, star_growth: float = 0.2
) -> Scheme:
    """The default scheme with another new-clients target, goal weight or star growth target.

    The new-clients goal's weight is taken from (or given to) the customer-service goal.
    """
    data = CURRENT.model_dump(mode="json", exclude_none=True)
    data["goals"][1]["kpis"][0]["target"]["value"] = new_clients
    data["goals"][1]["weight"] = new_clients_weight
    data["goals"][2]["weight"] = round(0.7 - new_clients_weight, 10)
    data["goals"][0]["kpis"][1]["target"]["by_tier"]["star"] = star_growth
    return Scheme.model_validate(data)


AUGUST_SCHEME = tuned(new_clients=3, new_clients_weight=0.4)


def record(reports: Path, month: pd.Period, department_id: str, scheme: Scheme) -> Path:
    """Write the minimal recorded results of a monthly run."""
    return write_json(
        {
            "period": f"{month:%Y-%m}",
            "department_id": department_id,
            "scheme_definition": scheme.model_dump(mode="json", exclude_none=True),
        },
        reports / "monthly" / f"{month:%Y-%m}" / f"{department_id}.kpis.json",
    )


def plain(frame: pd.DataFrame) -> list[tuple]:
    """Rows as tuples; floats to 12 decimals (weights are products of shares) and NaN as None."""

    def cell(value: object) -> object:
        if isinstance(value, float):
            return None if math.isnan(value) else round(value, 12)
        return value

    return [tuple(cell(v) for v in row) for row in frame.itertuples(index=False)]


# --- reading recorded results -----------------------------------------------------------------


def test_reader_returns_the_files_that_exist_and_leaves_out_the_rest(tmp_path):
    record(tmp_path, JULY, "north", CURRENT)
    record(tmp_path, AUGUST, "south", AUGUST_SCHEME)
    found = read_recorded_results(tmp_path, [JULY, AUGUST, SEPTEMBER], ["north", "south"])
    assert {(JULY, "north"), (AUGUST, "south")} == set(found)
    assert "2026-08" == found[(AUGUST, "south")]["period"]


def test_reader_names_a_file_that_is_not_json_or_not_an_object_and_goes_on(tmp_path):
    broken = record(tmp_path, JULY, "north", CURRENT)
    record(tmp_path, AUGUST, "north", AUGUST_SCHEME)
    broken.write_text('{"period": "2026-07",', encoding="utf-8")
    found = read_recorded_results(tmp_path, [JULY, AUGUST], ["north"])
    assert found[(JULY, "north")].startswith("cannot read north.kpis.json: ")
    assert "2026-08" == found[(AUGUST, "north")]["period"]
    broken.write_text("[1, 2]", encoding="utf-8")
    found = read_recorded_results(tmp_path, [JULY], ["north"])
    assert "north.kpis.json is not a JSON object" == found[(JULY, "north")]
    (in_use,) = schemes_in_use(found, [JULY], ["north"], CURRENT)
    assert (CURRENT, False) == (in_use.scheme, in_use.recorded)
    assert in_use.source.endswith("is unusable: north.kpis.json is not a JSON object)")


def test_targets_and_weights_round_trip_exactly_through_the_recorded_file(tmp_path):
    data = CURRENT.model_dump(mode="json", exclude_none=True)
    data["goals"][0]["kpis"][1]["target"]["value"] = 0.15  # not exact in binary
    data["goals"][2]["kpis"][0]["target"]["value"] = 0.1 + 0.2  # 0.30000000000000004
    exact = Scheme.model_validate(data)
    record(tmp_path, AUGUST, "north", exact)
    recorded = read_recorded_results(tmp_path, [JULY, AUGUST], ["north"])
    record(tmp_path, JULY, "north", CURRENT)
    recorded = read_recorded_results(tmp_path, [JULY, AUGUST], ["north"])
    in_use = schemes_in_use(recorded, [JULY, AUGUST], ["north"], CURRENT)
    assert exact == in_use[1].scheme
    changes = scheme_changes(in_use).set_index("kpi")
    assert [0.10, 0.15] == list(changes.loc["manager_sales_growth", ["before", "after"]])
    assert [0.95, 0.1 + 0.2] == list(changes.loc["on_time_delivery", ["before", "after"]])


def test_the_monthly_reports_own_results_record_the_scheme_it_ran_on(tmp_path, report):
    folder = tmp_path / "monthly" / "2026-09"
    write_json(monthly_json(report), folder / "north.kpis.json")
    recorded = read_recorded_results(tmp_path, [SEPTEMBER], ["north"])
    (in_use,) = schemes_in_use(recorded, [SEPTEMBER], ["north"], AUGUST_SCHEME)
    assert "recorded in reports/monthly/2026-09/north.kpis.json" == in_use.source
    assert report.scheme == in_use.scheme


# --- schemes in use ---------------------------------------------------------------------------


def test_each_month_takes_its_recorded_scheme_and_the_current_file_stands_in_otherwise():
    recorded = {
        (JULY, "north"): {"period": "2026-07", "scheme_definition": CURRENT.model_dump()},
        (AUGUST, "north"): {"period": "2026-08", "scheme": "Sales funnel"},  # an older file
    }
    in_use = schemes_in_use(recorded, [SEPTEMBER, JULY, AUGUST], ["north"], AUGUST_SCHEME)
    assert [JULY, AUGUST, SEPTEMBER] == [item.month for item in in_use]
    assert [
        "recorded in reports/monthly/2026-07/north.kpis.json",
        "current scheme file (the recorded report for 2026-08 does not record its scheme)",
        "current scheme file (no recorded report for 2026-09)",
    ] == [item.source for item in in_use]
    assert [CURRENT, AUGUST_SCHEME, AUGUST_SCHEME] == [item.scheme for item in in_use]
    assert [True, False, False] == [item.recorded for item in in_use]


def test_an_invalid_recorded_scheme_is_set_aside_naming_the_problem():
    broken = CURRENT.model_dump(mode="json", exclude_none=True)
    broken["goals"][0]["weight"] = 0.5  # goal weights no longer sum to 1
    (in_use,) = schemes_in_use(
        {(AUGUST, "south"): {"scheme_definition": broken}}, [AUGUST], ["south"], CURRENT
    )
    assert (CURRENT, False) == (in_use.scheme, in_use.recorded)
    assert "The scheme recorded for south in 2026-08" in in_use.source


def test_a_recorded_file_of_another_department_or_month_is_set_aside():
    definition = CURRENT.model_dump(mode="json", exclude_none=True)
    for record_, problem in (
        ({"department_id": "north"}, "department north, not south"),
        ({"period": "2026-07"}, "period 2026-07, not 2026-08"),
    ):
        (in_use,) = schemes_in_use(
            {(AUGUST, "south"): {**record_, "scheme_definition": definition}},
            [AUGUST],
            ["south"],
            AUGUST_SCHEME,
        )
        assert (AUGUST_SCHEME, False) == (in_use.scheme, in_use.recorded)
        assert problem in in_use.source


# --- terms and changes ------------------------------------------------------------------------


def test_scheme_terms_give_every_kpi_and_tier_group_with_its_weight_in_the_whole_scheme():
    terms = scheme_terms(AUGUST_SCHEME)
    assert [
        ("department_sales_increase", "all", 0.15, "increase", 100000),
        ("manager_sales_growth", "star", 0.15, "relative", 0.20),
        ("manager_sales_growth", "other tiers", 0.15, "relative", 0.10),
        ("new_clients", "all", 0.4, "absolute", 3),
        ("on_time_delivery", "all", 0.1, "absolute", 0.95),
        ("fulfilment_days", "all", 0.1, "absolute", 4),
        ("response_hours", "all", 0.1, "absolute", 8),
    ] == plain(terms[["kpi", "tier", "weight", "target_type", "target"]])
    assert "Increase sales to new clients" == terms.set_index("kpi").at["new_clients", "goal"]


def _in_use(schemes: dict[pd.Period, Scheme], department_id: str = "north") -> list[SchemeInUse]:
    return [
        SchemeInUse(month, department_id, scheme, f"recorded in {month:%Y-%m}")
        for month, scheme in schemes.items()
    ]


def test_a_new_target_and_goal_weight_are_the_changes_of_the_month_they_apply_from():
    changes = scheme_changes(
        _in_use({JULY: CURRENT, AUGUST: AUGUST_SCHEME, SEPTEMBER: AUGUST_SCHEME})
    )
    assert [
        ("new_clients", "target", 2, 3),
        ("new_clients", "weight", 0.3, 0.4),
        ("on_time_delivery", "weight", SERVICE_SHARE, 0.1),  # then 30% shared by three
        ("fulfilment_days", "weight", SERVICE_SHARE, 0.1),
        ("response_hours", "weight", SERVICE_SHARE, 0.1),
    ] == plain(changes[["kpi", "what", "before", "after"]])
    assert {AUGUST} == set(changes["month"])
    assert {"north"} == set(changes["department_id"])


def test_a_tier_target_added_and_removed_kpis_and_other_settings_are_changes_too():
    july = CURRENT.model_dump(mode="json", exclude_none=True)
    august = tuned(star_growth=0.25).model_dump(mode="json", exclude_none=True)
    august["goals"][1]["kpis"][0]["params"]["min_contract"] = 2_000_000
    august["goals"][1]["kpis"][0]["target"]["type"] = "increase"
    # Response hours give way to win rate: three KPIs share the goal as before.
    service = august["goals"][2]["kpis"]
    service[2] = {"id": "win_rate", "metric": "win_rate", "target": {"value": 0.4}}
    august["technical_hour_cost"] = 2000
    schemes = {JULY: Scheme.model_validate(july), AUGUST: Scheme.model_validate(august)}
    changes = scheme_changes(_in_use(schemes))
    assert [
        ("manager_sales_growth", "target (star)", 0.2, 0.25),
        ("new_clients", "target type", "absolute", "increase"),
        ("new_clients", "target", 2, 2),  # the same number, now meaning something else
        ("new_clients", "definition", "min_contract 1,500,000", "min_contract 2,000,000"),
        ("win_rate", "added", None, SERVICE_SHARE),
        ("response_hours", "removed", SERVICE_SHARE, None),
        ("(scheme)", "definition", "1,500", "2,000"),
    ] == plain(changes[["kpi", "what", "before", "after"]])
    assert "star" == changes.set_index("what").at["target (star)", "tier"]


def test_no_change_gives_an_empty_table_with_the_columns():
    changes = scheme_changes(_in_use({JULY: CURRENT, AUGUST: CURRENT, SEPTEMBER: CURRENT}))
    assert changes.empty
    assert CHANGE_COLUMNS == list(changes.columns)


def test_each_department_is_compared_with_its_own_previous_month():
    in_use = [
        *_in_use({JULY: CURRENT, AUGUST: AUGUST_SCHEME}, "north"),
        *_in_use({JULY: AUGUST_SCHEME, AUGUST: AUGUST_SCHEME}, "south"),
    ]
    changes = scheme_changes(in_use)
    assert {"north"} == set(changes["department_id"])


# --- attainment -------------------------------------------------------------------------------


def hand_history() -> ScoreHistory:
    """North (m1, m2) and south (m3) in July and August, two KPIs each.

    new_clients met: July m1 yes, m2 no, m3 no data; August m1 no, m2 no, m3 yes. The shared
    department goal ``dept`` counts for every manager: north met it in July only.
    """
    rows = [
        ("m1", JULY, "new_clients", True, 1.0),
        ("m2", JULY, "new_clients", False, 0.5),
        ("m3", JULY, "new_clients", None, math.nan),
        ("m1", AUGUST, "new_clients", False, 0.5),
        ("m2", AUGUST, "new_clients", False, 0.0),
        ("m3", AUGUST, "new_clients", True, 1.2),
        ("m1", JULY, "dept", True, 1.1),
        ("m2", JULY, "dept", True, 1.1),
        ("m3", JULY, "dept", False, 0.9),
        ("m1", AUGUST, "dept", False, 0.8),
        ("m2", AUGUST, "dept", False, 0.8),
        ("m3", AUGUST, "dept", False, 0.7),
    ]
    kpis = pd.DataFrame(rows, columns=["manager_id", "period", "kpi", "met", "attainment"])
    kpis = kpis.assign(label=kpis["kpi"].map({"new_clients": "New clients", "dept": "Dept"}))
    managers = pd.DataFrame(
        [(m, p, d) for p in (JULY, AUGUST) for m, d in (("m1", "north"), ("m2", "north"),
                                                         ("m3", "south"))],
        columns=["manager_id", "period", "department_id"],
    )  # fmt: skip
    departments = pd.DataFrame(
        [("north", "North", p) for p in (JULY, AUGUST)], columns=["department_id", "name", "period"]
    )
    return ScoreHistory((JULY, AUGUST), (), kpis, pd.DataFrame(), managers, departments)


def test_attainment_counts_the_managers_meeting_each_kpi_per_department_and_month():
    table = attainment_by_month(hand_history(), [JULY, AUGUST])
    assert ATTAINMENT_COLUMNS == list(table.columns)
    got = {
        (d, f"{m:%Y-%m}", k): (s, a, n)
        for d, m, k, s, a, n in table[
            ["department_id", "month", "kpi", "share_met", "mean_attainment", "n"]
        ].itertuples(index=False)
    }
    assert (0.5, 0.75, 2) == got[("north", "2026-07", "new_clients")]
    assert (1.0, 1.1, 2) == pytest.approx(got[("north", "2026-07", "dept")])
    assert (0.0, 0.25, 2) == got[("north", "2026-08", "new_clients")]
    assert got[("south", "2026-07", "new_clients")][2] == 0  # nobody with data: no share
    assert math.isnan(got[("south", "2026-07", "new_clients")][0])
    assert (1.0, 1.2, 1) == got[("south", "2026-08", "new_clients")]
    assert ["North", "south"] == list(table["department"].drop_duplicates())
    assert ["new_clients", "dept"] == list(table["kpi"].iloc[:2])  # the scheme's order


def test_attainment_of_a_month_outside_the_history_is_refused():
    with pytest.raises(KeyError, match="2026-09"):
        attainment_by_month(hand_history(), [AUGUST, SEPTEMBER])


# --- sentences and the table on hand-made figures ---------------------------------------------


def _attainment(rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["department_id", "month", "kpi", "share_met", "n"])
    return frame.assign(
        department=frame["department_id"].str.title(),
        label=frame["kpi"],
        mean_attainment=math.nan,
    )[ATTAINMENT_COLUMNS]


def test_the_same_change_in_every_department_is_one_sentence_with_the_pooled_share():
    in_use = [
        *_in_use({JULY: CURRENT, AUGUST: AUGUST_SCHEME}, "north"),
        *_in_use({JULY: CURRENT, AUGUST: AUGUST_SCHEME}, "south"),
    ]
    # new clients met: July north 2 of 4, south 1 of 2; August north 1 of 4, south 0 of 2.
    attainment = _attainment(
        [
            ("north", JULY, "new_clients", 0.5, 4),
            ("south", JULY, "new_clients", 0.5, 2),
            ("north", AUGUST, "new_clients", 0.25, 4),
            ("south", AUGUST, "new_clients", 0.0, 2),
        ]
    )
    sentences = stability_sentences(in_use, scheme_changes(in_use), attainment)
    assert [
        "Every department raised the new clients target from 2 to 3 in 2026-08 (a harder "
        "target); the share of managers meeting it went from 50.0% in 2026-07 to 16.7%.",
        "Every department re-weighted the KPIs in 2026-08: new clients from 30.0% to 40.0%, "
        "on-time delivery from 13.3% to 10.0%, fulfilment days from 13.3% to 10.0%, response "
        "hours from 13.3% to 10.0%.",
    ] == sentences


def test_unchanged_recorded_months_say_so_with_the_schemes_name():
    in_use = _in_use({JULY: CURRENT, AUGUST: CURRENT, SEPTEMBER: CURRENT})
    assert [
        "Targets and weights did not change in 2026Q3 (every month ran on the recorded scheme "
        "'Sales funnel (source documents)')."
    ] == stability_sentences(in_use, scheme_changes(in_use), _attainment([]))
    assert stability_sentences(in_use, scheme_changes(in_use), _attainment([]), "Q3")[0].startswith(
        "Targets and weights did not change in Q3 ("
    )


def test_a_lower_is_better_target_raised_is_an_easier_one():
    data = CURRENT.model_dump(mode="json", exclude_none=True)
    data["goals"][2]["kpis"][2]["target"]["value"] = 12  # response within 12 hours, not 8
    in_use = _in_use({JULY: CURRENT, AUGUST: Scheme.model_validate(data)})
    attainment = _attainment(
        [("north", JULY, "response_hours", 0.5, 4), ("north", AUGUST, "response_hours", 1.0, 4)]
    )
    assert [
        "North raised the response hours target from 8.0 h to 12.0 h in 2026-08 (an easier "
        "target); the share of managers meeting it went from 50.0% in 2026-07 to 100.0%."
    ] == stability_sentences(in_use, scheme_changes(in_use), attainment)


# --- the demo data ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crm(source):
    return read_source(source)


@pytest.fixture(scope="module")
def tuned_quarter(tmp_path_factory, crm):
    """North's quarter: July and August recorded (August with 3 new clients and the new-clients
    goal at 40%), September never recorded; scored under the schemes in use."""
    reports = tmp_path_factory.mktemp("reports")
    record(reports, JULY, "north", CURRENT)
    record(reports, AUGUST, "north", AUGUST_SCHEME)
    months = quarter_months(QUARTER)
    in_use = schemes_in_use(read_recorded_results(reports, months, ["north"]), months, ["north"],
                            CURRENT)  # fmt: skip
    attainment = attainment_by_month(score_in_use(crm, in_use), months)
    return in_use, scheme_changes(in_use), attainment


def _share_meeting(crm, month: pd.Period, target: float) -> float:
    """North's managers with at least `target` new clients in the month (current-scheme actuals)."""
    rows = score_months(crm, CURRENT, [month], "north").manager_kpis
    actual = rows.loc[rows["kpi"].eq("new_clients"), "actual"].dropna()
    return float((actual >= target).mean())


def test_tuned_quarter_changes_sources_and_sentences(crm, tuned_quarter):
    in_use, changes, attainment = tuned_quarter
    assert [
        "recorded in reports/monthly/2026-07/north.kpis.json",
        "recorded in reports/monthly/2026-08/north.kpis.json",
        "current scheme file (no recorded report for 2026-09)",
    ] == [item.source for item in in_use]
    # September is read with the current file: no change is claimed to or from it.
    targets = changes.loc[changes["what"].eq("target")]
    assert [(AUGUST, 2, 3)] == list(targets[["month", "before", "after"]].itertuples(index=False))
    new_weights = changes.loc[changes["what"].eq("weight") & changes["kpi"].eq("new_clients")]
    assert [(AUGUST, 0.3, 0.4)] == list(
        new_weights[["month", "before", "after"]].itertuples(index=False)
    )
    july, august = _share_meeting(crm, JULY, 2), _share_meeting(crm, AUGUST, 3)
    sentences = stability_sentences(
        in_use, changes, attainment, QUARTER, scheme_label="sales_funnel.yaml"
    )
    assert (
        "North raised the new clients target from 2 to 3 in 2026-08 (a harder target); the share "
        f"of managers meeting it went from {fmt(july, 'share')} in 2026-07 to "
        f"{fmt(august, 'share')}."
    ) == sentences[0]
    assert sentences[1].startswith("North re-weighted the KPIs in 2026-08: new clients from 30.0%")
    assert (
        "No recorded report gives the scheme in use for 2026-09 (North), so the current scheme "
        "file 'sales_funnel.yaml' stands in there, and changes of targets and weights to and "
        "from those months cannot be seen."
    ) == sentences[-1]
    assert 3 == len(sentences)


def test_tuned_quarter_is_judged_against_each_months_own_target(crm, tuned_quarter):
    _, _, attainment = tuned_quarter
    shares = attainment.loc[attainment["kpi"].eq("new_clients")].set_index("month")["share_met"]
    assert _share_meeting(crm, AUGUST, 3) == shares[AUGUST]
    assert _share_meeting(crm, JULY, 2) == shares[JULY]


def test_tuned_quarter_table_marks_the_changes(tuned_quarter):
    in_use, changes, attainment = tuned_quarter
    table = stability_table(changes, attainment, in_use)
    assert TABLE_COLUMNS == list(table.columns)
    assert 6 * 3 == len(table)
    assert all(isinstance(cell, str) for cell in table.to_numpy().ravel())
    new_clients = table.loc[table["KPI"].eq("New clients")].set_index("Month")
    assert ["2", "3", "2"] == list(new_clients["Target"])
    assert ["30.0%", "40.0%", "30.0%"] == list(new_clients["Weight"])
    assert [
        "",
        "target 2 \u2192 3; weight 30.0% \u2192 40.0%",
        "",
    ] == list(new_clients["Change"])
    assert ["recorded", "recorded", "current file"] == list(new_clients["Scheme"])
    growth = table.loc[table["KPI"].eq("Sales growth over baseline"), "Target"].iloc[0]
    assert "+10.0% over the baseline; star: +20.0% over the baseline" == growth


def test_demo_without_recorded_reports_falls_back_to_the_current_scheme_and_says_so(tmp_path, crm):
    months = quarter_months(QUARTER)
    recorded = read_recorded_results(tmp_path, months, SALES)
    in_use = schemes_in_use(recorded, months, SALES, CURRENT)
    assert 12 == len(in_use)
    assert all(not item.recorded and item.scheme == CURRENT for item in in_use)
    changes = scheme_changes(in_use)
    assert changes.empty
    attainment = attainment_by_month(score_months(crm, CURRENT, months), months)
    assert [
        "No month in 2026Q3 has a recorded report of the scheme it ran on, so the current "
        "scheme file 'Sales funnel (source documents)' stands in for every month: changes of "
        "targets and weights made during the period cannot be seen."
    ] == stability_sentences(in_use, changes, attainment)
    table = stability_table(changes, attainment, in_use)
    assert 4 * 6 * 3 == len(table)
    assert {""} == set(table["Change"])
    assert {"current file"} == set(table["Scheme"])


def test_demo_attainment_shows_the_planted_logistics_slip_and_recovery(crm):
    months = quarter_months(QUARTER)
    attainment = attainment_by_month(score_months(crm, CURRENT, months), months)
    on_time = attainment.loc[attainment["kpi"].eq("on_time_delivery")]
    assert set(SALES) == set(on_time["department_id"])
    by_month = on_time.groupby("month").apply(
        lambda rows: (rows["share_met"] * rows["n"]).sum() / rows["n"].sum()
    )
    # Deliveries promised 2026-06 to 2026-08 are on time 75% of the time, afterwards 97%.
    assert by_month[JULY] < 0.5 and by_month[AUGUST] < 0.5
    assert by_month[SEPTEMBER] > 0.8
    for _, rows in on_time.groupby("department_id"):
        shares = rows.set_index("month")["share_met"]
        assert shares[SEPTEMBER] > max(shares[JULY], shares[AUGUST])


def test_scoring_under_the_schemes_in_use_matches_one_scheme_where_they_agree(crm):
    in_use = [
        SchemeInUse(AUGUST, department_id, AUGUST_SCHEME if department_id == "north" else CURRENT,
                    "recorded")
        for department_id in SALES
    ]  # fmt: skip
    mixed = attainment_by_month(score_in_use(crm, in_use), [AUGUST])
    one = attainment_by_month(score_months(crm, CURRENT, [AUGUST]), [AUGUST])
    others = one.loc[one["department_id"].ne("north")].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        others, mixed.loc[mixed["department_id"].ne("north")].reset_index(drop=True)
    )
    north = mixed.loc[mixed["department_id"].eq("north")].set_index("kpi")
    assert _share_meeting(crm, AUGUST, 3) == north.at["new_clients", "share_met"]
    assert set(SALES) == set(mixed["department_id"])
