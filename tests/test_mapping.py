"""YAML mappings from a CRM export's own shape to the data contract."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from kpilib.errors import DataContractError, ParamsError
from kpilib.io import read_raw, read_source, read_workbook
from kpilib.mapping import (
    Mapping,
    SourceSpec,
    load_mapping,
    map_tables,
    read_file_source,
    read_mapped,
    read_mapped_folder,
)

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
MAVEN_MAPPING = Path(__file__).resolve().parents[1] / "mappings" / "maven_crm.yaml"

# A small export in a shape of its own: agents in teams.csv, deals in pipeline.csv.
TEAMS = "agent,office\nann,North\nbob,North\ncid,South\n"
PIPELINE = (
    "id,agent,status,opened,closed,value\n"
    "1,ann,Won,2025-03-01,2025-03-05,100\n"
    "2,bob,Lost,2025-03-02,2025-03-06,0\n"
    "3,cid,Engaging,2025-03-03,,\n"
    "4,ann,Prospecting,,,\n"
)
MAPPING = """
name: small
sources:
  teams: {file: teams.csv}
  pipeline: {file: pipeline.csv}
tables:
  departments:
    from: teams
    distinct: true
    columns: {department_id: office, kind: {constant: sales}}
  managers:
    from: teams
    columns: {manager_id: agent, department_id: office}
  deals:
    from: pipeline
    skip:
      - reason: prospecting deals without an open date
        where: {status: Prospecting, opened: null}
    columns:
      deal_id: id
      manager_id: agent
      stage: {column: status, values: {Won: won, Lost: lost, Engaging: open}}
      created_on: opened
      closed_on: closed
      amount: {column: value, default: 0}
"""


def write(folder: Path, files: dict[str, str], encoding: str = "utf-8") -> Path:
    """Write text files into `folder` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding=encoding)
    return folder


def mapping_of(tmp_path: Path, text: str) -> Mapping:
    """Load a mapping written as YAML text."""
    path = tmp_path / "mapping.yaml"
    path.write_text(text, encoding="utf-8")
    return load_mapping(path)


def small_export(tmp_path: Path, **changed: str) -> Path:
    """The small export; keyword arguments replace its files' texts."""
    files = {"teams.csv": TEAMS, "pipeline.csv": PIPELINE}
    return write(tmp_path / "export", {**files, **{f"{k}.csv": v for k, v in changed.items()}})


def frames(**tables: str) -> dict[str, pd.DataFrame]:
    """In-memory sources from CSV texts, read as text like a file source."""
    return {
        name: pd.read_csv(
            pd.io.common.StringIO(text), dtype=str, keep_default_na=False, na_values=[""]
        )
        for name, text in tables.items()
    }


def fetcher(sources: dict[str, pd.DataFrame]):
    """A fetch function serving in-memory sources by name."""
    return lambda name, spec: sources[name]


def problem_lines(message: str) -> list[str]:
    return [line for line in message.splitlines() if line.startswith("- ")]


# --- a small export end to end ---------------------------------------------------------------


def test_a_mapped_folder_validates_with_every_row_accounted_for(tmp_path):
    crm = read_mapped_folder(small_export(tmp_path), mapping_of(tmp_path, MAPPING))
    assert ["North", "South"] == crm.departments["department_id"].tolist()
    assert ["sales", "sales"] == crm.departments["kind"].tolist()
    assert ["1", "2", "3"] == crm.deals["deal_id"].tolist()
    assert ["won", "lost", "open"] == crm.deals["stage"].tolist()
    assert [100.0, 0.0, 0.0] == crm.deals["amount"].tolist()
    assert crm.notes[:3] == (
        "departments: 1 duplicate row(s) removed (distinct).",
        "deals: 1 row(s) skipped: prospecting deals without an open date",
        "deals.amount: 1 empty cell(s) filled with '0'.",
    )
    assert f"{tmp_path / 'export'} (mapping small)" == crm.source


def test_a_conditional_default_fills_only_the_rows_it_names(tmp_path):
    # An open deal has no value yet (0); a won deal without one is a gap in the export.
    pipeline = PIPELINE.replace(
        "1,ann,Won,2025-03-01,2025-03-05,100", "1,ann,Won,2025-03-01,2025-03-05,"
    )
    conditional = MAPPING.replace(
        "amount: {column: value, default: 0}",
        "amount: {column: value, default: 0, default_where: {status: [Engaging, Prospecting]}}",
    )
    with pytest.raises(DataContractError) as raised:
        read_mapped_folder(
            small_export(tmp_path, pipeline=pipeline), mapping_of(tmp_path, conditional)
        )
    assert ["- deals.amount: value is required: 1 row(s): row 1"] == problem_lines(
        str(raised.value)
    )
    crm = read_mapped_folder(small_export(tmp_path), mapping_of(tmp_path, conditional))
    assert [100.0, 0.0, 0.0] == crm.deals["amount"].tolist()
    assert (
        "deals.amount: 1 empty cell(s) filled with '0' where status is 'Engaging' or 'Prospecting'."
    ) in crm.notes


