"""The only module that reads and writes files: data sources, YAML and result files.

A data source is a folder holding the contract's tables as ``<table>.csv``, ``<table>.parquet`` or
``<table>.xlsx``, or one Excel workbook with a sheet per table. Cells are read as they are (CSV and
Excel as text, Excel date cells as dates) and handed to `kpilib.validation`, which checks them
against the contract and reports every problem at once. A CRM export in another shape is read
through a YAML mapping (`kpilib.mapping`), which reads its files with `read_raw` too.

Every CSV or Excel file the kit writes goes through `spreadsheet_safe` first (CSV through
`write_csv`): CRM text is typed by anyone, and a cell such as ``=HYPERLINK(...)`` would run as a
formula in the spreadsheet that opens it. Parquet keeps text exactly.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import pandas as pd
import yaml

from kpilib.errors import DataContractError, ParamsError
from kpilib.schemas import CRM, MODELS, REQUIRED_TABLES
from kpilib.validation import validate_tables

READERS = {".csv": "csv", ".parquet": "parquet", ".xlsx": "excel", ".xls": "excel"}
FILE_KINDS = {**READERS, ".txt": "csv"}
"""Every file `read_raw` reads: the contract's formats, and ``.txt`` exports read as CSV."""
WORKBOOKS = (".xlsx", ".xls")

FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
"""First characters that make a spreadsheet read a text cell as a formula (the full-width
``＝ ＋ － ＠`` too, which some spreadsheets fold into their ASCII forms)."""
_PLAIN_NUMBER = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


def find_tables(folder: Path) -> dict[str, Path]:
    """Map each contract table present in `folder` to its file.

    Raises:
        DataContractError: The folder is missing, a required table is absent, or one table is
            present in two formats.
    """
    if not folder.is_dir():
        raise DataContractError(f"Data source {folder} is not a folder.")
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in READERS and path.stem in MODELS:
            found.setdefault(path.stem, []).append(path)
    doubles = [
        f"{table}: {', '.join(p.name for p in paths)}"
        for table, paths in found.items()
        if len(paths) > 1
    ]
    if doubles:
        raise DataContractError(
            f"Data source {folder} holds a table in more than one file; keep one of each:\n"
            + "\n".join(doubles)
        )
    missing = [table for table in REQUIRED_TABLES if table not in found]
    if missing:
        raise DataContractError(
            f"Data source {folder} lacks the required table(s) {', '.join(missing)} "
            f"(looked for {', '.join(f'{t}.csv/.parquet/.xlsx' for t in missing)})."
        )
    return {table: paths[0] for table, paths in found.items()}


def read_raw(
    path: Path, *, encoding: str = "utf-8", delimiter: str = ",", sheet: str | None = None
) -> pd.DataFrame:
    """Read one table file as it is: CSV and Excel cells as text, empty cells as missing.

    Reading text keeps identifiers such as ``007`` intact and leaves every type decision to the
    contract's validation, which reports what it cannot convert. Excel is read the same way:
    a number cell 7 reads ``"7"``, and a column holding only date cells reads as dates.

    Args:
        path: A ``.csv``, ``.txt`` (read as CSV), ``.parquet``, ``.xlsx`` or ``.xls`` file.
        encoding: The text encoding of a CSV file (UTF-8 may start with a byte order mark).
        delimiter: The field separator of a CSV file.
        sheet: The sheet of a workbook; None reads the first.

    Raises:
        DataContractError: The file cannot be read, is not valid text in `encoding`, or the
            workbook has no such sheet.
    """
    kind = FILE_KINDS[path.suffix.lower()]
    try:
        if kind == "csv":
            _refuse_repeated_names(path, _csv_header(path, encoding, delimiter))
            return pd.read_csv(
                path,
                dtype=str,
                keep_default_na=False,
                na_values=[""],
                encoding=_with_bom(encoding),
                sep=delimiter,
            )
        if kind == "parquet":
            return pd.read_parquet(path)
        return _read_sheet(path, sheet)
    except UnicodeDecodeError as exc:
        raise DataContractError(
            f"{path} is not valid {encoding} text ({exc.reason}: byte "
            f"0x{exc.object[exc.start]:02x} at position {exc.start}). Give its encoding, for "
            "example cp1251 or latin-1 (the `encoding` key of a mapping's source), or save it "
            "as UTF-8."
        ) from exc
    except (OSError, ValueError) as exc:
        raise DataContractError(f"Cannot read {path}: {exc}") from exc


def _csv_header(path: Path, encoding: str, delimiter: str) -> list[str]:
    with path.open(encoding=_with_bom(encoding), newline="") as file:
        return next(csv.reader(file, delimiter=delimiter), [])


