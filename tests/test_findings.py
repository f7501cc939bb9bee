"""The findings that open a monthly report, checked against the demo's planted effects."""

from __future__ import annotations

from kpilib import paths
from kpilib.demo import DemoConfig, ground_truth
from kpilib.findings import findings
from kpilib.monthly import prepare_monthly

SCHEME = str(paths.DEFAULT_SCHEME)


def _name(report, manager_id: str) -> str:
    return report.crm.managers.set_index("manager_id")["name"][manager_id]


def test_findings_name_the_high_revenue_low_profit_manager(report):
    truth = ground_truth(DemoConfig())
    text = " ".join(findings(report))
    assert _name(report, truth.high_hours_manager_id) in text
    assert "net profit" in text


def test_findings_open_with_the_department_score(report):
    assert findings(report)[0].startswith("North's weighted KPI score for September 2026 is")


def test_findings_show_the_planted_logistics_slip_as_an_on_time_delivery_miss(source):
    truth = ground_truth(DemoConfig())
    month = truth.slip_months[1]
    slipping = prepare_monthly(department="north", period=month, data=str(source), scheme=SCHEME)
    [sentence] = [s for s in findings(slipping) if s.startswith("On-time delivery missed")]
    assert "against 95.0%) because Logistics slipped" in sentence


def test_findings_explain_a_summed_department_target(report):
    text = " ".join(findings(report))
    assert "New clients missed" in text
    assert "(the sum of its managers' targets)" in text


def test_findings_say_for_how_many_months_a_kpi_has_been_missed(source):
    truth = ground_truth(DemoConfig())
    last = truth.slip_months[-1]
    slipping = prepare_monthly(department="north", period=last, data=str(source), scheme=SCHEME)
    [sentence] = [s for s in findings(slipping) if s.startswith("On-time delivery missed")]
    # The slip lasts three months; the department register counts each consecutive miss.
    register = slipping.history.department_kpis
    on_time = register.loc[register["kpi"].eq("on_time_delivery")].set_index("period")["met"]
    running = 0
    for met in on_time[::-1]:
        if met is not False:
            break
        running += 1
    assert running >= len(truth.slip_months)
    assert f"On-time delivery missed for {running} months running (" in sentence
