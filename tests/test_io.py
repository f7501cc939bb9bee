"""Reading and writing data sources; reading YAML."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from kpilib.errors import DataContractError, ParamsError
from kpilib.io import read_raw, read_source, read_yaml, write_tables
from kpilib.testing import vasily_valery_tables

# --- helpers ---------------------------------------------------------------------------------


def write_files(tables: dict[str, pd.DataFrame], folder: Path, suffix: str = "csv") -> Path:
    """Write raw tables the way a CRM export would: one file per table, no index."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        path = folder / f"{name}.{suffix}"
        if suffix == "csv":
            frame.to_csv(path, index=False)
        elif suffix == "parquet":
            frame.to_parquet(path, index=False)
        else:
            frame.to_excel(path, index=False)
    return folder


def kind(value: object) -> str:
    """The plain type a value is read as (a YAML number remembering its text is still a number)."""
    return next(t.__name__ for t in (bool, int, float, str, type(None)) if isinstance(value, t))


# --- reading a valid source -------------------------------------------------------------------


def test_a_valid_folder_of_csv_reads_every_table_without_losing_a_row(tmp_path, raw_sales):
    folder = write_files(raw_sales, tmp_path / "source")
    crm = read_source(folder)
    file_rows = {
        name: len((folder / f"{name}.csv").read_text().splitlines()) - 1 for name in raw_sales
    }
    assert file_rows == {name: len(getattr(crm, name)) for name in raw_sales}
    assert str(folder) == crm.source
    assert "" != crm.fingerprint


@pytest.mark.parametrize("suffix", ["parquet", "xlsx"])
def test_parquet_and_excel_sources_read_like_csv(tmp_path, raw_sales, suffix):
    from_csv = read_source(write_files(raw_sales, tmp_path / "csv"))
    other = read_source(write_files(raw_sales, tmp_path / suffix, suffix))
    for name in raw_sales:
        pd.testing.assert_frame_equal(getattr(from_csv, name), getattr(other, name))


@pytest.mark.parametrize("suffix", ["csv", "xlsx"])
def test_identifiers_like_007_no_and_na_stay_strings(tmp_path, suffix):
    tables = {
        "managers": pd.DataFrame(
            {"manager_id": ["007", "NO", "NA"], "department_id": ["01", "01", "NULL"]}, dtype="str"
        ),
        "deals": pd.DataFrame(
            {
                "deal_id": ["0001"],
                "manager_id": ["007"],
                "stage": ["won"],
                "created_on": ["2025-03-01"],
                "closed_on": ["2025-03-02"],
                "amount": ["10"],
                "client_id": ["NA"],
            },
            dtype="str",
        ),
    }
    crm = read_source(write_files(tables, tmp_path, suffix))
    assert ["007", "NO", "NA"] == crm.managers["manager_id"].tolist()
    assert ["01", "01", "NULL"] == crm.managers["department_id"].tolist()
    assert ["0001", "007", "NA"] == crm.deals.loc[
        0, ["deal_id", "manager_id", "client_id"]
    ].tolist()


def test_an_empty_cell_is_missing_and_the_row_is_kept(tmp_path):
    folder = write_files(vasily_valery_tables(), tmp_path)
    (folder / "deals.csv").write_text(
        "deal_id,manager_id,stage,created_on,closed_on,amount\n"
        "1,vasily,open,2025-03-03,,400000\n"
        "2,valery,won,2025-03-05,2025-03-24,400000\n"
    )
    deals = read_source(folder).deals
    assert ["1", "2"] == deals["deal_id"].tolist()
    assert [True, False] == deals["closed_on"].isna().tolist()


# --- YAML -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("NO", "NO"),
        ("no", "no"),
        ("on", "on"),
        ("yes", "yes"),
        ("Yes", "Yes"),
        ("off", "off"),
        ("y", "y"),
        ("n", "n"),
        ("007", "007"),
        ("0755", "0755"),
        ("0o17", "0o17"),
        ("0x1F", "0x1F"),
        ("1_000", "1_000"),
        ("1_000.5", "1_000.5"),
        ("1:20", "1:20"),
        ("1:20.5", "1:20.5"),
        ("2024-01-01", "2024-01-01"),
        ("2024-01-01 10:00:00", "2024-01-01 10:00:00"),
        ("=", "="),
        ("<<", "<<"),
        ("'1500'", "1500"),
        ("true", True),
        ("True", True),
        ("FALSE", False),
        ("1500", 1500),
        ("-3", -3),
        ("0.15", 0.15),
        ("1e3", 1000.0),
        ("null", None),
        ("~", None),
    ],
)
def test_read_yaml_keeps_codes_as_strings_and_only_true_false_as_booleans(tmp_path, text, expected):
    path = tmp_path / "values.yaml"
    path.write_text(f"value: {text}\n")
    value = read_yaml(path)["value"]
    assert (expected, kind(expected)) == (value, kind(value))


@pytest.mark.parametrize("text", ["1500", "-3", "+5", "-0", "0.15", "1.50", "1e3", "1.0E-2"])
def test_numbers_read_from_yaml_give_back_the_text_they_were_written_as(tmp_path, text):
    path = tmp_path / "values.yaml"
    path.write_text(f"value: {text}\n")
    number = read_yaml(path)["value"]
    assert (text, number) == (str(number), pytest.approx(float(text)))


