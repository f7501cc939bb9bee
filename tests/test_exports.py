"""CSV the kit writes: CRM text that starts like a spreadsheet formula is written as text."""

# STYLE.md: asserts read `expected == actual`, which ruff's SIM300 calls a Yoda condition.

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd
import pytest

from kpilib.cli import main
from kpilib.io import read_source, spreadsheet_safe, spreadsheet_text, write_csv, write_tables

HOSTILE = [
    '=HYPERLINK("http://x","y")',
    "+cmd|' /C calc'!A0",
    "@SUM(1)",
    "-2+3",
    "\t=1",
    "\r=1",
    "\uff1dSUM(1)",  # full-width equals sign
    "\uff0b1",
    "\uff0d1",
    "\uff20SUM(1)",
]


def hostile_frame() -> pd.DataFrame:
    """Formula-leading text, a plain name, a missing value and a column of negative numbers."""
    return pd.DataFrame(
        {
            "name": pd.Series([*HOSTILE, "Anna", None], dtype=object),
            "amount": [-5, -1, 0, 1, 2, 3, 4, 5, 6, 7, 8, -9],
        }
    )


# --- spreadsheet_safe ------------------------------------------------------------------------


def test_formula_leading_text_gets_a_quote_and_everything_else_is_kept():
    safe = spreadsheet_safe(hostile_frame())
    assert [
        '\'=HYPERLINK("http://x","y")',
        "'+cmd|' /C calc'!A0",
        "'@SUM(1)",
        "'-2+3",
        "'\t=1",
        "'\r=1",
        "'\uff1dSUM(1)",
        "'\uff0b1",
        "'\uff0d1",
        "'\uff20SUM(1)",
        "Anna",
    ] == safe["name"].iloc[:-1].tolist()
    assert None is safe["name"].iloc[-1]
    assert [-5, -1, 0, 1, 2, 3, 4, 5, 6, 7, 8, -9] == safe["amount"].tolist()
    assert "int64" == str(safe["amount"].dtype)


def test_spreadsheet_safe_returns_a_copy_and_leaves_the_frame_alone():
    frame = hostile_frame()
    spreadsheet_safe(frame)
    pd.testing.assert_frame_equal(hostile_frame(), frame)


@pytest.mark.parametrize("dtype", ["object", "string", "str", "category"])
def test_every_kind_of_text_column_is_neutralised_and_missing_stays_missing(dtype):
    frame = pd.DataFrame({"name": pd.Series(["=1+1", "Anna", None], dtype=dtype)})
    safe = spreadsheet_safe(frame)["name"]
    assert ["'=1+1", "Anna"] == safe.iloc[:2].tolist()
    assert safe.isna().iloc[2]


@pytest.mark.parametrize("text", ["-5", "+7", "-0.25", "-1e3", "-.5"])
def test_text_that_is_only_a_number_is_left_alone(text):
    assert text == spreadsheet_text(text)


@pytest.mark.parametrize(
    "value", [-5, -2.5, pd.Timestamp("2025-03-01"), None, pd.NA, "", "Anna", " =1", "a=1"]
)
def test_values_that_are_not_formula_leading_text_are_returned_as_they_are(value):
    assert value is spreadsheet_text(value)


def test_column_headers_and_index_labels_are_neutralised_too():
    frame = pd.DataFrame({"=cmd": ["x"], "amount": [-5]}, index=pd.Index(["@SUM(1)"]))
    safe = spreadsheet_safe(frame)
    assert (["'=cmd", "amount"], ["'@SUM(1)"]) == (list(safe.columns), list(safe.index))


def test_mixed_object_columns_change_only_their_text_cells():
    frame = pd.DataFrame({"mixed": pd.Series(["=1", -5, 2.5, "-x"], dtype=object)})
    assert ["'=1", -5, 2.5, "'-x"] == spreadsheet_safe(frame)["mixed"].tolist()


def test_write_csv_holds_the_quoted_text_and_plain_numbers(tmp_path):
    path = tmp_path / "out.csv"
    write_csv(hostile_frame(), path)
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert ["name", "amount"] == rows[0]
    assert [f"'{text}" for text in HOSTILE] == [row[0] for row in rows[1:11]]
    assert [["Anna", "8"], ["", "-9"]] == rows[11:]
    assert "-5" == rows[1][1]


@pytest.mark.parametrize("inside", ["x\r=1+1", "x\n=1+1", "x\r\n@SUM(1)"])
def test_a_line_break_inside_a_cell_cannot_start_a_row_with_a_formula(tmp_path, inside):
    path = tmp_path / "out.csv"
    write_csv(pd.DataFrame({"name": [inside], "amount": [1]}), path)
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert [["name", "amount"], [inside, "1"]] == rows


# --- write_tables --------------------------------------------------------------------------


def formula_named_source(raw_sales: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The small sales source with managers named like formulas."""
    managers = raw_sales["managers"].copy()
    managers["name"] = ['=HYPERLINK("http://x","y")', "@SUM(1)", "-2+3"]
    return {**raw_sales, "managers": managers}


def test_write_tables_neutralises_csv_and_keeps_text_exactly_in_parquet(tmp_path, raw_sales):
    tables = formula_named_source(raw_sales)
    write_tables(tables, tmp_path / "csv", "csv")
    write_tables(tables, tmp_path / "parquet", "parquet")
    from_csv = read_source(tmp_path / "csv").managers["name"].tolist()
    from_parquet = read_source(tmp_path / "parquet").managers["name"].tolist()
    assert ['\'=HYPERLINK("http://x","y")', "'@SUM(1)", "'-2+3"] == from_csv
    assert tables["managers"]["name"].tolist() == from_parquet


# --- kpi score --format csv ----------------------------------------------------------------


def test_kpi_score_csv_prints_formula_named_managers_as_text(tmp_path, raw_sales, capsys):
    folder = tmp_path / "source"
    write_tables(formula_named_source(raw_sales), folder, "parquet")  # names exactly as typed
    assert 0 == main(["score", str(folder), "--period", "2025-03", "--format", "csv"])
    out = capsys.readouterr().out
    rows = list(csv.DictReader(io.StringIO(out)))
    names = {row["manager_id"]: row["name"] for row in rows}
    assert {
        "m1": '\'=HYPERLINK("http://x","y")',
        "m2": "'@SUM(1)",
        "m3": "'-2+3",
    } == names
    # Numbers stay numbers: every figure parses, none carries a quote.
    figures = pd.read_csv(io.StringIO(out))
    assert all(pd.api.types.is_numeric_dtype(figures[c]) for c in ("score", "net_profit"))
    assert 3 == len(figures)


def test_no_module_writes_csv_or_excel_without_spreadsheet_safe():
    kpilib = Path(__file__).resolve().parents[1] / "kpilib"
    writes = [
        (path.name, number, line.strip())
        for path in sorted(kpilib.glob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if any(call in line for call in (".to_csv(", ".to_excel(", "ExcelWriter("))
    ]
    assert writes, "the kit writes CSV somewhere; this test should see it"
    assert [] == [write for write in writes if "spreadsheet_safe(" not in write[2]]