def test_a_conditional_default_on_a_column_the_source_lacks_is_a_problem(tmp_path):
    conditional = MAPPING.replace(
        "amount: {column: value, default: 0}",
        "amount: {column: value, default: 0, default_where: {phase: open}}",
    )
    with pytest.raises(DataContractError, match="default_where: source 'pipeline'"):
        read_mapped_folder(small_export(tmp_path), mapping_of(tmp_path, conditional))


def test_the_fingerprint_covers_the_files_and_the_mapping(tmp_path):
    export = small_export(tmp_path)
    first = read_mapped_folder(export, mapping_of(tmp_path, MAPPING)).fingerprint
    again = read_mapped_folder(export, mapping_of(tmp_path, MAPPING)).fingerprint
    other_rules = read_mapped_folder(
        export, mapping_of(tmp_path, MAPPING.replace("default: 0", "default: 1"))
    ).fingerprint
    other_data = read_mapped_folder(
        small_export(tmp_path / "b", pipeline=PIPELINE.replace(",100", ",101")),
        mapping_of(tmp_path, MAPPING),
    ).fingerprint
    assert (first, 3) == (again, len({first, other_rules, other_data}))


def test_every_problem_of_mapping_and_contract_is_reported_at_once(tmp_path):
    pipeline = (
        "id,agent,status,opened,closed\n"  # no `value` column
        "1,ann,Won,01.03.2025,05.03.2025\n"
        "1,bob,Won,2025-03-02,06.03.2025\n"  # repeated id, an ISO date among d.m.Y ones
        "3,zed,Negotiation,03.03.2025,07.03.2025\n"  # unknown manager, unknown stage label
    )
    text = MAPPING.replace("closed_on: closed", 'closed_on: {column: closed, format: "%d.%m.%Y"}')
    text = text.replace("created_on: opened", 'created_on: {column: opened, format: "%d.%m.%Y"}')
    with pytest.raises(DataContractError) as raised:
        read_mapped_folder(small_export(tmp_path, pipeline=pipeline), mapping_of(tmp_path, text))
    message = str(raised.value)
    lines = problem_lines(message)
    assert 5 == len(lines), message
    assert "(5 problem(s);" in message
    assert (
        "- deals.amount: source 'pipeline' (pipeline.csv) has no column 'value'; its columns: "
        "id, agent, status, opened, closed" in lines
    )
    assert (
        "- deals.created_on: does not match the date format '%d.%m.%Y' (source 'pipeline' "
        "column 'opened'): 1 row(s): row 2 ('2025-03-02')" in lines
    )
    assert any(line.startswith("- deals.stage: must be one of") for line in lines)
    assert any("'Negotiation'" in line for line in lines)
    assert any(line.startswith("- deals.deal_id: values must be unique") for line in lines)
    assert any(
        line.startswith("- deals.manager_id: must refer to an existing managers.manager_id")
        and "'zed'" in line
        for line in lines
    )


def test_a_missing_file_is_reported_with_the_other_problems(tmp_path):
    export = small_export(tmp_path)
    (export / "teams.csv").unlink()
    text = MAPPING.replace("created_on: opened", "created_on: opened_on")
    with pytest.raises(DataContractError) as raised:
        read_mapped_folder(export, mapping_of(tmp_path, text))
    lines = problem_lines(str(raised.value))
    assert f"- source 'teams': {export / 'teams.csv'} is missing." in lines
    assert any(line.startswith("- deals.created_on: source 'pipeline'") for line in lines)


def test_the_contract_numbers_rows_as_in_the_source_when_rows_were_left_out(tmp_path):
    pipeline = (
        "id,agent,status,opened,closed,value\n"
        "9,ann,Prospecting,,,\n"  # skipped
        "1,ann,Won,2025-03-01,2025-03-05,100\n"
        "2,bob,Lost,2025-03-02,2025-03-06,0\n"
        "2,cid,Engaging,2025-03-03,,\n"  # source row 4, whatever was left out before it
    )
    with pytest.raises(DataContractError) as raised:
        read_mapped_folder(small_export(tmp_path, pipeline=pipeline), mapping_of(tmp_path, MAPPING))
    message = str(raised.value)
    assert "rows left out counted" in message
    assert ["- deals.deal_id: values must be unique: 2 row(s): row 3 ('2'), row 4 ('2')"] == (
        problem_lines(message)
    )