def test_yaml_numbers_survive_copying_and_json(tmp_path):
    path = tmp_path / "values.yaml"
    path.write_text("value: 1.50\n")
    number = read_yaml(path)["value"]
    assert ("1.50", '{"v": 1.5}') == (str(copy.deepcopy(number)), json.dumps({"v": number}))


@pytest.mark.parametrize(
    "text",
    [
        "!!python/object/apply:os.system ['id']",
        "!!python/object:builtins.dict {}",
        "!!python/name:os.system",
        "!!python/module:os",
    ],
)
def test_read_yaml_refuses_tags_that_build_python_objects(tmp_path, text):
    path = tmp_path / "evil.yaml"
    path.write_text(f"value: {text}\n")
    with pytest.raises(ParamsError, match=re.escape(f"{path} is not valid YAML")) as raised:
        read_yaml(path)
    assert "python/" in str(raised.value)


def test_read_yaml_still_merges_mappings(tmp_path):
    path = tmp_path / "merge.yaml"
    path.write_text(
        "base: &base {currency: RUB, trend_months: 6}\nnorth:\n  <<: *base\n  trend_months: 3\n"
    )
    assert {"currency": "RUB", "trend_months": 3} == read_yaml(path)["north"]


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", "42\n"])
def test_read_yaml_refuses_a_file_that_is_not_a_mapping(tmp_path, text):
    path = tmp_path / "list.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError, match=re.escape(f"{path} must hold a mapping")):
        read_yaml(path)


def test_read_yaml_reads_an_empty_file_as_an_empty_mapping(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing yet\n")
    assert {} == read_yaml(path)


def test_read_yaml_names_the_file_of_invalid_yaml(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("a: [1, 2\n")
    with pytest.raises(ParamsError, match=re.escape(f"{path} is not valid YAML")):
        read_yaml(path)


# --- writing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_write_tables_then_read_source_round_trips(tmp_path, sales_crm, fmt):
    names = [
        "departments",
        "managers",
        "clients",
        "products",
        "deals",
        "deliveries",
        "requests",
        "leads",
    ]
    write_tables({name: getattr(sales_crm, name) for name in names}, tmp_path, fmt)
    again = read_source(tmp_path)
    for name in names:
        pd.testing.assert_frame_equal(getattr(sales_crm, name), getattr(again, name))


def test_write_tables_replaces_a_table_written_in_another_format(tmp_path, sales_crm):
    tables = {"managers": sales_crm.managers, "deals": sales_crm.deals}
    write_tables(tables, tmp_path, "csv")
    write_tables(tables, tmp_path, "parquet")
    assert ["deals.parquet", "managers.parquet"] == sorted(p.name for p in tmp_path.iterdir())
    assert 9 == len(read_source(tmp_path).deals)


def test_the_fingerprint_changes_with_the_data_and_only_with_it(tmp_path):
    first = read_source(write_files(vasily_valery_tables(), tmp_path / "a")).fingerprint
    same = read_source(write_files(vasily_valery_tables(), tmp_path / "b")).fingerprint
    changed_tables = vasily_valery_tables()
    changed_tables["deals"].loc[0, "amount"] = "400001"
    changed = read_source(write_files(changed_tables, tmp_path / "c")).fingerprint
    assert (first, True) == (same, first != changed)


# --- refusing a folder -----------------------------------------------------------------------


def test_a_folder_without_the_required_tables_is_refused_naming_them(tmp_path):
    write_files({"clients": pd.DataFrame({"client_id": ["c1"]})}, tmp_path)
    with pytest.raises(DataContractError, match=r"lacks the required table\(s\) managers, deals "):
        read_source(tmp_path)


def test_a_missing_folder_is_refused(tmp_path):
    with pytest.raises(DataContractError, match="not a folder"):
        read_source(tmp_path / "nowhere")


def test_a_table_present_in_two_formats_is_refused(tmp_path):
    folder = write_files(vasily_valery_tables(), tmp_path)
    write_files({"deals": vasily_valery_tables()["deals"]}, folder, "xlsx")
    with pytest.raises(DataContractError, match="more than one file") as raised:
        read_source(folder)
    assert "deals: deals.csv, deals.xlsx" in str(raised.value)


def test_an_old_xls_workbook_reads_too():
    workbook = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "superstore"
    if not (workbook / "Sample - Superstore.xls").exists():
        pytest.skip("../shared/datasets/superstore is not beside the checkout")
    orders = read_raw(workbook / "Sample - Superstore.xls")  # the first sheet
    assert (9994, "CA-2013-152156") == (len(orders), orders.loc[0, "Order ID"])


def test_a_header_naming_a_column_twice_is_refused(tmp_path):
    path = tmp_path / "deals.csv"
    path.write_text("deal_id,amount,amount\n1,10,999\n", encoding="utf-8")
    with pytest.raises(DataContractError, match=r"deals.csv names the column\(s\) 'amount' more"):
        read_raw(path)
    book = openpyxl.Workbook()
    book.active.append(["deal_id", "amount", " amount "])
    book.active.append(["1", 10, 999])
    book.save(tmp_path / "deals.xlsx")
    with pytest.raises(DataContractError, match=r"'amount' more than once"):
        read_raw(tmp_path / "deals.xlsx")
    path.write_text("deal_id,,amount,\n1,,10,\n", encoding="utf-8")  # unnamed columns are not names
    assert ["1"] == read_raw(path)["deal_id"].tolist()
