"""Parameter and KPI scheme files: strict validation, merging and the shipped YAML."""

# STYLE.md: asserts read `expected == actual`, which ruff's SIM300 calls a Yoda condition.

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from kpilib.errors import ParamsError
from kpilib.io import read_yaml
from kpilib.params import (
    Baseline,
    RunParams,
    effective_scheme,
    load_run_params,
    load_scheme,
    parse_overrides,
    scheme_path,
)

PARAMS = Path(__file__).resolve().parents[1] / "params"
FUNNEL = PARAMS / "schemes" / "sales_funnel.yaml"
SHIPPED = sorted([*PARAMS.glob("**/*.yaml"), *PARAMS.glob("**/*.yml")])
MARCH = pd.Period("2025-03", freq="M")


def scheme_error(tmp_path: Path, old: str, new: str) -> str:
    """The ParamsError message for the sales funnel scheme with `old` replaced by `new`."""
    text = FUNNEL.read_text(encoding="utf-8")
    assert old in text, f"{old!r} is no longer in {FUNNEL.name}; update the test"
    path = tmp_path / "scheme.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ParamsError) as raised:
        load_scheme(path)
    message = str(raised.value)
    assert str(path) in message
    return message


def params_dir(tmp_path: Path, base: str, **departments: str) -> Path:
    (tmp_path / "departments").mkdir()
    (tmp_path / "base.yaml").write_text(base, encoding="utf-8")
    for name, text in departments.items():
        (tmp_path / "departments" / f"{name}.yaml").write_text(text, encoding="utf-8")
    return tmp_path


# --- the shipped files ------------------------------------------------------------------------


def test_the_params_folder_ships_yaml_files():
    assert {"base.yaml", "sales_funnel.yaml"} <= {path.name for path in SHIPPED}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: str(path.relative_to(PARAMS)))
def test_every_shipped_yaml_file_loads_and_validates(path):
    kind = path.relative_to(PARAMS).parts[0]
    if kind == "schemes":
        assert load_scheme(path).goals
    elif kind == "departments":
        # A department's run: base.yaml merged with its file, and the scheme it names.
        assert effective_scheme(PARAMS, load_run_params(PARAMS, path.stem)).goals
    elif path.name == "base.yaml":
        assert RunParams.model_validate(read_yaml(path))
    else:
        pytest.fail(f"{path} is validated by no test: teach this test which loader it needs")


def test_the_base_parameters_point_at_a_scheme_that_loads():
    run = load_run_params(PARAMS)
    assert (True, "RUB") == (scheme_path(PARAMS, run).is_file(), run.currency)
    assert effective_scheme(PARAMS, run).goals


def test_the_sales_funnel_scheme_expresses_the_documents_kpi_system():
    scheme = load_scheme(FUNNEL)
    assert [0.3, 0.3, 0.4] == [goal.weight for goal in scheme.goals]
    kpis = {kpi.key: kpi for _, kpi, _ in scheme.weighted_kpis()}
    assert ("department", "increase", 100_000) == (
        kpis["department_sales_increase"].level,
        kpis["department_sales_increase"].target.type,
        kpis["department_sales_increase"].target.value,
    )
    growth = kpis["manager_sales_growth"].target
    assert ("relative", 0.10, 0.20) == (
        growth.type,
        growth.value_for("regular"),
        growth.value_for("star"),
    )
    assert ({"min_contract": 1_500_000}, 2) == (
        kpis["new_clients"].params,
        kpis["new_clients"].target.value,
    )
    service = {
        key: (kpis[key].direction, kpis[key].target.value)
        for key in ("on_time_delivery", "fulfilment_days", "response_hours")
    }
    assert {
        "on_time_delivery": ("higher", 0.95),
        "fulfilment_days": ("lower", 4),
        "response_hours": ("lower", 8),
    } == service
    assert 1_500 == scheme.technical_hour_cost


def test_scheme_weights_of_all_kpis_add_up_to_one():
    assert pytest.approx(1.0) == sum(weight for _, _, weight in load_scheme(FUNNEL).weighted_kpis())


def test_scheme_settings_carry_kpi_parameters_and_year_ago_baseline():
    settings = load_scheme(FUNNEL).settings(MARCH)
    assert (1_500_000, 1_500, (pd.Period("2024-03", "M"),)) == (
        settings.min_contract,
        settings.technical_hour_cost,
        settings.baseline,
    )


def test_a_trailing_baseline_is_the_months_before_the_period():
    expected = (pd.Period("2024-12", "M"), pd.Period("2025-01", "M"), pd.Period("2025-02", "M"))
    assert expected == Baseline(method="trailing", months=3).months_for(MARCH)


# --- a broken scheme --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("default_cap: 1.2", "default_cap: 1.2\ncolour: red", "colour"),
        ("method: year_ago", "method: year_ago\n  mnths: 3", "baseline.mnths"),
        (
            "target: {type: absolute, value: 4}",
            "target: {type: absolute, value: 4, unit: d}",
            "goals.2.kpis.1.target.unit",
        ),
        (
            "metric: response_hours",
            "metric: response_hours\n        colour: red",
            "goals.2.kpis.2.colour",
        ),
    ],
    ids=["top-level", "nested", "deep", "in-a-kpi"],
)
def test_an_unknown_key_at_any_depth_names_the_file_and_key_path(tmp_path, old, new, key):
    message = scheme_error(tmp_path, old, new)
    assert f": {key}: Extra inputs are not permitted" in message