def test_a_column_the_mapping_reported_still_gets_the_contracts_other_rules(tmp_path):
    pipeline = (
        "id,agent,status,opened,closed,value\n"
        "9,ann,Prospecting,,,\n"  # skipped
        "1,ann,Won,2025-03-01,2025-03-05,abc\n"
        '2,bob,Won,2025-03-02,2025-03-06,"-1234,5"\n'
        "3,zed,Lost,2025-03-03,2025-03-07,0\n"
    )
    text = MAPPING.replace("sources:", 'defaults: {decimal: ","}\nsources:')
    with pytest.raises(DataContractError) as raised:
        read_mapped_folder(small_export(tmp_path, pipeline=pipeline), mapping_of(tmp_path, text))
    lines = problem_lines(str(raised.value))
    assert len(lines) == 3, lines
    assert lines[0].startswith("- deals.amount: cannot be read as a number with decimal ','")
    assert "row 2 ('abc')" in lines[0]
    assert "- deals.amount: must be at least 0: 1 row(s): row 3 ('-1234.5')" in lines
    assert any(
        line.startswith("- deals.manager_id: must refer") and "row 4" in line for line in lines
    )


def test_a_skip_rule_on_a_missing_column_is_a_problem(tmp_path):
    text = MAPPING.replace("opened: null}", "opend: null}")
    with pytest.raises(DataContractError) as raised:
        read_mapped_folder(small_export(tmp_path), mapping_of(tmp_path, text))
    assert problem_lines(str(raised.value))[0].startswith(
        "- deals: skip rule 'prospecting deals without an open date': source 'pipeline' "
        "(pipeline.csv) has no column 'opend'; its columns: id, agent"
    )


def test_a_folder_mapping_refuses_database_sources(tmp_path):
    text = MAPPING.replace("pipeline: {file: pipeline.csv}", "pipeline: {table: crm.deals}")
    with pytest.raises(ParamsError, match=r"database sources \(pipeline \(crm.deals\)\)"):
        read_mapped_folder(small_export(tmp_path), mapping_of(tmp_path, text))


# --- encodings, delimiters, decimal commas, date formats --------------------------------------

RUSSIAN_MAPPING = """
name: russian
defaults:
  {encoding: ENCODING, delimiter: ";", decimal: ",", thousands: " ", date_format: "%d.%m.%Y"}
sources:
  teams: {file: teams.csv}
  deals: {file: deals.csv}
tables:
  managers:
    from: teams
    columns: {manager_id: agent, department_id: office, name: agent}
  deals:
    from: deals
    columns:
      deal_id: id
      manager_id: agent
      stage: {column: status, values: {Выиграна: won, Открыта: open}}
      created_on: opened
      closed_on: closed
      amount: value
"""


@pytest.mark.parametrize(
    ("encoding", "name", "office", "status"),
    [("cp1251", "Иванов", "Север", "Выиграна"), ("latin-1", "Müller", "Süd", "Gewonnen")],
)
def test_legacy_encodings_decimal_commas_and_day_month_dates_read(
    tmp_path, encoding, name, office, status
):
    folder = write(
        tmp_path / "export",
        {
            "teams.csv": f"agent;office\n{name};{office}\n",
            "deals.csv": (
                "id;agent;status;opened;closed;value\n"
                f"007;{name};{status};01.03.2025;05.03.2025;1 234 567,50\n"
                f"008;{name};{status};02.03.2025;31.03.2025;0,5\n"
            ),
        },
        encoding=encoding,
    )
    text = RUSSIAN_MAPPING.replace("ENCODING", encoding).replace("Выиграна", status)
    crm = read_mapped_folder(folder, mapping_of(tmp_path, text))
    assert ([name], [office]) == (
        crm.managers["name"].tolist(),
        crm.managers["department_id"].tolist(),
    )
    assert ["007", "008"] == crm.deals["deal_id"].tolist()
    assert [1234567.5, 0.5] == crm.deals["amount"].tolist()
    assert [pd.Timestamp("2025-03-05"), pd.Timestamp("2025-03-31")] == list(crm.deals["closed_on"])
    assert ["won", "won"] == crm.deals["stage"].tolist()