def _refuse_repeated_names(path: Path, names: Sequence[object]) -> None:
    """A header naming a column twice would have one of them read under another name."""
    written = [str(name).strip() for name in names if not pd.isna(name) and str(name).strip()]
    repeated = sorted({name for name in written if written.count(name) > 1})
    if repeated:
        raise DataContractError(
            f"{path} names the column(s) {', '.join(map(repr, repeated))} more than once in its "
            "header; rename them so that each column is read under its own name."
        )


def _with_bom(encoding: str) -> str:
    """UTF-8 read so that a byte order mark (as spreadsheets write it) is not part of a name."""
    return "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding


def _read_sheet(path: Path, sheet: str | None) -> pd.DataFrame:
    # calamine reads both .xlsx and the older .xls format.
    with pd.ExcelFile(path, engine="calamine") as workbook:
        return _sheet_cells(workbook, path, sheet)


def _sheet_cells(workbook: pd.ExcelFile, path: Path, sheet: str | None) -> pd.DataFrame:
    if sheet is not None and sheet not in workbook.sheet_names:
        raise DataContractError(
            f"{path} has no sheet {sheet!r}; its sheets: {', '.join(workbook.sheet_names)}."
        )
    which = 0 if sheet is None else sheet
    header = pd.read_excel(workbook, sheet_name=which, header=None, nrows=1)
    _refuse_repeated_names(path, header.iloc[0].tolist() if len(header) else [])
    cells = pd.read_excel(
        workbook, sheet_name=which, dtype=object, keep_default_na=False, na_values=[""]
    )
    return cells.apply(_excel_column)


def _excel_column(cells: pd.Series) -> pd.Series:
    """A column of Excel cells: dates if every filled cell is a date, otherwise text."""
    filled = cells.dropna()
    if len(filled) and all(isinstance(cell, dt.date) for cell in filled):
        return pd.to_datetime(cells)
    return cells.map(_excel_text, na_action="ignore").astype("str")


def _excel_text(cell: object) -> str:
    """One Excel cell as text: whole numbers without ``.0``, dates in ISO 8601."""
    if isinstance(cell, dt.datetime):
        return cell.strftime("%Y-%m-%d" if cell.time() == dt.time() else "%Y-%m-%d %H:%M:%S")
    if isinstance(cell, dt.date):
        return cell.isoformat()
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return str(cell)


def read_workbook(path: Path) -> dict[str, pd.DataFrame]:
    """Read a workbook holding one sheet per contract table, named after the table.

    Sheets that are not contract tables are not read (`read_source` notes them).

    Raises:
        DataContractError: The workbook cannot be read or lacks a required table's sheet.
    """
    try:
        with pd.ExcelFile(path, engine="calamine") as workbook:
            sheets = [str(name) for name in workbook.sheet_names]
            missing = [table for table in REQUIRED_TABLES if table not in sheets]
            if missing:
                raise DataContractError(
                    f"Workbook {path} lacks the sheet(s) {', '.join(missing)} of the required "
                    f"table(s); its sheets: {', '.join(sheets)}."
                )
            return {
                table: _sheet_cells(workbook, path, table) for table in sheets if table in MODELS
            }
    except (OSError, ValueError) as exc:
        raise DataContractError(f"Cannot read {path}: {exc}") from exc


def fingerprint(paths: Mapping[str, Path]) -> str:
    """A short digest of the files' names and bytes: one fingerprint, one and the same data."""
    digest = hashlib.sha256()
    for table in sorted(paths):
        digest.update(table.encode())
        digest.update(paths[table].read_bytes())
    return digest.hexdigest()[:16]


def read_source(folder: Path | str) -> CRM:
    """Read and validate a data source folder, or one workbook with a sheet per table.

    Args:
        folder: Folder holding the contract's tables (CSV, Parquet or Excel files), or an
            ``.xlsx``/``.xls`` workbook whose sheets are named after the tables.

    Returns:
        The validated tables; for a workbook, a note names the sheets that were not read.

    Raises:
        DataContractError: Listing every problem of every table at once.
    """
    folder = Path(folder)
    if folder.suffix.lower() in WORKBOOKS and not folder.is_dir():
        return _read_workbook_source(folder)
    paths = find_tables(folder)
    raw = {table: read_raw(path) for table, path in paths.items()}
    return validate_tables(raw, source=str(folder), digest=fingerprint(paths))


