"""Database sources: URLs, reading the contract's tables, filters pushed down, mappings, writing.

Tests marked `server` need the PostgreSQL server on 127.0.0.1:5432 (database ``test``, user
``postgres``); each run works in schemas of its own, dropped afterwards. The others use SQLite
files and run anywhere.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import pipe_table
from postgres_support import SERVER, run_sql, server, server_schema

from kpilib import database, paths
from kpilib.cli import main
from kpilib.database import (
    engine_for,
    is_database_url,
    read_database,
    safe_url,
    write_database,
)
from kpilib.errors import DataContractError, ParamsError
from kpilib.io import read_source
from kpilib.mapping import load_mapping
from kpilib.monthly import monthly_json, prepare_monthly
from kpilib.params import effective_scheme, load_run_params
from kpilib.periods import latest_complete_month
from kpilib.schemas import CRM, MODELS, contract_columns
from kpilib.scoring import score_period
from kpilib.validation import validate_tables

SECRET = "s3cret-pw"


# --- helpers ---------------------------------------------------------------------------------


def sorted_table(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """A table in a fixed order: sorted by its contract columns (ids first)."""
    keys = [column for column in contract_columns(table) if column in frame]
    return frame.sort_values(keys).reset_index(drop=True)


def assert_same_tables(expected: CRM, actual: CRM) -> None:
    """Every table equal, values and dtypes, whatever the rows' order."""
    for table in MODELS:
        assert expected.has(table) == actual.has(table), table
        if expected.has(table):
            pd.testing.assert_frame_equal(
                sorted_table(getattr(expected, table), table),
                sorted_table(getattr(actual, table), table),
                obj=table,
            )


def assert_same_scores(expected: CRM, actual: CRM, period: str, department: str | None) -> None:
    """The month's scorecard is the same on both sources."""
    scheme = effective_scheme(paths.PARAMS, load_run_params(paths.PARAMS, None, {}))
    month = pd.Period(period, freq="M")
    full = score_period(expected, scheme, month, department)
    filtered = score_period(actual, scheme, month, department)
    for part in (
        "managers",
        "manager_metrics",
        "manager_kpis",
        "departments",
        "department_metrics",
        "department_kpis",
    ):
        pd.testing.assert_frame_equal(
            getattr(full, part), getattr(filtered, part), check_like=True, obj=part
        )


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files_crm(source: Path) -> CRM:
    """The demo source as read from its files."""
    return read_source(source)


@pytest.fixture(scope="module")
def demo_schema(files_crm: CRM) -> Iterator[str]:
    """A server schema holding the demo source, loaded by `write_database`."""
    with server_schema() as schema:
        write_database(files_crm.tables(), SERVER, schema=schema)
        yield schema


@pytest.fixture(scope="module")
def demo_read(demo_schema: str) -> CRM:
    """The demo source as read back from the server, unfiltered."""
    return read_database(SERVER, schema=demo_schema)


@pytest.fixture
def fresh_schema() -> Iterator[str]:
    """An empty server schema."""
    with server_schema() as schema:
        yield schema