def test_a_file_in_another_encoding_is_refused_naming_the_encoding_key(tmp_path):
    folder = write(tmp_path / "export", {"teams.csv": "agent,office\nИванов,Север\n"}, "cp1251")
    with pytest.raises(DataContractError, match=r"is not valid utf-8 text") as raised:
        read_file_source(folder, SourceSpec(file="teams.csv"))
    assert "`encoding` key" in str(raised.value) and "cp1251" in str(raised.value)


def test_numbers_unreadable_with_the_decimal_comma_are_reported_by_source_row(tmp_path):
    sources = frames(
        teams="agent,office\nann,North\n",
        deals=(
            "id,agent,status,opened,value\n"
            '1,ann,open,2025-03-01,"10,5"\n'
            "2,ann,open,2025-03-01,1.234\n"  # a thousands mark, or one and a bit? refused
            "3,ann,open,2025-03-01,ten\n"
            "4,ann,open,2025-03-01,\n"
        ),
    )
    text = """
name: numbers
sources: {teams: {file: t.csv}, deals: {file: d.csv}}
tables:
  managers: {from: teams, columns: {manager_id: agent, department_id: office}}
  deals:
    from: deals
    columns:
      deal_id: id
      manager_id: agent
      stage: status
      created_on: opened
      amount: {column: value, decimal: ","}
"""
    with pytest.raises(DataContractError) as raised:
        map_tables(mapping_of(tmp_path, text), fetcher(sources))
    assert [
        "- deals.amount: cannot be read as a number with decimal ',' (source 'deals' column "
        "'value'): 2 row(s): row 2 ('1.234'), row 3 ('ten')"
    ] == problem_lines(str(raised.value))


def test_rows_are_numbered_as_in_the_source_after_skipped_rows(tmp_path):
    sources = frames(
        teams="agent,office\nann,North\n",
        deals=(
            "id,agent,status,opened\n1,ann,Prospecting,\n2,ann,Prospecting,\n3,ann,Won,2025-13-01\n"
        ),
    )
    text = """
name: rows
sources: {teams: {file: t.csv}, deals: {file: d.csv, date_format: "%Y-%m-%d"}}
tables:
  managers: {from: teams, columns: {manager_id: agent, department_id: office}}
  deals:
    from: deals
    skip: [{reason: not engaged yet, where: {status: [Prospecting, Lead]}}]
    columns: {deal_id: id, manager_id: agent, stage: status, created_on: opened, amount: id}
"""
    with pytest.raises(DataContractError) as raised:
        map_tables(mapping_of(tmp_path, text), fetcher(sources))
    assert [
        "- deals.created_on: does not match the date format '%Y-%m-%d' (source 'deals' column "
        "'opened'): 1 row(s): row 3 ('2025-13-01')"
    ] == problem_lines(str(raised.value))


# --- every kind of column spec -----------------------------------------------------------------

KINDS = """
name: kinds
sources:
  teams: {file: t.csv}
  deals: {file: d.csv}
  costs: {file: c.csv, decimal: ","}
tables:
  managers: {from: teams, columns: {manager_id: agent, department_id: office}}
  deals:
    from: deals
    columns:
      deal_id: id
      manager_id: agent
      stage: {column: status, values: {W: won, L: lost}, others: open}
      created_on: {column: opened, format: "%d/%m/%Y"}
      closed_on: {constant: 2025-03-31}
      amount: {column: value, default: 0}
      product_id: {column: product, values: {GTXPro: GTX Pro, "-": null}}
      sale_type: {constant: repeat}
      cost_price:
        lookup: {source: costs, match: id, on: deal, take: cost}
        default: 0
"""


def kinds_sources(costs: str = 'deal,cost\n1,"40,5"\n2,\n3,7\n') -> dict[str, pd.DataFrame]:
    return frames(
        teams="agent,office\nann,North\n",
        deals=(
            "id,agent,status,opened,value,product\n"
            "1,ann,W,01/03/2025,100,GTXPro\n"
            "2,ann,L,02/03/2025,,MG\n"
            "3,ann,Engaging,03/03/2025,5,-\n"
        ),
        costs=costs,
    )


