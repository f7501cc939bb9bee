"""Parameter and KPI scheme files: strict validation, merging and the shipped YAML."""

# STYLE.md: asserts read `expected == actual`, which ruff's SIM300 calls a Yoda condition.

from __future__ import annotations

import ast
import re
from pathlib import Path

import pandas as pd
import pytest
from papermill.iorw import load_notebook_node
from papermill.parameterize import parameterize_notebook

from kpilib import paths
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
from kpilib.render import declared_parameters
from kpilib.runner import monthly_jobs, quarterly_jobs

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


@pytest.mark.parametrize(
    "pair",
    [
        "x; import os=1",
        "__import__('os').system('id')=1",
        "trend_months; import os=3",
        "1x=2",
        "a.b=1",
        "trend months=3",
        "class=1",
        "tr\u00e9nd_months=3",
    ],
)
def test_parse_overrides_refuses_a_key_that_is_not_a_name_naming_it(pair):
    key = pair.partition("=")[0].strip()
    with pytest.raises(ParamsError) as raised:
        parse_overrides([pair])
    assert f"--set {pair!r}: {key!r} is not a parameter name" in str(raised.value)


def test_an_override_key_the_run_does_not_know_is_refused_naming_set_and_key(tmp_path):
    folder = params_dir(tmp_path, "currency: RUB\n")
    with pytest.raises(ParamsError, match=r"- --set: results_path: Extra inputs are not permitted"):
        load_run_params(folder, None, parse_overrides(["results_path=/etc/passwd"]))


def test_an_unknown_key_in_the_base_file_names_that_file(tmp_path):
    folder = params_dir(tmp_path, "currency: RUB\ncolour: red\n")
    with pytest.raises(ParamsError, match=re.escape(f"- {folder / 'base.yaml'}: colour: Extra")):
        load_run_params(folder)


# --- values fit their key's type -------------------------------------------------------------

CODE = "1); import os; os.system('id'); ("


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("trend_months", "Input should be a valid integer"),
        ("link_months", "Input should be a valid integer"),
        ("technical_hour_cost", "Input should be a valid number"),
    ],
)
def test_code_given_for_a_number_is_refused_naming_set_and_the_key(tmp_path, key, message):
    folder = params_dir(tmp_path, "currency: RUB\n")
    with pytest.raises(ParamsError, match=re.escape(f"- --set: {key}: {message}")):
        load_run_params(folder, None, parse_overrides([f"{key}={CODE}"]))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("inf", "Input should be a finite number"),
        ("-inf", "Input should be a finite number"),
        ("nan", "Input should be a finite number"),
        ("1e400", "Input should be a finite number"),
        ("0x1F", "Input should be a valid number"),
    ],
)
def test_an_override_that_is_not_a_finite_number_is_refused(tmp_path, text, message):
    folder = params_dir(tmp_path, "currency: RUB\n")
    with pytest.raises(ParamsError, match=re.escape(f"- --set: technical_hour_cost: {message}")):
        load_run_params(folder, None, {"technical_hour_cost": text})


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("technical_hour_cost: .inf", "Input should be a finite number"),
        ("technical_hour_cost: .nan", "Input should be a finite number"),
        ("technical_hour_cost: true", "Value error, true/false is not a number"),
        ("trend_months: true", "Value error, true/false is not a number"),
        ("trend_months: yes", "Input should be a valid integer"),
        ("trend_months: 6.5", "Input should be a valid integer"),
        ("currency: true", "Input should be a valid string"),
    ],
)
def test_a_yaml_value_of_the_wrong_kind_is_refused_naming_file_and_key(tmp_path, line, message):
    folder = params_dir(tmp_path, f"{line}\n")
    key = line.partition(":")[0]
    with pytest.raises(ParamsError, match=re.escape(f"- {folder / 'base.yaml'}: {key}: {message}")):
        load_run_params(folder)


@pytest.mark.parametrize(
    "text",
    [
        "007",
        "NO",
        "on",
        "off",
        "yes",
        "y",
        "0755",
        "0x1F",
        "1_000",
        "1e3",
        "1.50",
        "2024",
        "2024-01-01",
    ],
)
def test_text_keys_keep_what_the_yaml_says(tmp_path, text):
    folder = params_dir(tmp_path, f"currency: {text}\n", north=f"department_name: {text}\n")
    run = load_run_params(folder, "north")
    assert (text, text) == (run.currency, run.department_name)