def _read_workbook_source(path: Path) -> CRM:
    if not path.is_file():
        raise DataContractError(f"Data source {path} is not a workbook file or a folder.")
    raw = read_workbook(path)
    crm = validate_tables(raw, source=str(path), digest=fingerprint({path.name: path}))
    with pd.ExcelFile(path, engine="calamine") as workbook:
        others = [str(sheet) for sheet in workbook.sheet_names if sheet not in raw]
    if not others:
        return crm
    note = f"Sheet(s) not read, not being contract tables: {', '.join(others)}."
    return dataclasses.replace(crm, notes=(note, *crm.notes))


def spreadsheet_text(value: object) -> object:
    """A cell as it may go into a CSV or Excel file: formula-leading text gets a leading ``'``.

    Text starting with one of `FORMULA_LEADS` (``=``, ``+``, ``-``, ``@``, a tab, a carriage
    return or a full-width ``＝ ＋ － ＠``) is prefixed with ``'``, which spreadsheets show as
    text. A text that is only a plain decimal number (``-5``, ``+0.25``, ``-1e3``) is left alone:
    a spreadsheet reads it as that number and nothing else. Anything that is not text (numbers,
    dates, missing values) is returned as it is.
    """
    if (
        isinstance(value, str)
        and value.startswith(FORMULA_LEADS)
        and not _PLAIN_NUMBER.fullmatch(value)
    ):
        return "'" + value
    return value


def _is_text(dtype: object) -> bool:
    return pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)