def test_each_kind_of_column_spec_builds_its_column(tmp_path):
    tables, notes = map_tables(mapping_of(tmp_path, KINDS), fetcher(kinds_sources()))
    deals = tables["deals"]
    assert list(deals.columns) == [
        "deal_id",
        "manager_id",
        "stage",
        "created_on",
        "closed_on",
        "amount",
        "product_id",
        "cost_price",
        "sale_type",
    ]  # in the contract's order
    assert ["won", "lost", "open"] == deals["stage"].tolist()
    assert list(pd.to_datetime(["2025-03-01", "2025-03-02", "2025-03-03"])) == list(
        deals["created_on"]
    )
    assert ["2025-03-31"] * 3 == deals["closed_on"].tolist()
    assert ["100", "0", "5"] == deals["amount"].tolist()  # decimal point: left to validation
    assert ["GTX Pro", "MG"] == deals["product_id"].tolist()[:2]
    assert deals["product_id"].isna().tolist() == [False, False, True]
    assert [40.5, 0.0, 7.0] == deals["cost_price"].tolist()
    assert ["repeat"] * 3 == deals["sale_type"].tolist()
    assert notes == (
        "deals.stage: 1 value(s) not in the value map set to 'open'.",
        "deals.amount: 1 empty cell(s) filled with '0'.",
        "deals.product_id: 1 value(s) emptied by the value map.",  # "-": null
        "deals.cost_price: 1 empty cell(s) filled with '0'.",
    )


def test_lookups_without_a_match_or_with_two_matches_are_problems(tmp_path):
    costs = 'deal,cost\n1,"40,5"\n1,41\n9,7\n'
    with pytest.raises(DataContractError) as raised:
        map_tables(mapping_of(tmp_path, KINDS), fetcher(kinds_sources(costs)))
    assert [
        "- deals.cost_price: lookup source 'costs' has more than one row for a value of 'deal' "
        "(rows of 'costs'): 2 row(s): row 1 ('1'), row 2 ('1')",
        "- deals.cost_price: no row of source 'costs' has this 'id' in 'deal' (source 'deals' "
        "rows): 2 row(s): row 2 ('2'), row 3 ('3')",
    ] == problem_lines(str(raised.value))


def test_text_cells_are_kept_exactly(tmp_path):
    sources = frames(
        teams="agent,office\n007, North \n",
        deals="id,agent,status,opened,value\n0001,007,open,2025-03-01,1\n",
    )
    text = """
name: exact
sources: {teams: {file: t.csv}, deals: {file: d.csv}}
tables:
  managers: {from: teams, columns: {manager_id: agent, department_id: office}}
  deals:
    from: deals
    columns: {deal_id: id, manager_id: agent, stage: status, created_on: opened, amount: value}
"""
    tables, _ = map_tables(mapping_of(tmp_path, text), fetcher(sources))
    assert (["007"], [" North "]) == (
        tables["managers"]["manager_id"].tolist(),
        tables["managers"]["department_id"].tolist(),
    )
    assert ["0001"] == tables["deals"]["deal_id"].tolist()


def test_typed_columns_pass_unchanged(tmp_path):
    sources = {
        "teams": pd.DataFrame({"agent": ["ann"], "office": ["North"]}),
        "deals": pd.DataFrame(
            {
                "id": ["1"],
                "agent": ["ann"],
                "status": ["open"],
                "opened": pd.to_datetime(["2025-03-01"]),
                "value": [1.5],
            }
        ),
    }
    text = """
name: typed
sources: {teams: {table: teams}, deals: {table: deals, date_format: "%d.%m.%Y", decimal: ","}}
tables:
  managers: {from: teams, columns: {manager_id: agent, department_id: office}}
  deals:
    from: deals
    columns: {deal_id: id, manager_id: agent, stage: status, created_on: opened, amount: value}
"""
    tables, _ = map_tables(mapping_of(tmp_path, text), fetcher(sources))
    pd.testing.assert_series_equal(
        sources["deals"]["opened"], tables["deals"]["created_on"], check_names=False
    )
    assert [1.5] == tables["deals"]["amount"].tolist()


# --- refusing a bad mapping --------------------------------------------------------------------


def test_unknown_keys_are_refused_naming_the_file_and_every_key(tmp_path):
    text = MAPPING.replace("name: small", "name: small\nowner: sales").replace(
        "distinct: true", "distinkt: true"
    )
    text = text.replace("default: 0", "default: 0, fromat: x")
    with pytest.raises(ParamsError) as raised:
        mapping_of(tmp_path, text)
    message = str(raised.value)
    assert message.startswith(f"Mapping {tmp_path / 'mapping.yaml'} is invalid (3 problem(s))")
    assert {
        "- owner: unknown key",
        "- tables.departments.distinkt: unknown key",
        "- tables.deals.columns.amount.fromat: unknown key",
    } == set(problem_lines(message))


