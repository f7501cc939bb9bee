"""One way in for every kind of data source: folders, workbooks, databases and snapshots.

A data source is named by one string, the same on the command line, in the notebooks' ``data``
parameter and in a report's provenance:

- a folder of contract tables (``data/demo``), or of a CRM's own export read through a YAML
  mapping (``--mapping mappings/maven_crm.yaml``);
- one Excel workbook holding a sheet per contract table (``crm.xlsx``);
- a SQLAlchemy database URL (``postgresql://user@host/db``), the contract's tables or the
  mapping's tables and queries;
- a snapshot store (``data/kpi.duckdb``: its latest snapshot; ``data/kpi.duckdb#3``: snapshot 3).

In parameters and notebooks, relative paths start at the kit's folder (`kpilib.paths.resolve`);
a command first makes them absolute from the working folder (`pinned`), as any command line does.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from kpilib import paths, snapshots
from kpilib.database import is_database_url, read_database
from kpilib.errors import ParamsError
from kpilib.io import read_source
from kpilib.mapping import load_mapping, read_mapped_folder
from kpilib.schemas import CRM


def open_source(
    data: str | Path,
    mapping: str | Path | None = None,
    *,
    until: pd.Period | None = None,
    department: str | None = None,
) -> CRM:
    """Read and validate the data source `data` names.

    Args:
        data: A folder, a workbook, a database URL or a snapshot store (see the module).
        mapping: A YAML mapping from the source's own tables and columns to the contract;
            for folders and databases (a snapshot is stored in the contract's shape already).
        until: For a database: only what a report on this month needs (nothing after its end).
        department: For a database: only what a report on this department needs.

    Raises:
        DataContractError: The source cannot be read or breaks the contract (every problem).
        ParamsError: The mapping is invalid or does not fit the kind of source.
    """
    text = str(data)
    kept = _KEPT.get((text, str(mapping or "")))
    if kept is not None and until is None and department is None:
        return kept
    rules = load_mapping(paths.resolve(mapping)) if mapping else None
    if is_database_url(text):
        return read_database(text, rules, until=until, department=department)
    if snapshots.is_store(text):
        if rules is not None:
            raise ParamsError(
                f"{text} is a snapshot store, already in the contract's shape: give the mapping "
                "to `kpi ingest`, which reads the CRM export through it, not to the reports."
            )
        store, ref = snapshots.parse_ref(text)
        return snapshots.read_snapshot(paths.resolve(store), ref)
    folder = paths.resolve(text)
    if rules is None:
        return read_source(folder)
    if not folder.is_dir():
        raise ParamsError(f"A mapping reads a folder of exported files; {text} is not a folder.")
    return read_mapped_folder(folder, rules, str(mapping))


_KEPT: dict[tuple[str, str], CRM] = {}


def keep(data: str, mapping: str | Path | None, crm: CRM) -> None:
    """Hand `crm`, already read and validated, to every later `open_source(data, mapping)` in
    this process and the processes it forks: the data a batch read once for all its reports.

    `data` and `mapping` must be the strings the reports are given (`pinned`; the mapping's
    absolute path or nothing); `crm` must be what reading them gives. Only `open_source` with
    no filters uses it. A new process (an analyst's kernel) keeps nothing and reads the source.
    """
    forget()
    _KEPT[(data, str(mapping or ""))] = crm


def forget() -> None:
    """Let go of the data `keep` kept: later reads read the source."""
    _KEPT.clear()


def pinned(data: str | Path) -> str:
    """`data` as a command names it, made exact: paths absolute (relative ones start at the
    working folder, as on any command line) and a store's "latest" fixed to its snapshot.

    Every report of a batch must read the same data; a snapshot ingested while the batch runs
    must not reach half of its reports.
    """
    text = str(data)
    if is_database_url(text):
        return text
    if snapshots.is_store(text):
        store, ref = snapshots.parse_ref(text)
        store = Path(store).expanduser().resolve()
        return snapshots.snapshot_ref(store, snapshots.find_snapshot(store, ref))
    return str(Path(text).expanduser().resolve())


BATCH_COPY = ".kpi-batch-data.duckdb"
"""The file in a reports folder that holds a database's data while a batch runs on it."""


@contextmanager
def read_once(
    data: str, crm: CRM, folder: Path, mapping: Path | None
) -> Iterator[tuple[str, Path | None]]:
    """The data source and mapping a batch's reports read: a database's data as read once.

    A database keeps changing while a batch runs, and its URL may hold a password, which must
    not reach the executed notebooks kept beside the reports. So the batch's validated read
    (`crm`) goes into a snapshot store of its own in `folder` for the reports to read, and is
    removed when the batch ends; every other source is handed on as it is.

    Either way the data the reports read is kept in memory (`keep`) while the batch runs, so the
    report kernels forked from the batch (`kpilib.kernels`) neither read nor validate it again.
    """
    try:
        if not is_database_url(data):
            keep(data, mapping, crm)
            yield data, mapping
            return
        store = folder / BATCH_COPY
        snapshots.remove_store(store)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            ref = snapshots.snapshot_ref(store, snapshots.ingest(store, crm, "batch").snapshot)
            keep(ref, None, open_source(ref))
            yield ref, None
        finally:
            snapshots.remove_store(store)
    finally:
        forget()