def test_goal_weights_not_summing_to_one_are_refused(tmp_path):
    assert "goal weights sum to 1.1, not 1" in scheme_error(
        tmp_path, "weight: 0.40", "weight: 0.50"
    )


def test_kpi_weights_within_a_goal_not_summing_to_one_are_refused(tmp_path):
    message = scheme_error(
        tmp_path,
        "      - id: on_time_delivery\n",
        "      - id: on_time_delivery\n        weight: 0.5\n",
    )
    assert "goals.2: Value error, give every KPI of the goal a weight, or none" in message


def test_an_unknown_metric_is_refused_naming_it(tmp_path):
    message = scheme_error(tmp_path, "metric: response_hours", "metric: response_time")
    assert "goals.2.kpis.2.metric: Value error, unknown metric 'response_time'" in message


def test_an_unknown_kpi_parameter_is_refused_naming_it(tmp_path):
    message = scheme_error(
        tmp_path,
        "params: {min_contract: 1500000}",
        "params: {min_contract: 1500000, max_contract: 1}",
    )
    assert "goals.1.kpis.0: Value error, unknown parameter(s) ['max_contract']" in message


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("name: Increase sales volume", 'name: ""', "goals.0.name"),
        ("      - id: new_clients\n", '      - id: ""\n', "goals.1.kpis.0.id"),
        ("name: Sales funnel (source documents)", "name: ''", "name"),
    ],
    ids=["goal-name", "kpi-id", "scheme-name"],
)
def test_an_empty_string_value_is_refused_naming_its_key(tmp_path, old, new, key):
    message = scheme_error(tmp_path, old, new)
    assert f": {key}: String should have at least 1 character" in message


def test_a_wrong_type_is_refused_naming_its_key(tmp_path):
    message = scheme_error(tmp_path, "weight: 0.40", "weight: forty")
    assert ": goals.2.weight: Input should be a valid number" in message


def test_a_scheme_that_is_not_a_mapping_is_refused(tmp_path):
    path = tmp_path / "scheme.yaml"
    path.write_text("- goals\n")
    with pytest.raises(ParamsError, match=re.escape(str(path))):
        load_scheme(path)


# --- run parameters ---------------------------------------------------------------------------


def test_run_params_merge_base_then_department_then_overrides(tmp_path):
    folder = params_dir(
        tmp_path,
        "currency: RUB\ntrend_months: 12\ndepartment_name: Sales\n",
        north="currency: EUR\ntrend_months: 6\n",
    )
    run = load_run_params(folder, "north", {"trend_months": "3"})
    assert ("EUR", 3, "Sales") == (run.currency, run.trend_months, run.department_name)


def test_a_department_without_its_own_file_gets_the_base(tmp_path):
    folder = params_dir(tmp_path, "currency: USD\n", north="currency: EUR\n")
    assert "USD" == load_run_params(folder, "south").currency


def test_an_override_of_the_wrong_type_names_set_and_the_key(tmp_path):
    folder = params_dir(tmp_path, "trend_months: 12\n")
    with pytest.raises(
        ParamsError, match=r"- --set: trend_months: Input should be a valid integer"
    ):
        load_run_params(folder, None, {"trend_months": "many"})


def test_an_unknown_key_in_a_department_file_names_that_file(tmp_path):
    folder = params_dir(tmp_path, "currency: RUB\n", north="trend_mnths: 6\n")
    path = folder / "departments" / "north.yaml"
    with pytest.raises(ParamsError, match=re.escape(f"- {path}: trend_mnths: Extra inputs")):
        load_run_params(folder, "north")


def test_an_unknown_override_key_names_set(tmp_path):
    folder = params_dir(tmp_path, "currency: RUB\n")
    with pytest.raises(ParamsError, match=r"- --set: colour: Extra inputs are not permitted"):
        load_run_params(folder, None, {"colour": "red"})


def test_an_empty_value_in_a_department_file_is_refused_naming_file_and_key(tmp_path):
    folder = params_dir(tmp_path, "technical_hour_cost: 2000\n", north="technical_hour_cost:\n")
    path = folder / "departments" / "north.yaml"
    with pytest.raises(ParamsError, match=re.escape(f"- {path}: technical_hour_cost")):
        load_run_params(folder, "north")


def test_the_run_hourly_cost_overrides_the_schemes(tmp_path):
    folder = params_dir(tmp_path, f"scheme: {FUNNEL}\ntechnical_hour_cost: 2000\n")
    assert 2000 == effective_scheme(folder, load_run_params(folder)).technical_hour_cost


# --- --set key=value --------------------------------------------------------------------------


def test_parse_overrides_splits_at_the_first_equals_sign_and_keeps_values_as_text():
    expected = {"currency": "EUR", "trend_months": "6", "department_name": "a=b", "scheme": ""}
    assert expected == parse_overrides(
        ["currency=EUR", " trend_months =6", "department_name=a=b", "scheme="]
    )


@pytest.mark.parametrize("pair", ["currency", "=EUR", " =EUR"])
def test_parse_overrides_refuses_a_pair_without_a_key(pair):
    with pytest.raises(ParamsError, match=re.escape(f"--set {pair!r} must look like key=value")):
        parse_overrides([pair])