def test_unknown_tables_columns_and_sources_are_refused_listing_the_valid_ones(tmp_path):
    text = (
        MAPPING.replace("stage: {column", "stagee: {column")
        .replace("from: pipeline", "from: pipe")
        .replace("  managers:\n", "  manager:\n")
    )
    with pytest.raises(ParamsError) as raised:
        mapping_of(tmp_path, text)
    lines = problem_lines(str(raised.value))
    assert "- tables: the required table(s) managers are not mapped" in lines
    assert any(
        line.startswith("- tables.manager: not a contract table; they are:") for line in lines
    )
    assert "- tables.deals.from: source 'pipe' is not declared; sources: teams, pipeline" in lines
    assert any(
        line.startswith("- tables.deals.columns.stagee: deals has no column 'stagee'; its columns:")
        and "stage, created_on" in line
        for line in lines
    )


def test_a_wrong_key_and_a_wrong_name_are_told_at_once(tmp_path):
    text = (
        MAPPING.replace("distinct: true", "distinct: maybe")
        .replace("from: pipeline", "from: pipe")
        .replace("stage: {column", "stagee: {column")
    )
    with pytest.raises(ParamsError) as raised:
        mapping_of(tmp_path, text)
    lines = problem_lines(str(raised.value))
    assert any(line.startswith("- tables.departments.distinct:") for line in lines)
    assert "- tables.deals.from: source 'pipe' is not declared; sources: teams, pipeline" in lines
    assert any(
        line.startswith("- tables.deals.columns.stagee: deals has no column") for line in lines
    )
    assert 3 == len(lines)


def test_sources_that_are_not_a_dictionary_are_one_problem_not_one_per_table(tmp_path):
    text = MAPPING.replace(
        "  teams: {file: teams.csv}\n  pipeline: {file: pipeline.csv}", "  - teams\n  - pipeline"
    )
    with pytest.raises(ParamsError) as raised:
        mapping_of(tmp_path, text)
    assert ["- sources: Input should be a valid dictionary"] == problem_lines(str(raised.value))


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("{column: x, constant: y}", "give a source column name, or a mapping with exactly one"),
        ('{column: x, format: "%d.%m.%Y"}', "format: deals.deal_id is text, not a date"),
        ("{constant: 2025-13-01}", "not an ISO date"),
        ("{lookup: {source: nowhere, match: a, on: b, take: c}}", "'nowhere' is not declared"),
        ("{column: x, others: open}", "others: only applies together with values"),
        ("{column: x, default_where: {a: b}}", "default_where: only applies together with default"),
    ],
)
def test_a_column_spec_that_cannot_work_is_refused(tmp_path, spec, expected):
    column = "created_on" if "2025" in spec else "deal_id"
    text = MAPPING.replace("deal_id: id", f"{column}: {spec}")
    if column == "created_on":
        text = text.replace("      created_on: opened\n", "")
    with pytest.raises(ParamsError, match=re.escape(expected)):
        mapping_of(tmp_path, text)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{file: a.csv, encoding: klingon}", "unknown encoding 'klingon'"),
        ("{file: a.csv, table: b}", "give exactly one of file, table, query"),
        ("{query: select 1, delimiter: ';'}", "delimiter: only for a file source"),
        ("{file: a.csv, sheet: S}", "sheet only applies to an Excel workbook"),
        ("{file: a.json}", "must end in one of"),
        ("{file: a.csv, decimal: ',', thousands: ','}", "thousands and decimal are both ','"),
        ("{file: a.csv, date_format: dd.mm.yyyy}", "is not a strftime format"),
    ],
)
def test_a_source_that_cannot_work_is_refused(tmp_path, source, expected):
    text = MAPPING.replace("{file: teams.csv}", source)
    with pytest.raises(ParamsError, match=re.escape(expected)):
        mapping_of(tmp_path, text)


def test_defaults_apply_to_file_sources_unless_they_set_their_own(tmp_path):
    text = MAPPING.replace(
        "sources:", 'defaults: {encoding: cp1251, decimal: ",", date_format: "%d.%m.%Y"}\nsources:'
    ).replace("{file: teams.csv}", "{file: teams.csv, encoding: latin-1}")
    sources = mapping_of(tmp_path, text).sources
    assert ("latin-1", "cp1251") == (sources["teams"].encoding, sources["pipeline"].encoding)
    assert (",", "%d.%m.%Y") == (sources["teams"].decimal, sources["teams"].date_format)


