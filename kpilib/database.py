"""Database sources: the contract's tables, or a mapping's tables and queries, via SQLAlchemy.

A data source named by a SQLAlchemy URL (``postgresql://user@host/crm``, ``sqlite:///crm.db``) is
a CRM's own database, a reporting replica or a warehouse. Without a mapping its tables (or views)
carry the contract's names and columns; with one, the mapping's ``table:`` and ``query:`` sources
are read and mapped to the contract. Either way the result goes through the same validation as a
folder of files.

Values only ever travel as bound parameters; the only SQL text run as written is a mapping's own
``query:``, which is configuration. On PostgreSQL every table is read in one read-only
``REPEATABLE READ`` transaction: one consistent picture even while the CRM keeps writing; a whole
read of the contract's tables (no filters, no mapping) fetches them as columns (Arrow's ADBC
driver) rather than row by row wherever their column types allow: at a million deals 2.4 times
as fast, with half the peak memory (`benchmarks/database.py --whole`).
Every message names the database by `safe_url`, its password hidden.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from kpilib.errors import DataContractError, KpiError, ParamsError
from kpilib.mapping import Mapping as SourceMapping
from kpilib.mapping import SourceSpec, columns_read, read_mapped
from kpilib.periods import ACTIVITY_DATES
from kpilib.schemas import CRM, MODELS, REQUIRED_TABLES, contract_columns, date_columns
from kpilib.validation import validate_tables

CONNECT_TIMEOUT = 10
"""Seconds to wait for a PostgreSQL server unless the URL sets ``connect_timeout`` itself."""

_URL = re.compile(r"[A-Za-z][A-Za-z0-9_]+(?:\+[A-Za-z0-9_]+)?://")
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&]*")
_POSTGRES = ("postgresql", "postgres")  # ``postgres://`` is what many hosting services hand out
_CLOSED_STAGES = ("won", "lost")
_CONSISTENT_READ = {
    "postgresql": {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True},
}


def is_database_url(text: str) -> bool:
    """Whether `text` names a database: ``<dialect>[+driver]://...``.

    A Windows path (``C:\\crm``), a folder or a snapshot store (``data/kpi.duckdb#3``) is not.
    """
    return _URL.match(text) is not None


def _parse(url: str) -> sa.URL:
    """The URL parsed; ValueError when a password holds an ``@`` that is not written ``%40``
    (it would be read as part of the host, and shown)."""
    parsed = make_url(url)
    if "@" in (parsed.host or ""):
        raise ValueError("an @ in the user or password must be written %40")
    return parsed


def safe_url(url: str) -> str:
    """The URL with its password hidden (``***``), fit for messages and provenance."""
    try:
        shown = _parse(url).render_as_string(hide_password=True)
    except (sa_exc.ArgumentError, ValueError):
        shown = re.sub(r"(://[^/:@]*:).*@", r"\1***@", url)  # up to the last @: never less
    return _QUERY_PASSWORD.sub(r"\1***", shown)


def engine_for(url: str) -> sa.Engine:
    """An engine for the URL; a bare ``postgresql://`` uses the psycopg 3 driver.

    A PostgreSQL connection attempt gives up after `CONNECT_TIMEOUT` seconds unless the URL's
    ``connect_timeout`` says otherwise. No connection is made here.

    Raises:
        ParamsError: The URL cannot be read, or names a dialect or driver that is unknown or
            not installed.
    """
    shown = safe_url(url)
    try:
        parsed = _parse(url)
    except (sa_exc.ArgumentError, ValueError) as exc:
        raise ParamsError(
            f"{shown} is not a database URL (dialect[+driver]://user@host:port/database; {exc})."
        ) from None
    if parsed.drivername in _POSTGRES:
        parsed = parsed.set(drivername="postgresql+psycopg")
    options: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
    try:
        return sa.create_engine(parsed, **options)
    except sa_exc.NoSuchModuleError:
        raise ParamsError(
            f"{shown}: unknown database dialect or driver {parsed.drivername!r} "
            "(e.g. postgresql://, postgresql+psycopg://, sqlite:///file.db)."
        ) from None
    except ImportError as exc:
        raise ParamsError(
            f"{shown}: the driver of {parsed.drivername!r} is not installed ({exc}); "
            "for PostgreSQL use postgresql:// (psycopg 3)."
        ) from None


def _reason(error: Exception, url: str) -> str:
    """A database error in one line, without the password even if a driver repeats it."""
    cause = getattr(error, "orig", None) or error
    # SQLAlchemy's own errors end in a link to its documentation; their first argument does not.
    plain = cause.args[0] if isinstance(cause, sa_exc.SQLAlchemyError) and cause.args else cause
    text = " ".join(str(plain).split())
    try:
        password = make_url(url).password
    except (sa_exc.ArgumentError, ValueError):
        password = None
    return text.replace(str(password), "***") if password else text


def _connect(engine: sa.Engine, url: str, **options: Any) -> sa.Connection:
    try:
        connection = engine.connect()
    except sa_exc.DBAPIError as error:
        raise DataContractError(
            f"Cannot connect to {safe_url(url)}: {_reason(error, url)}"
        ) from None
    return connection.execution_options(**options) if options else connection


def _refuse_missing_file(url: sa.URL, shown: str) -> None:
    """A SQLite file that does not exist is refused; connecting would create an empty one."""
    if url.get_backend_name() != "sqlite" or "uri" in url.query:
        return
    database = url.database or ":memory:"
    if database != ":memory:" and not Path(database).is_file():
        raise DataContractError(f"Cannot connect to {shown}: there is no file {database}.")


def _column(values: pd.Series) -> pd.Series:
    # Whole numbers with gaps stay Python ints: as floats an id 7 would read "7.0".
    present = values.dropna()
    if len(present) < len(values) and all(
        isinstance(value, int) and not isinstance(value, bool) for value in present
    ):
        return values
    return values.infer_objects()


def _fetch(
    connection: sa.Connection,
    statement: sa.Executable,
    what: str,
    url: str,
    error: type[KpiError] = DataContractError,
) -> pd.DataFrame:
    """Run a statement and return its rows as a table, each column typed by its values."""
    try:
        result = connection.execute(statement)
        columns, rows = list(result.keys()), result.fetchall()
    except (sa_exc.SQLAlchemyError, ValueError) as failure:  # ValueError: a value its type refuses
        raise error(f"Cannot read {what} from {safe_url(url)}: {_reason(failure, url)}") from None
    frame = pd.DataFrame([tuple(row) for row in rows], columns=columns, dtype=object)
    for position in range(frame.shape[1]):
        frame.isetitem(position, _column(frame.iloc[:, position]))
    return frame


def _is_date(column: sa.ColumnElement | None) -> bool:
    return column is not None and isinstance(column.type, sa.Date | sa.DateTime)


def _has(table: sa.Table | None, *columns: str) -> bool:
    return table is not None and all(column in table.c for column in columns)


def _subquery(column: sa.ColumnElement, *where: sa.ColumnElement[bool]) -> sa.Select:
    # Never correlated: a subquery on the table being filtered must read that whole table.
    return sa.select(column).where(*where).correlate(None)


# The column whose date (for plans: month) ends what a report on a month needs of a table.
_DATED = {
    "deals": "created_on",
    "leads": "created_on",
    "requests": "received_at",
    "plans": "period",
}


def _until(name: str, table: sa.Table, until: pd.Period) -> list[sa.ColumnElement[bool]]:
    """Rows up to the month's end; rows without the value are kept, for validation to refuse.

    A column not stored as a date (plans: as text) is not filtered: comparing text with a date
    could leave out rows the validation would refuse.
    """
    column = table.c.get(_DATED.get(name, ""))
    if column is None:
        return []
    if name == "plans" and isinstance(column.type, sa.String):
        kept = column <= sa.bindparam("month", f"{until:%Y-%m}")
    elif name != "plans" and _is_date(column):
        kept = column < sa.bindparam("next_month", (until + 1).start_time.to_pydatetime())
    else:
        return []
    return [sa.or_(kept, column.is_(None))]


def _dating(
    tables: Mapping[str, sa.Table], dated: Mapping[str, list[sa.ColumnElement[bool]]]
) -> dict[str, list[sa.ColumnElement[bool]]]:
    """Per table, the rows that date the source, among those the month keeps.

    The latest of every activity date ends the months the source covers and its first close
    (else its first deal) starts them (`kpilib.metrics.covers`): a read that keeps these rows
    covers the same months as the whole source, so a month without the department's own
    activity still scores as covered, and a baseline before its first deal as well.
    """
    found: dict[str, list[sa.ColumnElement[bool]]] = {name: [] for name in tables}
    deals, deliveries = tables["deals"], tables.get("deliveries")
    of_kept_deals = dict(dated)
    if dated["deals"] and _has(deliveries, "deal_id") and _has(deals, "deal_id"):
        kept = _subquery(deals.c.deal_id, *dated["deals"])
        of_kept_deals["deliveries"] = [deliveries.c.deal_id.in_(kept)]
    for name, columns in ACTIVITY_DATES.items():
        table = tables.get(name)
        for column in columns:
            if table is not None and _is_date(table.c.get(column)):
                latest = _subquery(sa.func.max(table.c[column]), *of_kept_deals.get(name, []))
                found[name].append(table.c[column] == latest.scalar_subquery())
    if _is_date(deals.c.get("created_on")):
        first = _subquery(sa.func.min(deals.c.created_on), *dated["deals"])
        found["deals"].append(deals.c.created_on == first.scalar_subquery())
    if _has(deals, "stage") and _is_date(deals.c.get("closed_on")):
        closed = deals.c.stage.in_(_CLOSED_STAGES)
        first = _subquery(sa.func.min(deals.c.closed_on), closed, *dated["deals"])
        found["deals"].append(sa.and_(closed, deals.c.closed_on == first.scalar_subquery()))
    if found.get("deliveries") and _has(deals, "deal_id"):
        # A delivery comes with its deal, and only with it.
        delivered = _subquery(deliveries.c.deal_id, sa.or_(*found.pop("deliveries")))
        found["deals"].append(deals.c.deal_id.in_(delivered))
    return found


def _owned(
    tables: Mapping[str, sa.Table],
    department: str,
    dated: Mapping[str, list[sa.ColumnElement[bool]]],
) -> dict[str, sa.ColumnElement[bool]]:
    """Per table, the rows a report on the department needs (managers and departments: all).

    Deals: those of the department's managers, of their leads and of the department's
    deliveries, and every deal of the clients those deals serve (a client's first won deal
    anywhere decides whether its deals are new business). Leads, requests and plans: those of the
    department or of its managers. Each with the rows that date the source (`_dating`).
    """
    managers = tables["managers"]
    if not _has(managers, "manager_id", "department_id"):
        return {}  # validation reports the missing column; nothing can be told apart without it
    unit = sa.bindparam("department", department)
    staff = _subquery(managers.c.manager_id, managers.c.department_id == unit)
    deals, leads, deliveries = tables["deals"], tables.get("leads"), tables.get("deliveries")
    dating = _dating(tables, dated)
    owned = {}
    if _has(deals, "manager_id"):
        own = [deals.c.manager_id.in_(staff), deals.c.manager_id.is_(None)]
        if _has(deals, "lead_id") and _has(leads, "lead_id", "manager_id"):
            own.append(
                deals.c.lead_id.in_(_subquery(leads.c.lead_id, leads.c.manager_id.in_(staff)))
            )
        if _has(deals, "deal_id") and _has(deliveries, "deal_id", "department_id"):
            delivered = _subquery(deliveries.c.deal_id, deliveries.c.department_id == unit)
            own.append(deals.c.deal_id.in_(delivered))
        if "client_id" in deals.c:
            own.append(deals.c.client_id.in_(_subquery(deals.c.client_id, sa.or_(*own))))
        owned["deals"] = sa.or_(*own, *dating["deals"])
    for name in ("leads", "requests", "plans"):
        table = tables.get(name)
        owners = [table.c.department_id == unit] if _has(table, "department_id") else []
        owners += [table.c.manager_id.in_(staff)] if _has(table, "manager_id") else []
        if owners:
            owned[name] = sa.or_(*owners, *dating.get(name, []))
    return owned


def _conditions(
    tables: Mapping[str, sa.Table], until: pd.Period | None, department: str | None
) -> dict[str, list[sa.ColumnElement[bool]]]:
    """Per table, the conditions that keep what a report on the month and department needs.

    Leads and deliveries follow the deals kept: every lead a kept deal came from (whatever its
    date or manager), and the deliveries of the kept deals (not by date).
    """
    dated = {
        name: [] if until is None else _until(name, table, until) for name, table in tables.items()
    }
    found = {name: list(conditions) for name, conditions in dated.items()}
    owned = {} if department is None else _owned(tables, department, dated)
    for name, condition in owned.items():
        found[name].append(condition)
    deals, leads, deliveries = tables["deals"], tables.get("leads"), tables.get("deliveries")
    if not found["deals"]:
        return found
    if leads is not None and found["leads"] and _has(leads, "lead_id") and _has(deals, "lead_id"):
        referred = _subquery(deals.c.lead_id, *found["deals"])
        found["leads"] = [sa.or_(sa.and_(*found["leads"]), leads.c.lead_id.in_(referred))]
    if _has(deliveries, "deal_id") and _has(deals, "deal_id"):
        found["deliveries"] = [
            deliveries.c.deal_id.in_(_subquery(deals.c.deal_id, *found["deals"]))
        ]
    return found


def _contract_tables(
    connection: sa.Connection, where: str, schema: str | None
) -> dict[str, sa.Table]:
    """The contract's tables (or views) the schema holds, reflected."""
    inspector = sa.inspect(connection)
    held = set(inspector.get_table_names(schema=schema)) | set(
        inspector.get_view_names(schema=schema)
    )
    missing = [name for name in REQUIRED_TABLES if name not in held]
    if missing:
        listed = ", ".join(sorted(held)) or "none"
        raise DataContractError(
            f"Data source {where} lacks the required table(s) {', '.join(missing)} "
            f"(tables and views there: {listed})."
        )
    return {
        name: sa.Table(name, sa.MetaData(), autoload_with=connection, schema=schema)
        for name in MODELS
        if name in held
    }


def _read_contract(
    connection: sa.Connection,
    url: str,
    where: str,
    schema: str | None,
    until: pd.Period | None,
    department: str | None,
) -> dict[str, pd.DataFrame]:
    tables = _contract_tables(connection, where, schema)
    conditions = _conditions(tables, until, department)
    statements = {}
    for name, table in tables.items():
        # Ordered by the contract's columns (ids first): two reads of the same data are the same.
        order = [table.c[column] for column in contract_columns(name) if column in table.c]
        statements[name] = sa.select(table).where(*conditions[name]).order_by(*order)
    if until is None and department is None and _columnar(connection, tables):
        return _read_columns(connection, url, statements)
    return {
        name: _fetch(connection, statement, f"table {name}", url)
        for name, statement in statements.items()
    }


# PostgreSQL's column types whose values arrive as columns (`_read_columns`) exactly as the row
# by row read gives them, once `_as_rows_give` has converted them.
_COLUMNAR_TYPES = (
    sa.String,  # text, varchar, char
    sa.Integer,  # smallint, integer, bigint
    sa.Numeric,  # numeric
    sa.Float,  # double precision; not real (`_columnar` refuses it)
    sa.Date,
    sa.DateTime,  # timestamp, with or without time zone
    sa.Boolean,
)


def _columnar(connection: sa.Connection, tables: Mapping[str, sa.Table]) -> bool:
    """Whether the tables are on PostgreSQL and every column of them has a type that a columnar
    read hands over as the rows would; otherwise the tables are read row by row."""
    if connection.dialect.name != "postgresql":
        return False
    return all(
        isinstance(column.type, _COLUMNAR_TYPES) and not isinstance(column.type, sa.REAL)
        for table in tables.values()
        for column in table.columns
    )


def _read_columns(
    connection: sa.Connection, url: str, statements: Mapping[str, sa.Select]
) -> dict[str, pd.DataFrame]:
    """Read PostgreSQL tables whole, each as columns (Arrow's ADBC driver, binary COPY).

    A driver that hands over rows builds a Python object for every value, and the kit then
    builds the columns from them: a million deals took 35 s and 2.3 GB to read and validate
    that way, 15 s and 1.2 GB as columns, against 4 s for the same data in Parquet
    (`benchmarks/database.py --whole`). The columns arrive typed and are converted to what the
    row by row read gives (`_as_rows_give`), so that validation sees the same values. All tables
    are read in one read-only ``REPEATABLE READ`` transaction, as the row by row read does, on a
    connection of their own to the same URL (the same server, database, user and options).
    """
    import adbc_driver_postgresql.dbapi as adbc  # its native library loads only when used

    target = connection.engine.url.set(drivername="postgresql")
    if "connect_timeout" not in target.query:
        target = target.update_query_dict({"connect_timeout": str(CONNECT_TIMEOUT)})
    dialect = connection.dialect
    raw = {}
    try:
        with adbc.connect(target.render_as_string(hide_password=False)) as columns:
            with columns.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                for name, statement in statements.items():
                    cursor.execute(str(statement.compile(dialect=dialect)))
                    raw[name] = _as_rows_give(cursor.fetch_arrow_table())
            columns.rollback()
    except adbc.Error as failure:
        raise DataContractError(
            f"Cannot read the tables from {safe_url(url)}: {_reason(failure, url)}"
        ) from None
    return raw


def _as_rows_give(table: pa.Table) -> pd.DataFrame:
    """An Arrow table from PostgreSQL as the row by row read (`_fetch`) makes it.

    Whole numbers come as 64-bit integers, or as Python ints where some are missing (a float
    would show an id 7 as "7.0"); ``numeric`` values, which the driver hands over as text, as
    `Decimal`. Texts become pandas strings and dates ISO 8601 texts, where the row read gives
    Python strings and `datetime.date`s: validation reads both as the same strings (and parses
    the dates from those), without building a Python object per value.
    """
    frame = {}
    for field, column in zip(table.schema, table.columns, strict=True):
        name = field.name
        if pa.types.is_integer(column.type):
            frame[name] = (
                pd.Series(column.to_pylist(), dtype=object)
                if column.null_count
                else pd.Series(column.to_numpy(), dtype="int64")
            )
        elif (field.metadata or {}).get(b"POSTGRESQL:type") == b"numeric":
            frame[name] = pd.Series(
                [None if value is None else Decimal(value) for value in column.to_pylist()],
                dtype=object,
            )
        elif pa.types.is_date(column.type):
            # As text in ISO 8601, which is what validation reads the row read's dates as.
            frame[name] = column.cast(pa.string()).to_pandas()
        else:
            frame[name] = column.to_pandas()
    return pd.DataFrame(frame, columns=table.column_names)


def _read_mapped(
    connection: sa.Connection, url: str, schema: str | None, name: str, spec: SourceSpec
) -> pd.DataFrame:
    """A mapping's source: a table read whole (``schema.table`` allowed), or its query."""
    if spec.query is not None:
        what = f"mapping source {name!r} (its query)"
        return _fetch(connection, sa.text(spec.query), what, url, ParamsError)
    owner, _, table_name = str(spec.table).rpartition(".")
    try:
        table = sa.Table(
            table_name, sa.MetaData(), autoload_with=connection, schema=owner or schema
        )
    except sa_exc.NoSuchTableError:
        place = f" (schema {owner or schema})" if owner or schema else ""
        raise DataContractError(f"table {spec.table} not found in {safe_url(url)}{place}") from None
    return _fetch(
        connection, sa.select(table), f"mapping source {name!r} (table {spec.table})", url
    )


def _refuse_zoned(
    frames: Mapping[str, pd.DataFrame], read: Mapping[str, Collection[str]], where: str
) -> None:
    """Dates with a time zone are refused: which day they fall on depends on a zone not named.

    A ``timestamp with time zone`` is an instant; the contract's dates are local calendar dates
    and times, and shifting them to some zone could move a deal across midnight or a month's
    end. Only the columns `read` names are looked at (a CRM's audit timestamps are not).
    """
    zoned = [
        f"{name}.{column}"
        for name, frame in frames.items()
        for column in sorted(set(read.get(name, ())) & set(frame.columns))
        if isinstance(frame[column].dtype, pd.DatetimeTZDtype)
    ]
    if zoned:
        raise DataContractError(
            f"Data source {where} holds dates with a time zone in {', '.join(zoned)} "
            "(timestamp with time zone). The contract's dates are local dates and times without a "
            "zone, and which day an instant falls on depends on a zone the data does not name: "
            "store them as date or timestamp (without time zone), or read them through a mapping "
            "whose query converts them, e.g. "
            "`created_at AT TIME ZONE 'Europe/Moscow' AS created_on`."
        )


def _digest(raw: Mapping[str, pd.DataFrame], *context: str) -> str:
    """A digest of the tables' contents (rows in any order) and of how they were read."""
    digest = hashlib.sha256("\n".join(context).encode())
    for name in sorted(raw):
        frame = raw[name]
        digest.update(f"\n{name}:{list(frame.columns)}:{list(map(str, frame.dtypes))}".encode())
        try:
            rows = pd.util.hash_pandas_object(frame, index=False).to_numpy()
        except TypeError:  # unhashable values, such as a json column's dicts: hashed as text
            rows = pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy()
        digest.update(np.sort(rows).tobytes())
    return digest.hexdigest()[:16]


def read_database(
    url: str,
    mapping: SourceMapping | None = None,
    *,
    until: pd.Period | None = None,
    department: str | None = None,
    schema: str | None = None,
) -> CRM:
    """Read and validate the contract's tables, or a mapping's sources, from a database.

    Without a mapping, the filters are pushed down to the database as bound parameters:

    - `until`: nothing after the month's end: deals and leads created and requests received up to
      it, plans up to that month, the deliveries of the deals kept (whatever their dates) and
      every lead a kept deal came from.
    - `department`: managers and departments whole; the deals of the department's managers, of
      their leads and of the department's deliveries, and every deal of the clients those deals
      serve (a client's first won deal decides whether its deals are new business); the leads,
      requests and plans of the department or its managers; and the few rows that date the
      source (its first deal and close, the latest of each activity date), so that the read
      covers the same months as the whole source.

    A report on that month and department scores exactly as on the whole source; only the
    fetched rows are validated. Rows whose filtered date, month or manager is empty are fetched,
    so that validation refuses them. A column not stored with the type the filter compares
    (a date stored as text) is not filtered.

    With a mapping, its ``table:`` sources are read whole and its ``query:`` sources as written
    (as SQLAlchemy ``text``: a colon before a name, ``:name``, is a parameter; write ``\\:name``
    for the text itself); the filters are not applied, since the mapping may rename or reformat
    the columns they compare.

    Args:
        url: A SQLAlchemy URL; ``postgresql://`` is read with psycopg 3. A PostgreSQL URL may set
            the schema as ``?options=-csearch_path%3D<schema>``.
        mapping: A mapping whose sources are database tables and queries.
        until: Only what a report on this month needs.
        department: Only what a report on this department (its id) needs.
        schema: The schema holding the tables (default: the connection's own).

    Returns:
        The validated tables; ``source`` names the database (password hidden), schema, mapping and
        filters, and the fingerprint covers the fetched tables and these.

    Raises:
        DataContractError: The database cannot be reached or read, lacks a required table, holds
            dates with a time zone, or breaks the contract (every problem at once).
        ParamsError: The URL is invalid, the mapping names files, or a mapping's query fails.
    """
    shown = safe_url(url)
    where = shown + (f" (schema {schema})" if schema else "")
    if mapping is not None:
        files = [f"{name} ({spec.file})" for name, spec in mapping.sources.items() if spec.file]
        if files:
            raise ParamsError(
                f"Mapping {mapping.name} names files ({', '.join(files)}), but {shown} is a "
                "database: a database's mapping reads `table:` and `query:` sources."
            )
    engine = engine_for(url)
    try:
        _refuse_missing_file(engine.url, shown)
        options = _CONSISTENT_READ.get(engine.dialect.name, {})
        with _connect(engine, url, **options) as connection:
            if mapping is None:
                raw = _read_contract(connection, url, where, schema, until, department)
            else:
                raw = {
                    name: _read_mapped(connection, url, schema, name, spec)
                    for name, spec in mapping.sources.items()
                }
    finally:
        engine.dispose()
    if mapping is None:
        filters = [f"until {until:%Y-%m}"] if until is not None else []
        filters += [f"department {department}"] if department is not None else []
        source = where + (f" ({', '.join(filters)})" if filters else "")
        _refuse_zoned(raw, {table: date_columns(table) for table in raw}, source)
        return validate_tables(raw, source=source, digest=_digest(raw, source))
    source = f"{where} (mapping {mapping.name})"
    _refuse_zoned(raw, columns_read(mapping), source)
    digest = _digest(raw, source, mapping.model_dump_json(by_alias=True))
    # The mapping's problems and the contract's come out in one error.
    return read_mapped(mapping, lambda name, _spec: raw[name], source=source, digest=digest)


def _column_type(values: pd.Series) -> sa.types.TypeEngine:
    if pd.api.types.is_datetime64_any_dtype(values):
        stamps = values.dropna()
        return sa.Date() if (stamps == stamps.dt.normalize()).all() else sa.DateTime()
    if pd.api.types.is_bool_dtype(values):
        return sa.Boolean()
    if pd.api.types.is_integer_dtype(values):
        return sa.BigInteger()
    if pd.api.types.is_float_dtype(values):
        return sa.Double()
    return sa.Text()


def write_database(
    tables: Mapping[str, pd.DataFrame],
    url: str,
    *,
    schema: str | None = None,
    replace: bool = False,
) -> None:
    """Load contract tables (say, a validated source's) into a database, in one transaction.

    Columns are typed by their values: text (ids included) ``TEXT``, numbers ``DOUBLE PRECISION``
    (whole numbers ``BIGINT``), dates ``DATE`` where every value is at midnight and ``TIMESTAMP``
    (without time zone) otherwise. Nothing is written unless every table is.

    Args:
        tables: Contract tables by name.
        url: A SQLAlchemy URL (see `engine_for`).
        schema: The schema to write into (it must exist; default: the connection's own).
        replace: Replace tables that exist already; without it they are refused.

    Raises:
        ParamsError: A table is not a contract table, tables exist already and `replace` is not
            given, or the URL is invalid.
        DataContractError: The database cannot be reached or refuses the tables.
    """
    unknown = [name for name in tables if name not in MODELS]
    if unknown:
        raise ParamsError(
            f"Not contract tables: {', '.join(unknown)} (contract tables: {', '.join(MODELS)})."
        )
    where = safe_url(url) + (f" (schema {schema})" if schema else "")
    engine = engine_for(url)
    try:
        with _connect(engine, url) as connection, connection.begin():
            held = set(sa.inspect(connection).get_table_names(schema=schema))
            existing = [name for name in tables if name in held]
            if existing and not replace:
                raise ParamsError(
                    f"{where} holds the table(s) {', '.join(existing)} already; replace them "
                    "explicitly or write to another schema or database."
                )
            for name, frame in tables.items():
                types = {column: _column_type(frame[column]) for column in frame.columns}
                frame.to_sql(
                    name,
                    connection,
                    schema=schema,
                    index=False,
                    if_exists="replace" if replace else "fail",
                    dtype=types,
                )
    except sa_exc.DBAPIError as error:
        raise DataContractError(f"Cannot write to {where}: {_reason(error, url)}") from None
    finally:
        engine.dispose()
