"""Monthly snapshots of the CRM data in an embedded DuckDB store, and what changed between two.

Each month the CRM export is ingested as a new dated snapshot; older ones stay. Reports run on the
latest snapshot or a named one (``data/kpi.duckdb#3``) and record which. A diff between two
snapshots tells data being corrected (deals added late into closed months, edited or deleted) from
business.

Layout of a store (one DuckDB file, default ``data/kpi.duckdb``):

- ``snapshots``: one row per snapshot: ``id`` (1, 2, ...), ``label`` (unique; by default the
  data's latest complete month, ``2026-11``), ``taken_at`` (TIMESTAMP in UTC), ``source`` (where
  the data came from), ``fingerprint`` (a digest of the stored contents), ``rows`` (JSON: the row
  count of each table the snapshot holds; a table the source lacked is not in it), ``columns``
  (JSON: the contract columns each of those tables had, in their order) and ``notes`` (JSON: the
  validation's notes).
- one table per contract table (`kpilib.schemas.MODELS`), named after it: a leading
  ``snapshot_id`` column, then every contract column of the table; ids and text are VARCHAR, dates
  TIMESTAMP_NS (the nanosecond TIMESTAMP, as exact as pandas) and numbers DOUBLE.

Only the contract's columns are stored: columns an export has beyond the contract are not. A
contract column or table the source lacked is absent again when read back (never an empty table or
a column of blanks: absent means no data). Snapshots are ordered by ``taken_at``, then by id.

DuckDB locks the file: while one process writes it, no other can open it (and while processes
read it, none can write); a store in use is reported as such rather than waited for.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from kpilib import paths
from kpilib.errors import DataContractError, ParamsError
from kpilib.periods import latest_complete_month
from kpilib.schemas import CRM, MODELS, contract_columns

DEFAULT_STORE = paths.ROOT / "data" / "kpi.duckdb"
LATEST = "latest"

KEYS: dict[str, tuple[str, ...]] = {
    "departments": ("department_id",),
    "managers": ("manager_id",),
    "clients": ("client_id",),
    "products": ("product_id",),
    "deals": ("deal_id",),
    "deliveries": ("deal_id", "promised_on"),
    "requests": ("request_id",),
    "leads": ("lead_id",),
    "plans": ("period", "metric", "manager_id", "department_id"),
}
"""The columns that name a row of each table, for diffs (a plan's owner is one of the last two)."""

EDITED_COLUMNS = (
    "stage",
    "amount",
    "closed_on",
    "created_on",
    "manager_id",
    "client_id",
    "cost_price",
    "product_id",
)
"""The deal columns whose edits a diff lists one by one."""

_SQL_TYPES = {"O": "VARCHAR", "M": "TIMESTAMP_NS", "f": "DOUBLE"}  # by the pandas dtype's kind
_SNAPSHOT_COLUMNS = ("id", "label", "taken_at", "source", "fingerprint", "rows", "columns", "notes")
_REF = re.compile(r"(?P<store>.+\.duckdb)(?:#(?P<ref>.*))?", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class Snapshot:
    """One stored snapshot.

    Attributes:
        id: Its number in the store (1, 2, ...).
        label: Its unique name, by default the data's latest complete month (``2026-11``).
        taken_at: When the data was taken (by default, ingested): an aware datetime in UTC.
        source: Where the data came from (the CRM's ``source``).
        fingerprint: A digest of the stored contents: equal data, equal fingerprint.
        rows: The row count of each table it holds; a table the source lacked is not in it.
        notes: The validation's notes on the data.
    """

    id: int
    label: str
    taken_at: datetime
    source: str
    fingerprint: str
    rows: dict[str, int]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class IngestResult:
    """What `ingest` did: the snapshot, and whether it is new (False: the store held the data)."""

    snapshot: Snapshot
    created: bool


@dataclass(frozen=True, eq=False)
class SnapshotDiff:
    """What changed between two snapshots.

    Attributes:
        old: The earlier snapshot.
        new: The later snapshot.
        added: Deals in new, not in old (new's contract columns), with a bool column ``late``: the
            deal's month (``closed_on`` when won or lost, else ``created_on``) is one the old
            snapshot already covered completely.
        deleted: Deals in old, not in new (old's contract columns).
        edited: One row per changed (deal, column) of `EDITED_COLUMNS`: ``deal_id``, ``column``,
            ``old`` and ``new`` as text (missing where empty); columns only one snapshot has are
            not compared.
        tables: Per contract table (index ``table``): ``rows_old`` and ``rows_new`` (missing where
            the snapshot lacks the table), ``added``, ``deleted`` and ``changed`` rows by the
            table's `KEYS`, comparing the columns both snapshots have.
        covered: The latest month the old snapshot covered completely (None: no dated data).
        old_deals: The old snapshot's deals.
        new_deals: The new snapshot's deals.
    """

    old: Snapshot
    new: Snapshot
    added: pd.DataFrame
    deleted: pd.DataFrame
    edited: pd.DataFrame
    tables: pd.DataFrame
    covered: pd.Period | None
    old_deals: pd.DataFrame
    new_deals: pd.DataFrame


def is_store(path: str | Path) -> bool:
    """Whether `path` names a snapshot store: it ends with ``.duckdb``, maybe with ``#ref``."""
    return _REF.fullmatch(str(path)) is not None


def parse_ref(text: str) -> tuple[Path, str | None]:
    """A store reference split: ``data/kpi.duckdb#3`` -> (``data/kpi.duckdb``, ``"3"``).

    Returns:
        The store's path, and the snapshot named after ``#`` (None when there is none).
    """
    matched = _REF.fullmatch(text)
    if matched is None:
        return Path(text), None
    return Path(matched["store"]), matched["ref"] or None


def snapshot_ref(store: Path, snapshot: Snapshot) -> str:
    """A reference naming exactly `snapshot` of `store`, read back by `parse_ref`."""
    return f"{store}#{snapshot.id}"


def _fingerprint(frames: dict[str, pd.DataFrame]) -> str:
    """A digest of the tables a snapshot stores, row order aside.

    Each table is sorted by its key (then by every column) and hashed with
    `pandas.util.hash_pandas_object`, after its name and columns; an absent table adds nothing.
    """
    digest = hashlib.sha256()
    for table, frame in frames.items():
        digest.update(f"{table}:{','.join(frame.columns)}\n".encode())
        key = [c for c in KEYS[table] if c in frame]
        ordered = frame.sort_values(key + [c for c in frame if c not in key], ignore_index=True)
        digest.update(pd.util.hash_pandas_object(ordered, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def ingest(
    store: Path, crm: CRM, label: str | None = None, *, taken_at: datetime | None = None
) -> IngestResult:
    """Store a validated CRM as a new snapshot, in one transaction.

    Args:
        store: The store's file; created, with its folder, when absent.
        crm: The validated data.
        label: The snapshot's name; by default the data's latest complete month (``2026-11``),
            with ``-2``, ``-3``... appended when taken.
        taken_at: When the data was taken (default now); a naive datetime is read as UTC.

    Returns:
        The new snapshot, or the stored one holding the same data (``created`` False; the label
        given is then not used).

    Raises:
        DataContractError: The label is taken by another snapshot, the file is not a snapshot
            store, or another process is using it. A failure leaves the store as it was, and
            removes a store file this call created.
        ParamsError: The label is empty, only digits, ``latest``, or holds ``#`` or a line break.
    """
    if label is not None:
        _check_label(label)
    taken = _utc(taken_at or datetime.now(UTC))
    new_file = not store.exists()
    store.parent.mkdir(parents=True, exist_ok=True)
    with _connect(store, write=True) as con:
        try:
            return _ingest(con, store, crm, label, taken)
        except BaseException:
            if new_file and _holds_nothing(con):
                con.close()
                remove_store(store)
            raise


def list_snapshots(store: Path) -> list[Snapshot]:
    """The store's snapshots, oldest first; none when the store file does not exist yet.

    Raises:
        DataContractError: The file is not a snapshot store, or another process is writing it.
    """
    if not store.exists():
        return []
    with _connect(store, write=False) as con:
        return _snapshots(con)


def find_snapshot(store: Path, which: str | None) -> Snapshot:
    """The snapshot `which` names: None or ``latest`` the newest, else an id (``3``) or a label.

    The newest is the one taken last (`Snapshot.taken_at`; the higher id between equal times).

    Raises:
        DataContractError: The store holds no such snapshot (the message lists those it holds).
    """
    with _connect(store, write=False) as con:
        return _pick(_snapshots(con), which, store)


def read_snapshot(store: Path, which: str | None = None) -> CRM:
    """The CRM as ingested into snapshot `which` (see `find_snapshot`; default the newest).

    Returns:
        The snapshot's tables (contract columns, as ingested; absent tables None), its notes, its
        fingerprint, and as source ``<store> snapshot <id> (<label>, taken <UTC time>)``.

    Raises:
        DataContractError: See `find_snapshot`.
    """
    with _connect(store, write=False) as con:
        return _read(con, store, _pick(_snapshots(con), which, store))


def diff_snapshots(store: Path, old: str | None, new: str | None) -> SnapshotDiff:
    """What changed from snapshot `old` to snapshot `new` (named as for `find_snapshot`).

    Args:
        store: The store.
        old: The earlier snapshot; None: the one before `new`.
        new: The later snapshot; None: the newest.

    Raises:
        DataContractError: The store holds fewer than two snapshots, `new` is the oldest and no
            `old` was named, or a snapshot named is not in the store.
    """
    with _connect(store, write=False) as con:
        snapshots = _snapshots(con)
        if len(snapshots) < 2:
            raise DataContractError(
                f"The store {store} holds {len(snapshots)} snapshot(s); a diff needs two."
            )
        later = _pick(snapshots, new, store)
        if old is None:
            before = snapshots[: snapshots.index(later)]
            if not before:
                raise DataContractError(
                    f"Snapshot {_name(later)} is the oldest in {store}: there is none before it "
                    "to compare with."
                )
            earlier = before[-1]
        else:
            earlier = _pick(snapshots, old, store)
        old_crm, new_crm = _read(con, store, earlier), _read(con, store, later)
    return _compare(earlier, later, old_crm, new_crm)


def corrections_by_month(
    diff: SnapshotDiff, managers: Collection[str] | None = None
) -> pd.DataFrame:
    """Won revenue of the months the old snapshot covered completely, old against new.

    A month is a won deal's ``closed_on`` month. For every month from the first with won revenue
    up to `SnapshotDiff.covered`, the change splits exactly into what deals added late, deals
    deleted and deals edited (their stage, amount, close date or manager) brought: how much of
    the change in past months is data being corrected.

    Args:
        diff: The two snapshots compared.
        managers: Only the deals of these managers (a department's); every deal when None. A
            deal handed to one of them, or away, counts as edited.

    Returns:
        Index ``month`` (monthly periods); columns ``revenue_old``, ``revenue_new``, ``change``
        (new minus old), ``late_added``, ``deleted`` (negative: revenue that left) and ``edited``,
        the last three adding up to ``change``. No rows when the old snapshot covered no month.
    """
    columns = ["revenue_old", "revenue_new", "change", "late_added", "deleted", "edited"]
    old_won, new_won = _won(diff.old_deals), _won(diff.new_deals)
    if managers is not None:
        old_won = old_won.loc[old_won["manager_id"].isin(list(managers))]
        new_won = new_won.loc[new_won["manager_id"].isin(list(managers))]
    months = pd.concat([old_won["month"], new_won["month"]])
    if diff.covered is not None:
        months = months[months <= diff.covered]
    if diff.covered is None or months.empty:
        empty = pd.PeriodIndex([], freq="M", name="month")
        return pd.DataFrame(columns=columns, index=empty, dtype=float)
    index = pd.period_range(months.min(), diff.covered, freq="M", name="month")
    in_old = new_won["deal_id"].isin(diff.old_deals["deal_id"])
    in_new = old_won["deal_id"].isin(diff.new_deals["deal_id"])

    def revenue(won: pd.DataFrame) -> pd.Series:
        return won.groupby("month")["amount"].sum().reindex(index, fill_value=0.0)

    table = pd.DataFrame(
        {
            "revenue_old": revenue(old_won),
            "revenue_new": revenue(new_won),
            "late_added": revenue(new_won.loc[~in_old]),
            "deleted": 0.0 - revenue(old_won.loc[~in_new]),  # 0.0 - 0.0 is 0.0, not -0.0
            "edited": revenue(new_won.loc[in_old]) - revenue(old_won.loc[in_new]),
        },
        index=index,
    )
    table["change"] = table["revenue_new"] - table["revenue_old"]
    return table[columns]


def describe_diff(diff: SnapshotDiff, limit: int = 10) -> str:
    """The diff in plain text, for people.

    Rows per table; the late-added deals, the edited deal fields and the deleted deals (the first
    `limit` of each, by deal id, and how many more); the corrections to won revenue of the months
    the old snapshot covered, month by month with totals.
    """
    lines = [
        f"From snapshot {_name(diff.old)} to snapshot {_name(diff.new)}.",
        "",
        "Rows per table (added, deleted and changed by each table's key):",
        _indent(_tables_text(diff.tables)),
        "",
    ]
    late = diff.added.loc[diff.added["late"]]
    covered = f"up to {diff.covered:%Y-%m}" if diff.covered is not None else "none"
    lines.append(
        f"Deals added late, into months the old snapshot covered completely ({covered}): "
        f"{len(late)} of {len(diff.added)} added."
    )
    lines += _listed(late, limit, _deal_line)
    deals = diff.edited["deal_id"].nunique()
    lines.append(f"Edited deal fields: {len(diff.edited)}, in {deals} deal(s).")
    lines += _listed(diff.edited, limit, _edit_line)
    lines.append(f"Deleted deals: {len(diff.deleted)}.")
    lines += _listed(diff.deleted, limit, _deal_line)
    lines += ["", _corrections_text(corrections_by_month(diff), covered)]
    return "\n".join(lines)


# Storing.


def _contract_frames(crm: CRM) -> dict[str, pd.DataFrame]:
    """The CRM's present tables, cut to their contract columns, in contract table order."""
    frames = {}
    for table, frame in crm.tables().items():
        contract = set(contract_columns(table))
        frames[table] = frame[[c for c in frame.columns if c in contract]]
    return frames


def _ingest(
    con: duckdb.DuckDBPyConnection, store: Path, crm: CRM, label: str | None, taken: datetime
) -> IngestResult:
    frames = _contract_frames(crm)
    digest = _fingerprint(frames)
    con.execute("BEGIN TRANSACTION")
    try:
        _create_tables(con, store)
        snapshots = _snapshots(con)
        for snapshot in snapshots:
            if snapshot.fingerprint == digest:
                con.execute("ROLLBACK")
                return IngestResult(snapshot, created=False)
        label = _free_label(snapshots, label, crm, taken, store)
        snapshot = Snapshot(
            id=max((s.id for s in snapshots), default=0) + 1,
            label=label,
            taken_at=taken,
            source=crm.source,
            fingerprint=digest,
            rows={table: len(frame) for table, frame in frames.items()},
            notes=tuple(crm.notes),
        )
        con.execute(
            f"INSERT INTO snapshots ({', '.join(_SNAPSHOT_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in _SNAPSHOT_COLUMNS)})",
            [
                snapshot.id,
                snapshot.label,
                taken.replace(tzinfo=None),
                snapshot.source,
                snapshot.fingerprint,
                json.dumps(snapshot.rows),
                json.dumps({table: list(frame.columns) for table, frame in frames.items()}),
                json.dumps(list(snapshot.notes)),
            ],
        )
        for table, frame in frames.items():
            _insert_rows(con, table, snapshot.id, frame)
        con.execute("COMMIT")
    except BaseException:
        _rollback(con)
        raise
    return IngestResult(snapshot, created=True)


def _insert_rows(
    con: duckdb.DuckDBPyConnection, table: str, snapshot_id: int, frame: pd.DataFrame
) -> None:
    """Append `frame`'s rows to the store's `table` as snapshot `snapshot_id`'s."""
    columns = ", ".join(f'"{column}"' for column in frame.columns)
    con.register("incoming", frame)
    try:
        con.execute(
            f'INSERT INTO "{table}" (snapshot_id, {columns}) SELECT ?, {columns} FROM incoming',
            [snapshot_id],
        )
    finally:
        con.unregister("incoming")


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll the open transaction back; a transaction that failed to commit is already gone."""
    with suppress(duckdb.TransactionException):
        con.execute("ROLLBACK")


def _create_tables(con: duckdb.DuckDBPyConnection, store: Path) -> None:
    """Create the store's tables in a file that holds none; check them in one that does."""
    if _table_names(con):
        _check_layout(con, store)
        return
    con.execute(
        "CREATE TABLE snapshots (id BIGINT PRIMARY KEY, label VARCHAR NOT NULL UNIQUE, "
        "taken_at TIMESTAMP NOT NULL, source VARCHAR NOT NULL, fingerprint VARCHAR NOT NULL, "
        "rows VARCHAR NOT NULL, columns VARCHAR NOT NULL, notes VARCHAR NOT NULL)"
    )
    for table in MODELS:
        columns = ", ".join(f'"{name}" {sql}' for name, sql in _sql_columns(table).items())
        con.execute(f'CREATE TABLE "{table}" (snapshot_id BIGINT NOT NULL, {columns})')


def _sql_columns(table: str) -> dict[str, str]:
    """The store's column types of a contract table, in contract order."""
    return {name: _SQL_TYPES[dtype.kind] for name, dtype in _dtypes(table).items()}


def _dtypes(table: str) -> dict[str, Any]:
    """The pandas dtypes the contract gives a table's columns (text, dates or numbers)."""
    columns = MODELS[table].to_schema().columns
    return {name: column.dtype.type for name, column in columns.items()}


def _check_label(label: str) -> None:
    if (
        not label.strip()
        or label != label.strip()
        or not label.isprintable()
        or "#" in label
        or label.isdigit()
        or label.lower() == LATEST
        or is_store(label)
    ):
        raise ParamsError(
            f"Snapshot label {label!r} cannot be used: a label is printable text without spaces "
            f"around it or '#', and is neither only digits (those name ids), '{LATEST}' nor a "
            "store's name (ending in .duckdb)."
        )


def _free_label(
    snapshots: list[Snapshot], label: str | None, crm: CRM, taken: datetime, store: Path
) -> str:
    """The label given when free, or the default label not yet used."""
    taken_by = {s.label: s for s in snapshots}
    if label is not None:
        if label in taken_by:
            other = taken_by[label]
            raise DataContractError(
                f"The store {store} already has a snapshot labelled {label!r} (snapshot "
                f"{_name(other)}) holding other data; choose another label."
            )
        return label
    month = _covered(crm)
    base = f"{month:%Y-%m}" if month is not None else f"{taken:%Y-%m-%d}"
    candidate, number = base, 1
    while candidate in taken_by:
        number += 1
        candidate = f"{base}-{number}"
    return candidate


def _covered(crm: CRM) -> pd.Period | None:
    """The data's latest complete month; None when the data holds no dated activity."""
    try:
        return latest_complete_month(crm)
    except ValueError:  # no activity date at all
        return None


def _utc(moment: datetime) -> datetime:
    """`moment` as an aware UTC datetime (a naive one is taken to be in UTC already)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


# Reading.


@contextmanager
def _connect(store: Path, *, write: bool) -> Iterator[duckdb.DuckDBPyConnection]:
    """An open connection to `store`, closed on leaving; DuckDB's errors told for people.

    A store opened only to read must exist and have the layout of a snapshot store.
    """
    if not write and not store.exists():
        raise DataContractError(f"The store {store} does not exist (kpi ingest creates it).")
    try:
        con = duckdb.connect(str(store), read_only=not write)
    except duckdb.Error as exc:
        if "lock" in str(exc).lower():
            raise DataContractError(
                f"The store {store} is in use by another process; try again when it has finished."
            ) from exc
        raise DataContractError(f"{store} cannot be opened as a snapshot store: {exc}") from exc
    try:
        if not write:
            _check_layout(con, store)
        yield con
    finally:
        con.close()


def _table_names(con: duckdb.DuckDBPyConnection) -> set[str]:
    found = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
    ).fetchall()
    return {name for (name,) in found}


def _check_layout(con: duckdb.DuckDBPyConnection, store: Path) -> None:
    """Refuse a DuckDB file that is not a snapshot store of this data contract."""
    found = con.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'main'"
    ).fetchall()
    columns: dict[str, set[str]] = {}
    for table, column in found:
        columns.setdefault(table, set()).add(column)
    expected = {"snapshots": set(_SNAPSHOT_COLUMNS)} | {
        table: {"snapshot_id", *contract_columns(table)} for table in MODELS
    }
    lacking = [
        f"{table} ({', '.join(sorted(wanted - columns.get(table, set())))})"
        if table in columns
        else table
        for table, wanted in expected.items()
        if not wanted <= columns.get(table, set())
    ]
    if lacking:
        raise DataContractError(
            f"{store} is not a snapshot store of this kit: it lacks {', '.join(lacking)}."
        )


def _holds_nothing(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the database holds no table (False when it cannot even tell)."""
    try:
        return not _table_names(con)
    except duckdb.Error:
        return False


def remove_store(store: Path) -> None:
    """Remove a store file and its write-ahead log (nothing when absent)."""
    for path in (store, store.with_name(store.name + ".wal")):
        path.unlink(missing_ok=True)


def _snapshots(con: duckdb.DuckDBPyConnection) -> list[Snapshot]:
    found = con.execute(
        f"SELECT {', '.join(_SNAPSHOT_COLUMNS)} FROM snapshots ORDER BY taken_at, id"
    ).fetchall()
    return [
        Snapshot(
            id=int(row[0]),
            label=row[1],
            taken_at=row[2].replace(tzinfo=UTC),
            source=row[3],
            fingerprint=row[4],
            rows=json.loads(row[5]),
            notes=tuple(json.loads(row[7])),
        )
        for row in found
    ]


def _pick(snapshots: list[Snapshot], which: str | None, store: Path) -> Snapshot:
    if not snapshots:
        raise DataContractError(f"The store {store} holds no snapshot yet (kpi ingest adds one).")
    wanted = LATEST if which is None else str(which).strip()
    if wanted.lower() == LATEST:
        return snapshots[-1]
    for snapshot in snapshots:
        if (wanted.isdigit() and snapshot.id == int(wanted)) or snapshot.label == wanted:
            return snapshot
    held = "\n".join(f"- {_name(s)}" for s in snapshots)
    raise DataContractError(
        f"The store {store} holds no snapshot {wanted!r} (give an id, a label or "
        f"'{LATEST}'); it holds:\n{held}"
    )


def _read(con: duckdb.DuckDBPyConnection, store: Path, snapshot: Snapshot) -> CRM:
    (stored,) = con.execute("SELECT columns FROM snapshots WHERE id = ?", [snapshot.id]).fetchone()
    tables = {}
    for table, columns in json.loads(stored).items():
        names = ", ".join(f'"{column}"' for column in columns)
        frame = con.execute(
            f'SELECT {names} FROM "{table}" WHERE snapshot_id = ? ORDER BY rowid', [snapshot.id]
        ).df()
        dtypes = _dtypes(table)
        tables[table] = frame.astype({column: dtypes[column] for column in columns})
    return CRM(
        **tables,
        fingerprint=snapshot.fingerprint,
        source=f"{store} snapshot {snapshot.id} ({snapshot.label}, "
        f"taken {snapshot.taken_at:%Y-%m-%d %H:%M}, from {snapshot.source})",
        notes=snapshot.notes,
    )


# Comparing.


def _compare(old: Snapshot, new: Snapshot, old_crm: CRM, new_crm: CRM) -> SnapshotDiff:
    covered = _covered(old_crm)
    old_deals, new_deals = old_crm.deals, new_crm.deals
    added = new_deals.loc[~new_deals["deal_id"].isin(old_deals["deal_id"])]
    added = added.assign(late=_late(added, covered)).reset_index(drop=True)
    deleted = old_deals.loc[~old_deals["deal_id"].isin(new_deals["deal_id"])]
    return SnapshotDiff(
        old=old,
        new=new,
        added=added,
        deleted=deleted.reset_index(drop=True),
        edited=_edited(old_deals, new_deals),
        tables=_table_changes(old_crm, new_crm),
        covered=covered,
        old_deals=old_deals,
        new_deals=new_deals,
    )


def _late(deals: pd.DataFrame, covered: pd.Period | None) -> pd.Series:
    """Whether each deal's month (closed_on when won or lost, else created_on) is <= covered."""
    if covered is None:
        return pd.Series(False, index=deals.index)
    closed = deals.get("closed_on", deals["created_on"])  # without it, every deal is open
    when = closed.where(deals["stage"].isin(["won", "lost"]), deals["created_on"])
    return when.dt.to_period("M") <= covered


def _differs(old: pd.Series, new: pd.Series) -> pd.Series:
    """Row-wise inequality where two missing values are equal."""
    return ~(old.eq(new) | (old.isna() & new.isna()))


def _edited(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    columns = [c for c in EDITED_COLUMNS if c in old and c in new]
    both = old[["deal_id", *columns]].merge(
        new[["deal_id", *columns]], on="deal_id", suffixes=("_old", "_new")
    )
    parts = []
    for column in columns:
        changed = both.loc[_differs(both[f"{column}_old"], both[f"{column}_new"])]
        parts.append(
            pd.DataFrame(
                {
                    "deal_id": changed["deal_id"],
                    "column": column,
                    "old": _as_text(changed[f"{column}_old"]),
                    "new": _as_text(changed[f"{column}_new"]),
                }
            )
        )
    # The parts follow EDITED_COLUMNS, so a stable sort keeps each deal's columns in that order.
    edited = pd.concat(parts, ignore_index=True).astype("str")
    return edited.sort_values("deal_id", kind="stable", ignore_index=True)


def _as_text(values: pd.Series) -> pd.Series:
    """Values as people read them (see `_text`), missing ones missing."""
    return pd.Series([_text(value) for value in values], index=values.index, dtype="str")


def _text(value: object) -> str | None:
    """A date without a midnight time, a whole number without ``.0``, other numbers exactly."""
    if pd.isna(value):
        return None
    if isinstance(value, pd.Timestamp):
        return f"{value:%Y-%m-%d}" if value == value.normalize() else str(value)
    if isinstance(value, float):
        return f"{value:.0f}" if value.is_integer() else repr(value)
    return str(value)


def _table_changes(old: CRM, new: CRM) -> pd.DataFrame:
    rows = []
    for table in MODELS:
        before, after = getattr(old, table), getattr(new, table)
        rows.append(
            {
                "table": table,
                "rows_old": None if before is None else len(before),
                "rows_new": None if after is None else len(after),
                **_row_changes(before, after, KEYS[table]),
            }
        )
    frame = pd.DataFrame(rows).set_index("table")
    return frame.astype(
        {"rows_old": "Int64", "rows_new": "Int64", "added": int, "deleted": int, "changed": int}
    )


def _row_changes(
    old: pd.DataFrame | None, new: pd.DataFrame | None, key: tuple[str, ...]
) -> dict[str, int]:
    """Rows added, deleted and changed from `old` to `new`, matched by `key`.

    Rows repeating a key are matched in the order of their values, so equal repeats match.
    """
    if old is None or new is None:
        added, deleted = (0 if new is None else len(new)), (0 if old is None else len(old))
        return {"added": added, "deleted": deleted, "changed": 0}
    common = [c for c in old.columns if c in new.columns]
    matched = [c for c in key if c in common]

    def numbered(frame: pd.DataFrame) -> pd.DataFrame:
        ordered = frame[common].sort_values(common, ignore_index=True)
        return ordered.assign(_repeat=ordered.groupby(matched, dropna=False).cumcount())

    merged = numbered(old).merge(
        numbered(new),
        on=[*matched, "_repeat"],
        how="outer",
        suffixes=("_old", "_new"),
        indicator=True,
    )
    both = merged.loc[merged["_merge"].eq("both")]
    changed = pd.Series(False, index=both.index)
    for column in common:
        if column not in matched:
            changed |= _differs(both[f"{column}_old"], both[f"{column}_new"])
    return {
        "added": int(merged["_merge"].eq("right_only").sum()),
        "deleted": int(merged["_merge"].eq("left_only").sum()),
        "changed": int(changed.sum()),
    }


def _won(deals: pd.DataFrame) -> pd.DataFrame:
    """Won deals' ids, managers, ``closed_on`` months and amounts (no ``closed_on``: none won)."""
    closed = deals.get("closed_on", pd.Series(pd.NaT, index=deals.index, dtype="datetime64[ns]"))
    won = deals["stage"].eq("won")
    return pd.DataFrame(
        {
            "deal_id": deals.loc[won, "deal_id"],
            "manager_id": deals.loc[won, "manager_id"],
            "month": closed[won].dt.to_period("M"),
            "amount": deals.loc[won, "amount"],
        }
    )


# Describing.


def _name(snapshot: Snapshot) -> str:
    return f"{snapshot.id} ({_shown(snapshot.label)}, taken {snapshot.taken_at:%Y-%m-%d %H:%M} UTC)"


def _shown(text: object) -> str:
    """CRM text for a terminal: as it is when printable, else quoted with its escapes."""
    text = str(text)
    return text if text.isprintable() else repr(text)


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


def _tables_text(tables: pd.DataFrame) -> str:
    shown = tables.astype("object").where(tables.notna(), "absent")
    return shown.rename(columns={"rows_old": "rows old", "rows_new": "rows new"}).to_string(
        index_names=False
    )


def _listed(rows: pd.DataFrame, limit: int, line: Callable[[pd.Series], str]) -> list[str]:
    """The first `limit` rows by deal id, one line each, and how many more there are."""
    ordered = rows.sort_values("deal_id", kind="stable")
    listed = [f"  {line(row)}" for _, row in ordered.head(limit).iterrows()]
    if len(rows) > limit:
        listed.append(f"  ... and {len(rows) - limit} more")
    return listed


def _deal_line(deal: pd.Series) -> str:
    closed = deal.get("closed_on")
    when = (
        f"closed {closed:%Y-%m-%d}"
        if deal["stage"] != "open" and pd.notna(closed)
        else f"created {deal['created_on']:%Y-%m-%d}"
    )
    return (
        f"{_shown(deal['deal_id'])}: {deal['stage']}, {when}, amount {deal['amount']:,.0f}, "
        f"manager {_shown(deal['manager_id'])}"
    )


def _edit_line(edit: pd.Series) -> str:
    def value(text: object) -> str:
        return "(empty)" if pd.isna(text) else _shown(text)

    return (
        f"{_shown(edit['deal_id'])} {edit['column']}: {value(edit['old'])} -> {value(edit['new'])}"
    )


def _corrections_text(corrections: pd.DataFrame, covered: str) -> str:
    title = f"Won revenue of months the old snapshot covered completely ({covered})"
    touched = corrections.loc[
        corrections[["change", "late_added", "deleted", "edited"]].ne(0).any(axis=1)
    ]
    if touched.empty:
        return f"{title}: no corrections."
    total = corrections.sum().rename("total")
    shown = pd.concat([touched, total.to_frame().T])
    shown.index = [f"{m:%Y-%m}" if isinstance(m, pd.Period) else m for m in shown.index]
    shown = shown.rename(
        columns={"revenue_old": "old", "revenue_new": "new", "late_added": "late-added"}
    )
    table = shown.to_string(float_format="{:,.0f}".format)
    return (
        f"{title}: {len(touched)} of {len(corrections)} month(s) corrected.\n"
        "The corrected months (change = late-added + deleted + edited), totals over all months:\n"
        f"{_indent(table)}"
    )