# --- Excel -------------------------------------------------------------------------------------


def workbook(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


def test_excel_keeps_text_identifiers_and_reads_numbers_and_dates(tmp_path):
    path = workbook(
        tmp_path / "deals.xlsx",
        {
            "deals": [
                ["deal_id", "amount", "created_on", "note"],
                ["007", 7, dt.datetime(2025, 3, 1), "x"],
                ["NO", 7.5, dt.datetime(2025, 3, 2), dt.datetime(2025, 3, 3, 10, 30)],
            ]
        },
    )
    raw = read_raw(path)
    assert ["007", "NO"] == raw["deal_id"].tolist()
    assert ["7", "7.5"] == raw["amount"].tolist()
    assert list(pd.to_datetime(["2025-03-01", "2025-03-02"])) == list(raw["created_on"])
    assert ["x", "2025-03-03 10:30:00"] == raw["note"].tolist()  # a date among text, as text


def test_a_workbook_is_a_source_of_its_own(tmp_path):
    path = workbook(
        tmp_path / "crm.xlsx",
        {
            "managers": [["manager_id", "department_id"], ["007", 1]],
            "deals": [
                ["deal_id", "manager_id", "stage", "created_on", "closed_on", "amount"],
                ["0001", "007", "won", dt.datetime(2025, 3, 1), dt.datetime(2025, 3, 5), 10],
            ],
            "Notes": [["anything"]],
        },
    )
    assert ["managers", "deals"] == list(read_workbook(path))
    crm = read_source(path)
    assert (["007"], ["1"]) == (
        crm.managers["manager_id"].tolist(),
        crm.managers["department_id"].tolist(),
    )
    assert [pd.Timestamp("2025-03-05")] == list(crm.deals["closed_on"])
    assert crm.notes[0] == "Sheet(s) not read, not being contract tables: Notes."


def test_a_workbook_without_a_required_sheet_is_refused_naming_its_sheets(tmp_path):
    path = workbook(tmp_path / "crm.xlsx", {"deals": [["deal_id"]], "Staff": [["id"]]})
    with pytest.raises(DataContractError, match=r"lacks the sheet\(s\) managers .*: deals, Staff"):
        read_source(path)


def test_a_mapping_reads_one_sheet_of_a_workbook(tmp_path):
    workbook(tmp_path / "export.xlsx", {"Deals": [["x"], [1]], "Teams": [["agent"], ["007"]]})
    teams = read_file_source(tmp_path, SourceSpec(file="export.xlsx", sheet="Teams"))
    assert ["007"] == teams["agent"].tolist()
    with pytest.raises(DataContractError, match=r"has no sheet 'Staff'; its sheets: Deals, Teams"):
        read_file_source(tmp_path, SourceSpec(file="export.xlsx", sheet="Staff"))


def test_workbook_numbers_ignore_the_separators_meant_for_text_exports(tmp_path):
    # An export's defaults say decimal comma and thousands dot; a workbook's number cells are
    # numbers all the same, and a number written as text there is refused, not guessed.
    folder = small_export(tmp_path)
    (folder / "pipeline.csv").unlink()
    workbook(
        folder / "pipeline.xlsx",
        {
            "Sheet1": [
                ["id", "agent", "status", "opened", "closed", "value"],
                ["1", "ann", "Won", "2025-03-01", "2025-03-10", 1054.5],
                ["2", "bob", "Won", "2025-03-02", "2025-03-11", "1.054,5"],
            ]
        },
    )
    text = MAPPING.replace("pipeline.csv", "pipeline.xlsx")
    text = text.replace("sources:", 'defaults: {decimal: ",", thousands: "."}\nsources:')
    with pytest.raises(DataContractError) as raised:
        read_mapped_folder(folder, mapping_of(tmp_path, text))
    lines = problem_lines(str(raised.value))
    assert len(lines) == 1 and lines[0].startswith("- deals.amount: cannot be read as a number")
    assert "'1.054,5'" in lines[0] and "row 2" in lines[0]

    header = ["id", "agent", "status", "opened", "closed", "value"]
    only_number = ["1", "ann", "Won", "2025-03-01", "2025-03-10", 1054.5]
    workbook(folder / "pipeline.xlsx", {"Sheet1": [header, only_number]})
    crm = read_mapped_folder(folder, mapping_of(tmp_path, text))
    assert [1054.5] == crm.deals["amount"].tolist()


def test_an_old_xls_workbook_sheet_reads_through_a_source():
    folder = DATASETS / "superstore"
    if not (folder / "Sample - Superstore.xls").exists():
        pytest.skip("../shared/datasets/superstore (the Superstore .xls) is not beside the project")
    people = read_file_source(folder, SourceSpec(file="Sample - Superstore.xls", sheet="People"))
    assert ["Person", "Region"] == list(people.columns)
    assert 4 == len(people)


# --- the shipped Maven mapping -----------------------------------------------------------------


@pytest.fixture(scope="module")
def maven():
    folder = DATASETS / "maven_crm"
    if not (folder / "sales_pipeline.csv").exists():
        pytest.skip("../shared/datasets/maven_crm (the Maven CRM export) is not beside the project")
    return read_mapped_folder(folder, load_mapping(MAVEN_MAPPING))


def test_the_maven_export_validates_through_the_shipped_mapping(maven):
    rows = {table: len(getattr(maven, table)) for table in maven.__dataclass_fields__
            if table in ("departments", "managers", "clients", "products", "deals")}  # fmt: skip
    assert {
        "departments": 3,
        "managers": 35,
        "clients": 85,
        "products": 7,
        "deals": 8800 - 500,
    } == rows
    assert {"won": 4238, "lost": 2473, "open": 1589} == maven.deals[
        "stage"
    ].value_counts().to_dict()
    assert 1088 == maven.deals["client_id"].isna().sum()  # open deals without an account
    assert not maven.has("deliveries") and "cost_price" not in maven.deals


def test_the_maven_mapping_fixes_the_product_spelling(maven):
    products = set(maven.deals["product_id"].dropna())
    assert "GTX Pro" in products and "GTXPro" not in products
    assert products <= set(maven.products["product_id"])


def test_the_maven_mapping_says_what_it_left_out_and_filled(maven):
    assert maven.notes[:3] == (
        "departments: 32 duplicate row(s) removed (distinct).",
        "deals: 500 row(s) skipped: prospecting deals without an engage date",
        "deals.amount: 1589 empty cell(s) filled with '0' where deal_stage is 'Engaging' or "
        "'Prospecting'.",
    )
    assert maven.source.endswith("maven_crm (mapping maven_crm)")


def test_read_mapped_validates_sources_from_any_fetch(tmp_path):
    sources = frames(
        teams="agent,office\nann,North\n",
        pipeline="id,agent,status,opened,closed,value\n1,ann,Won,2025-03-01,2025-03-02,\n",
    )
    crm = read_mapped(mapping_of(tmp_path, MAPPING), fetcher(sources), source="memory")
    assert ([0.0], "memory") == (crm.deals["amount"].tolist(), crm.source)
    assert "deals.amount: 1 empty cell(s) filled with '0'." in crm.notes
    sources["pipeline"].loc[0, "agent"] = "zed"
    with pytest.raises(DataContractError, match=r"- deals.manager_id: must refer to an existing"):
        read_mapped(mapping_of(tmp_path, MAPPING), fetcher(sources), source="memory")


def test_a_text_default_fills_a_text_column_read_from_a_numeric_source(tmp_path):
    # Parquet or a database gives account numbers as numbers; the default is text
    sources = frames(
        teams="agent,office\nann,North\n",
        pipeline="id,agent,status,opened,closed,value\n1,ann,Won,2025-03-01,2025-03-02,5\n"
        "2,ann,Engaging,2025-03-01,,\n",
    )
    sources["pipeline"]["account"] = [7.0, float("nan")]
    text = MAPPING.replace(
        "amount: {column: value, default: 0}",
        "amount: {column: value, default: 0}\n"
        "      client_id: {column: account, default: none, default_where: {status: Engaging}}",
    )
    crm = read_mapped(mapping_of(tmp_path, text), fetcher(sources), source="memory")
    assert ["7.0", "none"] == crm.deals["client_id"].tolist()


def test_values_the_value_map_empties_are_counted(tmp_path):
    text = MAPPING.replace(
        "stage: {column: status, values: {Won: won, Lost: lost, Engaging: open}}",
        "stage: {column: status, values: {Won: won, Lost: lost, Engaging: open}}\n"
        "      client_id: {column: agent, values: {bob: null, ann: A}}",
    )
    crm = read_mapped_folder(small_export(tmp_path), mapping_of(tmp_path, text))
    assert ["A", None] == crm.deals["client_id"].astype(object).where(
        crm.deals["client_id"].notna(), None
    ).tolist()[:2]
    assert "deals.client_id: 1 value(s) emptied by the value map." in crm.notes
