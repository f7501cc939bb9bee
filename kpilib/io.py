"""The only module that reads and writes files: data sources, YAML and result files.

A data source is a folder holding the contract's tables as ``<table>.csv``, ``<table>.parquet`` or
``<table>.xlsx``. Cells are read as they are (CSV and Excel as text) and handed to
`kpilib.validation`, which checks them against the contract and reports every problem at once.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from kpilib.errors import DataContractError, ParamsError
from kpilib.schemas import CRM, MODELS, REQUIRED_TABLES
from kpilib.validation import validate_tables

READERS = {".csv": "csv", ".parquet": "parquet", ".xlsx": "excel", ".xls": "excel"}


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


def read_raw(path: Path) -> pd.DataFrame:
    """Read one table file as it is; CSV and Excel cells are read as text, empty cells as missing.

    Reading text keeps identifiers such as ``007`` intact and leaves every type decision to the
    contract's validation, which reports what it cannot convert.
    """
    kind = READERS[path.suffix.lower()]
    try:
        if kind == "csv":
            return pd.read_csv(
                path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8-sig"
            )
        if kind == "parquet":
            return pd.read_parquet(path)
        # calamine reads both .xlsx and the older .xls format.
        return pd.read_excel(
            path, dtype=str, keep_default_na=False, na_values=[""], engine="calamine"
        )
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise DataContractError(f"Cannot read {path}: {exc}") from exc


def fingerprint(paths: Mapping[str, Path]) -> str:
    """A short digest of the files' names and bytes: one fingerprint, one and the same data."""
    digest = hashlib.sha256()
    for table in sorted(paths):
        digest.update(table.encode())
        digest.update(paths[table].read_bytes())
    return digest.hexdigest()[:16]


def read_source(folder: Path | str) -> CRM:
    """Read and validate a data source folder.

    Args:
        folder: Folder holding the contract's tables (CSV, Parquet or Excel files).

    Returns:
        The validated tables.

    Raises:
        DataContractError: Listing every problem of every table at once.
    """
    folder = Path(folder)
    paths = find_tables(folder)
    raw = {table: read_raw(path) for table, path in paths.items()}
    return validate_tables(raw, source=str(folder), digest=fingerprint(paths))


def write_tables(tables: Mapping[str, pd.DataFrame], folder: Path, fmt: str = "csv") -> list[Path]:
    """Write tables as a data source folder (``csv`` or ``parquet``), one file per table."""
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
            frame.to_csv(path, index=False, date_format="%Y-%m-%d %H:%M:%S")
        written.append(path)
    return written


class _CodeKeepingLoader(yaml.SafeLoader):
    """YAML 1.2 style scalars: only true/false are booleans and only plain decimals integers.

    ``NO``, ``on``, ``yes`` stay strings, and so do codes such as ``007`` or ``1:20`` that YAML 1.1
    would read as octal or sexagesimal numbers.
    """


_REPLACED = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:int"}
_CodeKeepingLoader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag not in _REPLACED]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_CodeKeepingLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_CodeKeepingLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789")
)


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping with a safe loader (no code, only true/false as booleans)."""
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


def write_json(data: Any, path: Path) -> Path:
    """Write `data` as stable, indented JSON (NaN written as null)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8"
    )
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