def spread_tables(raw: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The small sales source, with what a filter on north and March 2025 must keep or leave.

    Kept beyond north's own deals: d03 and d16 (south's deals of client c3, whose first won deal
    d03 makes north's d17 a repeat sale, not a new client) and d18 (south's deal from north's
    lead l5, which counts in north's lead conversion). Left out: south's d19 (client c7, which
    north does not serve), d20 and r5 (after March), l6 and r4 (south's), the plans of April and
    of south, and d19's delivery. East (m4, hired in 2025) has one deal, in March 2025: only the
    whole source's first deals tell that March 2024, its baseline, is a month with data.
    """
    extra = {
        "departments": pipe_table("""
            department_id | name | kind
            east          | East | sales
        """),
        "managers": pipe_table("""
            manager_id | department_id | name | tier    | hired_on
            m4         | east          | Gleb  | regular | 2025-01-10
        """),
        "clients": pipe_table("""
            client_id | name  | segment
            c6        | Sigma | SMB
            c7        | Tau   | SMB
        """),
        "deals": pipe_table("""
            deal_id | manager_id | stage | created_on | closed_on  | amount  | client_id | product_id | lead_id
            d17     | m2         | won   | 2025-03-06 | 2025-03-08 | 1600000 | c3        | p2         |
            d18     | m3         | won   | 2025-03-05 | 2025-03-15 | 40000   | c6        | p1         | l5
            d19     | m3         | won   | 2025-03-06 | 2025-03-16 | 30000   | c7        | p1         |
            d20     | m1         | open  | 2025-04-02 |            | 5000    | c1        | p1         |
            d21     | m4         | won   | 2025-03-03 | 2025-03-09 | 300000  | c7        | p1         |
        """),  # noqa: E501 (a table reads best on one line per row)
        "leads": pipe_table("""
            lead_id | created_on | channel | manager_id | cost
            l5      | 2025-03-04 | web     | m1         | 800
            l6      | 2025-03-01 | phone   | m3         | 900
        """),
        "requests": pipe_table("""
            request_id | received_at         | first_response_at   | manager_id
            r5         | 2025-04-01 09:00:00 | 2025-04-01 10:00:00 | m1
        """),
        "deliveries": pipe_table("""
            deal_id | promised_on | delivered_on | department_id
            d19     | 2025-03-20  | 2025-03-19   | logistics
        """),
    }
    tables = {name: pd.concat([frame, extra.get(name)]) for name, frame in raw.items()}
    tables["plans"] = pipe_table("""
        period  | metric  | target  | department_id | manager_id
        2025-03 | revenue | 2000000 | north         |
        2025-04 | revenue | 2100000 | north         |
        2025-03 | revenue | 100000  | south         |
        2025-03 | revenue | 900000  |               | m1
    """)
    return tables


@pytest.fixture
def spread(raw_sales: dict[str, pd.DataFrame]) -> CRM:
    """The small sales source with deals spread across departments (`spread_tables`)."""
    return validate_tables(spread_tables(raw_sales), source="spread sales source")


@pytest.fixture
def spread_url(tmp_path: Path, spread: CRM) -> str:
    """A SQLite file holding the spread source; sale types left for the reading to derive."""
    url = sqlite_url(tmp_path / "crm.db")
    write_database({**spread.tables(), "deals": spread.deals.drop(columns="sale_type")}, url)
    return url


# --- URLs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "postgresql://user@host/crm",
        "postgresql+psycopg://user:pw@host:5432/crm",
        "sqlite:///data/crm.db",
        "sqlite:////abs/crm.db",
        "duckdb:///warehouse.duckdb",
        "mssql+pyodbc://user@dsn",
    ],
)
def test_database_urls_are_recognised(text: str) -> None:
    assert is_database_url(text)


@pytest.mark.parametrize(
    "text",
    ["data/demo", r"C:\crm\export", "C://crm", "data/kpi.duckdb#3", "crm.xlsx", "", "://host"],
)
def test_paths_are_not_database_urls(text: str) -> None:
    assert not is_database_url(text)


def test_safe_url_hides_passwords() -> None:
    assert "postgresql://bob:***@host:5432/crm" == safe_url(
        f"postgresql://bob:{SECRET}@host:5432/crm"
    )
    assert "postgresql://bob@host/crm?password=***&sslmode=require" == safe_url(
        f"postgresql://bob@host/crm?password={SECRET}&sslmode=require"
    )
    assert "sqlite:///crm.db" == safe_url("sqlite:///crm.db")
    # An @ not written %40 would otherwise be taken for the end of the password.
    assert "postgresql://bob:***@host/crm" == safe_url(f"postgresql://bob:p@{SECRET}@host/crm")


def test_safe_url_hides_the_password_of_an_unreadable_url() -> None:
    shown = safe_url(f"postgresql://bob:{SECRET}@host:notaport/crm")
    assert SECRET not in shown
    assert shown.startswith("postgresql://bob:***@")


def test_a_bare_postgresql_url_uses_psycopg_3() -> None:
    engine = engine_for("postgresql://user@host/crm")
    assert "postgresql+psycopg" == engine.url.drivername
    engine.dispose()


@pytest.mark.parametrize(
    ("url", "words"),
    [
        (f"nosuchdb://bob:{SECRET}@host/crm", "unknown database dialect"),
        (f"postgresql+nosuchdriver://bob:{SECRET}@host/crm", "unknown database dialect"),
        (f"postgresql+psycopg2://bob:{SECRET}@host/crm", "is not installed"),
        (f"postgresql://bob:{SECRET}@host:notaport/crm", "is not a database URL"),
        (f"postgresql://bob:p@{SECRET}@host/crm", "must be written %40"),
    ],
)
def test_bad_urls_are_params_errors_without_the_password(url: str, words: str) -> None:
    with pytest.raises(ParamsError, match=words) as raised:
        engine_for(url)
    assert SECRET not in str(raised.value)


def test_an_unreachable_server_is_a_contract_error_without_the_password() -> None:
    # Nothing listens on port 1: the connection is refused at once.
    url = f"postgresql://postgres:{SECRET}@127.0.0.1:1/test"
    with pytest.raises(DataContractError, match="Cannot connect to postgresql://") as raised:
        read_database(url)
    message = str(raised.value)
    assert SECRET not in message
    assert "postgres:***@127.0.0.1:1/test" in message
    assert "Traceback" not in message


def test_a_missing_sqlite_file_is_refused_not_created(tmp_path: Path) -> None:
    path = tmp_path / "absent.db"
    with pytest.raises(DataContractError, match="there is no file"):
        read_database(sqlite_url(path))
    assert not path.exists()


# --- SQLite: the path every database takes ---------------------------------------------------


def test_sqlite_round_trip_equals_the_source(spread: CRM, spread_url: str) -> None:
    crm = read_database(spread_url)
    assert_same_tables(spread, crm)
    assert spread_url == crm.source
    assert read_database(spread_url).fingerprint == crm.fingerprint


def test_filters_keep_exactly_what_north_needs_in_march(spread: CRM, spread_url: str) -> None:
    crm = read_database(spread_url, until=pd.Period("2025-03", freq="M"), department="north")
    expected_deals = ["d01", "d02", "d03", "d11", "d12", "d13", "d14", "d15", "d16", "d17", "d18"]
    assert expected_deals == sorted(crm.deals["deal_id"])
    assert ["l1", "l2", "l3", "l4", "l5"] == sorted(crm.leads["lead_id"])
    assert ["r1", "r2", "r3"] == sorted(crm.requests["request_id"])
    assert ["d11", "d12", "d14", "d16"] == sorted(crm.deliveries["deal_id"])
    owners = crm.plans["department_id"].fillna(crm.plans["manager_id"])
    assert [("2025-03", "m1"), ("2025-03", "north")] == sorted(
        zip(crm.plans["period"], owners, strict=True)
    )
    for whole in ("managers", "departments", "clients", "products"):
        pd.testing.assert_frame_equal(
            sorted_table(getattr(spread, whole), whole), sorted_table(getattr(crm, whole), whole)
        )
    assert f"{spread_url} (until 2025-03, department north)" == crm.source


@pytest.mark.parametrize("department", ["north", "south", "east"])
def test_filtered_reads_give_the_same_scores(spread: CRM, spread_url: str, department: str) -> None:
    crm = read_database(spread_url, until=pd.Period("2025-03", freq="M"), department=department)
    assert len(crm.deals) < len(spread.deals)
    assert_same_scores(spread, crm, "2025-03", department)


def test_rows_without_their_filtered_value_are_fetched_and_refused(
    tmp_path: Path, raw_sales: dict[str, pd.DataFrame]
) -> None:
    url = sqlite_url(tmp_path / "crm.db")
    crm = validate_tables(raw_sales)
    write_database(crm.tables(), url)
    run_sql(
        url,
        "UPDATE deals SET created_on = NULL WHERE deal_id = 'd15'",
        "UPDATE deals SET manager_id = NULL WHERE deal_id = 'd16'",
    )
    with pytest.raises(DataContractError) as raised:
        read_database(url, until=pd.Period("2025-03", freq="M"), department="north")
    assert "deals.created_on: value is required: 1 row(s)" in str(raised.value)
    assert "deals.manager_id: value is required: 1 row(s)" in str(raised.value)


def test_write_database_refuses_to_overwrite_and_writes_nothing(
    tmp_path: Path, sales_crm: CRM
) -> None:
    url = sqlite_url(tmp_path / "crm.db")
    write_database({"managers": sales_crm.managers}, url)
    with pytest.raises(ParamsError, match="holds the table\\(s\\) managers already"):
        write_database({"deals": sales_crm.deals, "managers": sales_crm.managers}, url)
    engine = engine_for(url)
    assert ["managers"] == sa.inspect(engine).get_table_names()
    engine.dispose()
    write_database(sales_crm.tables(), url, replace=True)
    assert_same_tables(sales_crm, read_database(url))


def test_write_database_refuses_tables_outside_the_contract(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="Not contract tables: people"):
        write_database({"people": pd.DataFrame({"x": [1]})}, sqlite_url(tmp_path / "crm.db"))


def test_integer_ids_with_gaps_read_as_whole_number_text(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "crm.db")
    run_sql(
        url,
        "CREATE TABLE managers (manager_id INTEGER, department_id INTEGER)",
        "CREATE TABLE deals (deal_id INTEGER, manager_id INTEGER, stage TEXT, created_on DATE,"
        " closed_on DATE, amount NUMERIC, client_id INTEGER)",
        "INSERT INTO managers VALUES (1, 10), (2, 10)",
        "INSERT INTO deals VALUES (7, 1, 'won', '2025-03-01', '2025-03-05', 1500.5, 42),"
        " (8, 2, 'open', '2025-03-02', NULL, 0, NULL)",
    )
    crm = read_database(url)
    assert ["1", "2"] == crm.managers["manager_id"].tolist()
    assert ["10", "10"] == crm.managers["department_id"].tolist()
    assert ["7", "8"] == crm.deals["deal_id"].tolist()
    assert "42" == crm.deals.loc[0, "client_id"]
    assert pd.isna(crm.deals.loc[1, "client_id"])
    assert [1500.5, 0.0] == crm.deals["amount"].tolist()
    assert pd.Timestamp("2025-03-05") == crm.deals.loc[0, "closed_on"]


def test_dates_stored_as_text_are_not_filtered_but_validated(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "crm.db")
    run_sql(
        url,
        "CREATE TABLE managers (manager_id TEXT, department_id TEXT)",
        "CREATE TABLE deals (deal_id TEXT, manager_id TEXT, stage TEXT, created_on TEXT,"
        " amount REAL)",
        "INSERT INTO managers VALUES ('m1', 'north')",
        "INSERT INTO deals VALUES ('d1', 'm1', 'open', '2025-03-01', 1),"
        " ('d2', 'm1', 'open', '31.03.2025', 1)",
    )
    with pytest.raises(DataContractError, match=r"deals\.created_on: cannot be read as a date"):
        read_database(url, until=pd.Period("2025-03", freq="M"))


# --- mappings --------------------------------------------------------------------------------


MAPPING = """
name: tiny_crm
sources:
  staff: {table: staff}
  pipeline:
    query: >
      SELECT id, agent, state, opened, closed, value, account
      FROM pipeline WHERE state <> 'Prospecting'
tables:
  managers:
    from: staff
    columns: {manager_id: agent, department_id: office}
  deals:
    from: pipeline
    columns:
      deal_id: id
      manager_id: agent
      stage: {column: state, values: {Won: won, Engaging: open}}
      created_on: opened
      closed_on: closed
      amount: {column: value, default: 0}
      client_id: account
"""


def tiny_crm(url: str, prefix: str = "") -> None:
    """A CRM of its own shape: staff and a pipeline with stage labels and integer accounts."""
    run_sql(
        url,
        f"CREATE TABLE {prefix}staff (agent TEXT, office TEXT)",
        f"CREATE TABLE {prefix}pipeline (id INTEGER, agent TEXT, state TEXT, opened DATE,"
        " closed DATE, value REAL, account INTEGER)",
        f"INSERT INTO {prefix}staff VALUES ('Anna', 'North'), ('Boris', 'North')",
        f"INSERT INTO {prefix}pipeline VALUES"
        " (1, 'Anna', 'Won', '2025-03-01', '2025-03-10', 100.5, 7),"
        " (2, 'Boris', 'Engaging', '2025-03-02', NULL, NULL, NULL),"
        " (3, 'Boris', 'Prospecting', NULL, NULL, NULL, NULL)",
    )


def write_mapping(folder: Path, text: str = MAPPING) -> Path:
    path = folder / "mapping.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_mapping_reads_tables_and_queries(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "crm.db")
    tiny_crm(url)
    crm = read_database(url, load_mapping(write_mapping(tmp_path)))
    assert ["Anna", "Boris"] == crm.managers["manager_id"].tolist()
    assert ["1", "2"] == crm.deals["deal_id"].tolist()
    assert ["won", "open"] == crm.deals["stage"].tolist()
    assert [100.5, 0.0] == crm.deals["amount"].tolist()
    assert "7" == crm.deals.loc[0, "client_id"]
    assert pd.isna(crm.deals.loc[1, "client_id"])
    assert pd.Timestamp("2025-03-10") == crm.deals.loc[0, "closed_on"]
    assert f"{url} (mapping tiny_crm)" == crm.source
    assert any("amount" in note for note in crm.notes)


def test_another_mapping_gives_another_fingerprint(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "crm.db")
    tiny_crm(url)
    first = read_database(url, load_mapping(write_mapping(tmp_path)))
    again = read_database(url, load_mapping(write_mapping(tmp_path)))
    other = read_database(
        url, load_mapping(write_mapping(tmp_path, MAPPING.replace("default: 0", "default: 1")))
    )
    assert first.fingerprint == again.fingerprint
    assert first.fingerprint != other.fingerprint


def test_a_mapping_with_files_is_refused_for_a_database(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "crm.db")
    tiny_crm(url)
    text = MAPPING.replace("staff: {table: staff}", "staff: {file: staff.csv}")
    with pytest.raises(ParamsError, match=r"names files \(staff \(staff.csv\)\)"):
        read_database(url, load_mapping(write_mapping(tmp_path, text)))


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ("FROM pipeline", "FROM no_such_table", "no such table: no_such_table"),
        ("'Prospecting'", "':stage'", "A value is required for bind parameter 'stage'"),
    ],
)
def test_a_failing_query_is_a_params_error_naming_the_source(
    tmp_path: Path, old: str, new: str, reason: str
) -> None:
    url = sqlite_url(tmp_path / "crm.db")
    tiny_crm(url)
    with pytest.raises(ParamsError) as raised:
        read_database(url, load_mapping(write_mapping(tmp_path, MAPPING.replace(old, new))))
    assert f"Cannot read mapping source 'pipeline' (its query) from {url}: {reason}" == str(
        raised.value
    )


def test_a_mapped_database_reports_mapping_and_contract_problems_at_once(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "crm.db")
    tiny_crm(url)
    run_sql(url, "INSERT INTO pipeline VALUES (1, 'Vera', 'Closed', '2025-03-03', NULL, 5, 8)")
    text = MAPPING.replace("WHERE state", "WHERE 1 = 1 AND state").replace("office}", "team}")
    with pytest.raises(DataContractError) as raised:
        read_database(url, load_mapping(write_mapping(tmp_path, text)))
    message = str(raised.value)
    assert "has no column 'team'" in message  # the mapping's problem
    assert "deals.stage" in message and "'Closed'" in message  # the contract's problems
    assert "deals.deal_id" in message


def test_a_missing_mapped_table_is_named(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "crm.db")
    tiny_crm(url)
    text = MAPPING.replace("{table: staff}", "{table: people}")
    with pytest.raises(DataContractError, match="table people not found"):
        read_database(url, load_mapping(write_mapping(tmp_path, text)))


# --- PostgreSQL ------------------------------------------------------------------------------


@server
def test_read_database_equals_the_files(files_crm: CRM, demo_schema: str, demo_read: CRM) -> None:
    assert_same_tables(files_crm, demo_read)
    assert files_crm.notes == demo_read.notes
    assert f"{safe_url(SERVER)} (schema {demo_schema})" == demo_read.source


@server
def test_the_fingerprint_is_stable_and_follows_the_filters(
    demo_schema: str, demo_read: CRM
) -> None:
    again = read_database(SERVER, schema=demo_schema)
    filtered = read_database(SERVER, schema=demo_schema, until=pd.Period("2025-05", freq="M"))
    assert demo_read.fingerprint == again.fingerprint
    assert 16 == len(demo_read.fingerprint)
    assert demo_read.fingerprint != filtered.fingerprint


@server
def test_the_schema_may_come_with_the_url(demo_schema: str, demo_read: CRM) -> None:
    by_url = read_database(f"{SERVER}?options=-csearch_path%3D{demo_schema}")
    assert_same_tables(demo_read, by_url)


@server
@pytest.mark.parametrize("department", ["north", "south", "east", "west"])
@pytest.mark.parametrize("period", ["2025-05", "2026-10"])
def test_filtered_reads_score_as_the_whole_source(
    files_crm: CRM, demo_schema: str, department: str, period: str
) -> None:
    month = pd.Period(period, freq="M")
    crm = read_database(SERVER, schema=demo_schema, until=month, department=department)
    assert len(crm.deals) < len(files_crm.deals)
    assert crm.deals["created_on"].max() < (month + 1).start_time
    assert len(files_crm.managers) == len(crm.managers)
    assert_same_scores(files_crm, crm, period, department)


@server
def test_filters_one_at_a_time_score_as_the_whole_source(files_crm: CRM, demo_schema: str) -> None:
    until = read_database(SERVER, schema=demo_schema, until=pd.Period("2025-05", freq="M"))
    assert_same_scores(files_crm, until, "2025-05", None)
    east = read_database(SERVER, schema=demo_schema, department="east")
    assert latest_complete_month(files_crm) == latest_complete_month(east)
    assert_same_scores(files_crm, east, f"{latest_complete_month(files_crm):%Y-%m}", "east")


@server
def test_filter_values_travel_as_bound_parameters(demo_schema: str) -> None:
    executed: list[tuple[str, object]] = []

    def remember(connection, cursor, statement, parameters, context, executemany) -> None:
        executed.append((statement, parameters))

    sa.event.listen(sa.Engine, "before_cursor_execute", remember)
    try:
        read_database(
            SERVER, schema=demo_schema, until=pd.Period("2025-05", freq="M"), department="north"
        )
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", remember)
    deals = [(sql, bound) for sql, bound in executed if ".deals" in sql and "WHERE" in sql]
    assert deals, "the deals are read with a WHERE clause"
    assert not any("north" in sql or "2025-0" in sql for sql, _ in executed)
    values = [value for _, bound in deals for value in dict(bound).values()]
    assert "north" in values
    assert dt.datetime(2025, 6, 1) in values
    assert any("2025-05" in dict(bound).values() for sql, bound in executed if ".plans" in sql)


@server
def test_a_missing_required_table_is_named(files_crm: CRM, fresh_schema: str) -> None:
    write_database({"managers": files_crm.managers}, SERVER, schema=fresh_schema)
    with pytest.raises(DataContractError, match="lacks the required table\\(s\\) deals"):
        read_database(SERVER, schema=fresh_schema)


@server
def test_the_password_never_shows(sales_crm: CRM, fresh_schema: str) -> None:
    # The server trusts local connections: the password is sent and ignored.
    url = f"postgresql://postgres:{SECRET}@127.0.0.1:5432/test"
    with pytest.raises(DataContractError) as raised:
        read_database(url, schema=fresh_schema)
    assert SECRET not in str(raised.value)
    assert "postgres:***@" in str(raised.value)
    write_database(sales_crm.tables(), url, schema=fresh_schema)
    crm = read_database(url, schema=fresh_schema, department="north")
    assert SECRET not in crm.source
    assert "postgres:***@" in crm.source


@server
def test_write_database_refuses_to_overwrite_on_the_server(
    files_crm: CRM, fresh_schema: str
) -> None:
    write_database({"managers": files_crm.managers}, SERVER, schema=fresh_schema)
    with pytest.raises(ParamsError, match="managers already"):
        write_database(files_crm.tables(), SERVER, schema=fresh_schema)
    engine = engine_for(SERVER)
    assert ["managers"] == sa.inspect(engine).get_table_names(schema=fresh_schema)
    engine.dispose()


@server
def test_typed_columns_validate(fresh_schema: str) -> None:
    run_sql(
        SERVER,
        f"SET search_path TO {fresh_schema}",
        "CREATE TABLE managers (manager_id integer, department_id text)",
        "CREATE TABLE deals (deal_id bigint, manager_id integer, stage text, created_on date,"
        " closed_on timestamp, amount numeric(12, 2), client_id integer)",
        "INSERT INTO managers VALUES (1, 'north'), (2, 'north')",
        "INSERT INTO deals VALUES (7, 1, 'won', '2025-03-01', '2025-03-05 14:30', 1500.50, 42),"
        " (8, 2, 'open', '2025-03-02', NULL, 0, NULL)",
    )
    crm = read_database(SERVER, schema=fresh_schema)
    assert ["7", "8"] == crm.deals["deal_id"].tolist()
    assert ["1", "2"] == crm.deals["manager_id"].tolist()
    assert "42" == crm.deals.loc[0, "client_id"]
    assert pd.isna(crm.deals.loc[1, "client_id"])
    assert [1500.5, 0.0] == crm.deals["amount"].tolist()
    assert pd.Timestamp("2025-03-01") == crm.deals.loc[0, "created_on"]
    assert pd.Timestamp("2025-03-05 14:30") == crm.deals.loc[0, "closed_on"]


@server
def test_dates_with_a_time_zone_are_refused(fresh_schema: str) -> None:
    run_sql(
        SERVER,
        f"SET search_path TO {fresh_schema}",
        "CREATE TABLE managers (manager_id text, department_id text)",
        "CREATE TABLE deals (deal_id text, manager_id text, stage text,"
        " created_on timestamptz, amount float8)",
        "INSERT INTO managers VALUES ('m1', 'north')",
        "INSERT INTO deals VALUES ('d1', 'm1', 'open', '2025-03-31 23:30+03', 1)",
    )
    with pytest.raises(DataContractError, match=r"time zone.*deals\.created_on"):
        read_database(SERVER, schema=fresh_schema, until=pd.Period("2025-03", freq="M"))


@server
@pytest.mark.parametrize("until", [None, pd.Period("2025-03", freq="M")])
def test_dates_with_a_time_zone_are_refused_however_the_tables_are_read(
    fresh_schema: str, until: pd.Period | None
) -> None:
    # Unfiltered, PostgreSQL's tables are read as columns; filtered, row by row.
    run_sql(
        SERVER,
        f"SET search_path TO {fresh_schema}",
        "CREATE TABLE managers (manager_id text, department_id text)",
        "CREATE TABLE deals (deal_id text, manager_id text, stage text,"
        " created_on date, closed_on timestamptz, amount float8)",
        "INSERT INTO managers VALUES ('m1', 'north')",
        "INSERT INTO deals VALUES ('d1', 'm1', 'won', '2025-03-01', '2025-03-31 23:30+03', 1)",
    )
    with pytest.raises(DataContractError, match=r"time zone.*deals\.closed_on"):
        read_database(SERVER, schema=fresh_schema, until=until)


# Every column type the columnar read takes, with what tells a careless conversion apart: text
# ids with leading zeros, an empty text beside a missing one, whole-number ids with and without
# gaps, small integers, numeric amounts and extra numbers with a missing one, double precision,
# dates with a missing one, timestamps, booleans with a missing one, padded char(n), an enum, an
# empty table.
HOSTILE_TABLES = (
    "CREATE TABLE departments (department_id text, name text, kind text, kpi_since date,"
    " budget numeric(12, 2))",
    "INSERT INTO departments VALUES ('007', '', 'sales', NULL, 1000), ('north', NULL, 'sales',"
    " '2025-01-01', NULL), ('svc', 'Service', 'service', '2024-12-31', 5.5)",
    "CREATE TABLE managers (manager_id bigint, department_id text, name varchar(20),"
    " tier char(8), hired_on date, active boolean, grade smallint)",
    "INSERT INTO managers VALUES (1, '007', 'Ann', 'senior', '2024-01-15', true, 3),"
    " (2, 'north', '', NULL, NULL, NULL, 1), (30, 'north', 'Bob', 'regular', '2024-02-01',"
    " false, 2)",
    "CREATE TABLE clients (client_id integer, name text)",
    "INSERT INTO clients VALUES (5, 'Acme'), (6, NULL)",
    "CREATE TABLE products (product_id text, name text)",  # and no products
    "CREATE TYPE deal_stage AS ENUM ('open', 'won', 'lost')",
    "CREATE TABLE deals (deal_id text, manager_id bigint, stage deal_stage, created_on date,"
    " closed_on timestamp, amount numeric(14, 2), client_id integer, cost_price float8,"
    " extra_hours numeric)",
    "INSERT INTO deals VALUES ('0001', 1, 'won', '2025-03-01', '2025-03-05 14:30:15', 1500.50,"
    " 5, 900.25, 1.5), ('0002', 2, 'open', '2025-03-02', NULL, 0, NULL, NULL, NULL),"
    " ('0003', 30, 'lost', '2025-03-03', '2025-03-09', 0.10, 6, 0.1, 0)",
)


def _read_row_by_row(monkeypatch: pytest.MonkeyPatch, *args: object, **kwargs: object) -> CRM:
    with monkeypatch.context() as patched:
        patched.setattr(database, "_columnar", lambda *_: False)
        return read_database(*args, **kwargs)


@server
def test_the_columnar_read_gives_what_the_row_read_gives(
    fresh_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_sql(SERVER, f"SET search_path TO {fresh_schema}", *HOSTILE_TABLES)
    columns = read_database(SERVER, schema=fresh_schema)
    rows = _read_row_by_row(monkeypatch, SERVER, schema=fresh_schema)
    assert_same_tables(rows, columns)
    for table in ("departments", "managers", "deals"):  # the columns outside the contract too
        extra = sorted(set(rows.tables()[table].columns) - set(contract_columns(table)))
        pd.testing.assert_frame_equal(
            rows.tables()[table][extra].astype(object),
            columns.tables()[table][extra].astype(object),
        )
    assert ["007", "north", "svc"] == columns.departments["department_id"].tolist()
    assert ["1", "2", "30"] == columns.managers["manager_id"].tolist()
    assert [1500.5, 0.0, 0.1] == columns.deals["amount"].tolist()


@server
def test_a_broken_table_gets_the_same_problems_either_way(
    fresh_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_sql(
        SERVER,
        f"SET search_path TO {fresh_schema}",
        *HOSTILE_TABLES,
        "INSERT INTO deals VALUES ('0001', 99, 'won', '2025-03-04', '2025-03-01', -5, 7,"
        " NULL, NULL)",
        "INSERT INTO deals VALUES ('0005', 1, 'won', '0001-01-01', NULL, NULL, 5, 1, 1)",
        "ALTER TABLE departments ALTER kpi_since TYPE text",
        "UPDATE departments SET kpi_since = '03.02.2025' WHERE department_id = 'north'",
    )
    with pytest.raises(DataContractError) as columns:
        read_database(SERVER, schema=fresh_schema)
    with pytest.raises(DataContractError) as rows:
        _read_row_by_row(monkeypatch, SERVER, schema=fresh_schema)
    assert str(rows.value) == str(columns.value)
    assert "03.02.2025" in str(columns.value)


@server
def test_postgresql_tables_are_read_as_columns_unless_a_column_type_forbids(
    demo_schema: str, fresh_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    reader = database._read_columns
    monkeypatch.setattr(
        database, "_read_columns", lambda *args: calls.append(args) or reader(*args)
    )
    read_database(SERVER, schema=demo_schema)  # as `write_database` types the demo's columns
    assert 1 == len(calls)
    read_database(SERVER, schema=demo_schema, until=pd.Period("2025-05", freq="M"))
    assert 1 == len(calls)  # a filtered read goes row by row
    run_sql(
        SERVER,
        f"SET search_path TO {fresh_schema}",
        *HOSTILE_TABLES,
        "ALTER TABLE deals ADD note jsonb DEFAULT '{\"a\": 1}', ADD score real DEFAULT 0.1",
    )
    crm = read_database(SERVER, schema=fresh_schema)
    assert 1 == len(calls)  # real and jsonb: row by row, as the driver gives them
    assert {"a": 1} == crm.deals.loc[0, "note"]
    assert 0.1 == crm.deals.loc[0, "score"]


@server
def test_a_mapping_reads_schema_qualified_tables(tmp_path: Path, fresh_schema: str) -> None:
    tiny_crm(SERVER, prefix=f"{fresh_schema}.")
    text = MAPPING.replace("{table: staff}", f"{{table: {fresh_schema}.staff}}").replace(
        "FROM pipeline", f"FROM {fresh_schema}.pipeline"
    )
    crm = read_database(SERVER, load_mapping(write_mapping(tmp_path, text)))
    assert ["1", "2"] == crm.deals["deal_id"].tolist()
    assert "7" == crm.deals.loc[0, "client_id"]
    assert pd.Timestamp("2025-03-01") == crm.deals.loc[0, "created_on"]


# --- reports from the database -----------------------------------------------------------------


def _without_fingerprint(results: dict) -> dict:
    return {key: value for key, value in results.items() if key != "data_fingerprint"}


@server
def test_a_report_from_the_database_equals_the_report_from_the_files(
    source: Path, demo_schema: str, tmp_path: Path
) -> None:
    url = f"{SERVER}?options=-csearch_path%3D{demo_schema}"
    scheme = str(paths.DEFAULT_SCHEME)
    files = prepare_monthly(department="north", period="2026-09", data=str(source), scheme=scheme)
    expected = _without_fingerprint(monthly_json(files))
    database = prepare_monthly(department="north", period="2026-09", data=url, scheme=scheme)
    assert _without_fingerprint(monthly_json(database)) == expected
    assert database.crm.source == url  # no password to hide here

    # The whole batch reads the database once; the reports read that copy, and neither the
    # notebooks kept beside them nor anything else in the folder holds the URL's password.
    secret_url = url.replace("postgres@", f"postgres:{SECRET}@")  # trust auth ignores it
    out = tmp_path / "reports"
    args = ["run", "monthly", "--data", secret_url, "--department", "north", "--period", "2026-09"]
    assert 0 == main([*args, "--out", str(out)])
    written = json.loads((out / "monthly" / "2026-09" / "north.kpis.json").read_text())
    assert _without_fingerprint(written) == json.loads(json.dumps(expected))
    manifest = json.loads((out / "monthly" / "2026-09" / "manifest.json").read_text())
    assert manifest["data"]["source"] == safe_url(secret_url)
    files = [path for path in out.rglob("*") if path.is_file()]
    assert {p.name for p in files} >= {"north.html", "north.ipynb", "index.html"}
    assert not [p for p in files if SECRET.encode() in p.read_bytes()]
    assert not list(out.glob(".kpi-batch-data*"))  # the copy is gone with the batch


@server
def test_a_mapping_ignores_zoned_columns_it_does_not_read(
    fresh_schema: str, tmp_path: Path
) -> None:
    tiny_crm(SERVER, f"{fresh_schema}.")
    run_sql(
        SERVER,
        f"ALTER TABLE {fresh_schema}.staff ADD updated_at timestamptz DEFAULT now()",
        f"ALTER TABLE {fresh_schema}.pipeline ADD seen_at timestamptz DEFAULT now()",
    )
    url = f"{SERVER}?options=-csearch_path%3D{fresh_schema}"
    crm = read_database(url, load_mapping(write_mapping(tmp_path)))
    assert ["Anna", "Boris"] == crm.managers["manager_id"].tolist()

    text = MAPPING.replace("opened, closed", "seen_at AS opened, closed")
    with pytest.raises(DataContractError, match=r"time zone in pipeline\.opened"):
        read_database(url, load_mapping(write_mapping(tmp_path, text)))