def _safe_labels(labels: pd.Index) -> pd.Index:
    if isinstance(labels, pd.MultiIndex):
        return labels.map(lambda label: tuple(spreadsheet_text(part) for part in label))
    return labels.map(spreadsheet_text) if _is_text(labels.dtype) else labels


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` whose text cannot run as a spreadsheet formula.

    Every text cell (object, string or categorical column), column header and index label passes
    through `spreadsheet_text`; numeric, boolean and date columns are not touched, so a numeric
    column of -5 stays -5. Use it on every frame written to CSV or Excel.

    Args:
        frame: The table to write.

    Returns:
        A new frame; text columns keep their dtype, categorical ones become text.
    """
    safe = frame.copy()
    for position in range(safe.shape[1]):
        values = safe.iloc[:, position]
        if isinstance(values.dtype, pd.CategoricalDtype):
            values = values.astype(object)
        elif not _is_text(values.dtype):
            continue
        cells = [spreadsheet_text(value) for value in values]
        safe.isetitem(position, pd.Series(cells, index=values.index, dtype=values.dtype))
    safe.columns = _safe_labels(safe.columns)
    safe.index = _safe_labels(safe.index)
    return safe


def write_csv(frame: pd.DataFrame, target: Path | TextIO, date_format: str | None = None) -> None:
    """Write a table as CSV a spreadsheet can open safely: `spreadsheet_safe`, then RFC 4180.

    Rows end in CRLF, so a text holding a carriage return or a line feed is quoted and cannot
    start a new row (whose first cell could then be a formula). The index is not written.

    Args:
        frame: The table.
        target: A file path, or an open text stream such as ``sys.stdout``.
        date_format: How dates are written (pandas' default when None).
    """
    spreadsheet_safe(frame).to_csv(
        target, index=False, lineterminator="\r\n", date_format=date_format
    )


def write_tables(tables: Mapping[str, pd.DataFrame], folder: Path, fmt: str = "csv") -> list[Path]:
    """Write tables as a data source folder (``csv`` or ``parquet``), one file per table.

    CSV files are written by `write_csv`, so text starting like a formula reads back
    with a leading ``'``; Parquet keeps every text exactly as it is. Write a source that is meant
    to be read back verbatim, formula-like text included, as Parquet.
    """
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for table, frame in tables.items():
        path = folder / f"{table}.{fmt}"
        for stale in folder.glob(f"{table}.*"):
            if stale.suffix.lower() in READERS and stale != path:
                stale.unlink()
        if fmt == "parquet":
            frame.to_parquet(path, index=False)
        else:
            write_csv(frame, path, date_format="%Y-%m-%d %H:%M:%S")
        written.append(path)
    return written


def _as_written(number: type) -> type:
    """A subclass of `number` whose values remember how YAML wrote them, for text fields."""

    class AsWritten(number):  # type: ignore[valid-type, misc]
        written: str

        def __new__(cls, value: Any, written: str) -> AsWritten:
            made = super().__new__(cls, value)
            made.written = written
            return made

        def __str__(self) -> str:
            return self.written

        def __reduce__(self) -> tuple[Any, ...]:
            return (type(self), (number(self), self.written))

    AsWritten.__name__ = AsWritten.__qualname__ = f"_{number.__name__.title()}AsWritten"
    return AsWritten


_IntAsWritten = _as_written(int)
_FloatAsWritten = _as_written(float)


class _CodeKeepingLoader(yaml.SafeLoader):
    """A safe loader reading plain scalars by the YAML 1.2 core schema.

    Only ``true``/``false`` are booleans; ``NO``, ``on``, ``off``, ``yes`` and ``y`` stay strings.
    Integers are plain decimals without leading zeros (``1500``, ``-3``) and floats have a
    decimal point or an exponent (``0.15``, ``1e3``, ``.inf``); codes such as ``007``, ``0755``,
    ``0x1F``, ``1_000`` or ``1:20`` stay strings, and so do dates (``2024-01-01``). ``null``,
    ``~`` and an empty value are None. Numbers remember how they were written, so `str()` of one
    gives its text back (a text field given ``1e3`` reads ``"1e3"``, not ``"1000.0"``). Tags that
    build Python objects (``!!python/object``) are refused, as by every safe loader.
    """

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:  # type: ignore[override]
        """An integer carrying its written text."""
        return _IntAsWritten(super().construct_yaml_int(node), str(node.value))

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:  # type: ignore[override]
        """A float carrying its written text."""
        return _FloatAsWritten(super().construct_yaml_float(node), str(node.value))


_KEPT = {"tag:yaml.org,2002:null", "tag:yaml.org,2002:merge"}
_CodeKeepingLoader.yaml_implicit_resolvers = {
    key: kept
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    if (kept := [(tag, regexp) for tag, regexp in resolvers if tag in _KEPT])
}
_CodeKeepingLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_CodeKeepingLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789")
)
_CodeKeepingLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?
        |[-+]?[0-9]+[eE][-+]?[0-9]+
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.VERBOSE,
    ),
    list("-+.0123456789"),
)
_CodeKeepingLoader.add_constructor("tag:yaml.org,2002:int", _CodeKeepingLoader.construct_yaml_int)
_CodeKeepingLoader.add_constructor(
    "tag:yaml.org,2002:float", _CodeKeepingLoader.construct_yaml_float
)
# ``<<`` merges mappings as a key; anywhere else it is just text.
_CodeKeepingLoader.add_constructor("tag:yaml.org,2002:merge", _CodeKeepingLoader.construct_yaml_str)


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping with a safe loader: no code, only true/false as booleans, codes as text.

    See `_CodeKeepingLoader` for how plain values are read.

    Raises:
        ParamsError: Naming the file when it cannot be read, is not valid YAML, uses a tag that
            builds Python objects or does not hold a mapping.
    """
    try:
        loaded = yaml.load(path.read_text(encoding="utf-8"), Loader=_CodeKeepingLoader)
    except OSError as exc:
        raise ParamsError(f"Cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ParamsError(f"{path} must hold a mapping of keys to values.")
    return loaded


def write_atomically(path: Path, text: str) -> None:
    """Write a text file so that a reader sees the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def write_json(data: Any, path: Path) -> Path:
    """Write `data` as stable, indented JSON (NaN written as null), replacing the file at once."""
    write_atomically(path, json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    return path


def read_json(path: Path) -> Any:
    """Read a JSON file written by `write_json`."""
    return json.loads(path.read_text(encoding="utf-8"))


def read_recorded_results(
    reports_dir: Path, months: Sequence[pd.Period], department_ids: Sequence[str]
) -> dict[tuple[pd.Period, str], dict | str]:
    """The recorded results of monthly runs: ``monthly/<YYYY-MM>/<department_id>.kpis.json``.

    Numbers are read exactly as written (a target written as 0.15 reads back as 0.15).

    Args:
        reports_dir: The reports folder (``reports/``), holding ``monthly/``.
        months: The months to look for.
        department_ids: The departments to look for.

    Returns:
        The parsed file of each (month, department) that has one; months and departments without
        a file are simply not in the result. A file that cannot be read, is not valid JSON or
        not a JSON object is given as the text of the problem (naming the file) instead: one
        broken file must not stop a report that only reads them for their history.
    """
    recorded: dict[tuple[pd.Period, str], dict | str] = {}
    for month in months:
        for department_id in department_ids:
            path = reports_dir / "monthly" / f"{month:%Y-%m}" / f"{department_id}.kpis.json"
            if not path.is_file():
                continue
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                recorded[(month, department_id)] = f"cannot read {path.name}: {exc}"
                continue
            if not isinstance(data, dict):
                recorded[(month, department_id)] = f"{path.name} is not a JSON object"
                continue
            recorded[(month, department_id)] = data
    return recorded