def test_numbers_from_yaml_and_set_are_plain_numbers_of_their_key(tmp_path):
    folder = params_dir(tmp_path, "trend_months: 6\ntechnical_hour_cost: 1.50e3\nlink_months: 9\n")
    run = load_run_params(folder, None, {"link_months": "12"})
    actual = [(type(v), v) for v in (run.trend_months, run.technical_hour_cost, run.link_months)]
    assert [(int, 6), (float, 1500.0), (int, 12)] == actual


def test_code_given_for_a_text_key_stays_plain_text(tmp_path):
    folder = params_dir(tmp_path, "currency: RUB\n")
    run = load_run_params(folder, None, parse_overrides([f"department_name={CODE}"]))
    assert CODE == run.department_name


def test_scheme_names_and_ids_keep_what_the_yaml_says(tmp_path):
    text = FUNNEL.read_text(encoding="utf-8")
    text = text.replace("name: Increase sales volume", "name: 2024", 1)
    text = text.replace("- id: new_clients\n", "- id: 007\n", 1)
    text = text.replace("by_tier: {star: 0.20}", "by_tier: {1: 0.20}", 1)
    path = tmp_path / "scheme.yaml"
    path.write_text(text, encoding="utf-8")
    scheme = load_scheme(path)
    growth = scheme.goals[0].kpis[1].target
    assert ("2024", "007", {"1": 0.2}) == (
        scheme.goals[0].name,
        scheme.goals[1].id,
        growth.by_tier,
    )


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("value: 100000}", "value: .inf}", "goals.0.kpis.0.target.value: Input should be a finite"),
        ("value: 2}", "value: true}", "goals.1.kpis.0.target.value: Value error, true/false"),
        ("weight: 0.40", "weight: .nan", "goals.2.weight: Input should be a finite number"),
        ("{star: 0.20}", "{star: .inf}", "target.by_tier.star: Input should be a finite number"),
        ("{min_contract: 1500000}", "{min_contract: yes}", "params.min_contract: Input should be"),
    ],
)
def test_a_scheme_number_that_is_not_a_finite_number_is_refused(tmp_path, old, new, message):
    assert message in scheme_error(tmp_path, old, new)


# --- what papermill receives -----------------------------------------------------------------


def injected_cell(notebook: Path, parameters: dict) -> str:
    """The parameters cell papermill would inject into `notebook` for `parameters`."""
    nb = parameterize_notebook(load_notebook_node(str(notebook)), parameters)
    [cell] = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    return cell.source


HOSTILE_TEXT = [
    CODE,
    '"; import os; os.system("id"); "',
    "'''\nimport os\n'''",
    '\\"); import os; #',
    "x\\",
    "line\nbreak\r\x00",
    "\u0412\u043e\u0441\u0442\u043e\u043a {x} %s",
]


@pytest.mark.parametrize(
    ("notebook", "plan"),
    [(paths.MONTHLY_NOTEBOOK, monthly_jobs), (paths.QUARTERLY_NOTEBOOK, quarterly_jobs)],
    ids=["monthly", "quarterly"],
)
@pytest.mark.parametrize("text", HOSTILE_TEXT)
def test_papermill_injects_hostile_text_only_as_quoted_constants(tmp_path, notebook, plan, text):
    (tmp_path / "params").mkdir()
    folder = params_dir(
        tmp_path / "params",
        f"scheme: {FUNNEL}\ntechnical_hour_cost: 1.50e3\ntrend_months: 6\nlink_months: 9\n",
    )
    period = pd.Period("2026-09", "M") if plan is monthly_jobs else pd.Period("2026Q3", "Q")
    overrides = {"department_name": text, "currency": text}
    jobs, failed = plan(["north"], period, tmp_path, folder, tmp_path / "reports", overrides)
    assert [] == failed
    declared = declared_parameters(notebook)
    for job in jobs:
        tree = ast.parse(injected_cell(notebook, job.parameters))
        assigned = {}
        for statement in tree.body:
            assert isinstance(statement, ast.Assign), ast.dump(statement)
            [target] = statement.targets
            assert isinstance(target, ast.Name) and isinstance(statement.value, ast.Constant)
            assigned[target.id] = statement.value.value
        assert job.parameters == assigned
        # Every value has the type the notebook declares for it (None: no type to check).
        assert {
            name: kind for name, kind in declared.items() if name in assigned and kind != "None"
        } == {name: type(assigned[name]).__name__ for name in assigned if declared[name] != "None"}
    assert text == jobs[0].parameters["department_name"]
