"""The snapshot store: ingest, list, find and read back; one transaction; diffs and corrections."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from conftest import pipe_table

from kpilib import snapshots
from kpilib.errors import DataContractError, ParamsError
from kpilib.io import read_source
from kpilib.periods import latest_complete_month
from kpilib.schemas import CRM, MODELS
from kpilib.snapshots import (
    corrections_by_month,
    describe_diff,
    diff_snapshots,
    find_snapshot,
    ingest,
    is_store,
    list_snapshots,
    parse_ref,
    read_snapshot,
    snapshot_ref,
)
from kpilib.validation import validate_tables

NOVEMBER = datetime(2026, 11, 3, 9, 30, tzinfo=UTC)
DECEMBER = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def demo(source) -> CRM:
    """The demo data source, validated once for the module."""
    return read_source(source)


@pytest.fixture
def store(tmp_path) -> Path:
    return tmp_path / "store" / "kpi.duckdb"


def with_deals(crm: CRM, deals: pd.DataFrame) -> CRM:
    return dataclasses.replace(crm, deals=deals.reset_index(drop=True))


def edited_demo(crm: CRM) -> CRM:
    """The demo data as next month's export: D000007's amount edited, D000001 won instead of
    lost, D000006 deleted, LATE1 added into May 2024 and NEW1 created in November 2026."""
    deals = crm.deals.copy()
    deals.loc[deals["deal_id"].eq("D000007"), "amount"] = 1_300_000.0
    deals.loc[deals["deal_id"].eq("D000001"), "stage"] = "won"
    late = deals.loc[deals["deal_id"].eq("D000006")].assign(deal_id="LATE1")
    late = late.assign(closed_on=pd.Timestamp("2024-05-20"), amount=777_000.0)
    new = late.assign(
        deal_id="NEW1", stage="open", created_on=pd.Timestamp("2026-11-02"), closed_on=pd.NaT
    )
    deals = pd.concat([deals.loc[deals["deal_id"].ne("D000006")], late, new])
    return with_deals(crm, deals)


def dump(store: Path) -> dict[str, pd.DataFrame]:
    """Every row of every table of the store, in a stable order."""
    con = duckdb.connect(str(store), read_only=True)
    try:
        return {
            table: con.execute(f'SELECT * FROM "{table}" ORDER BY ALL').df()
            for table in ["snapshots", *MODELS]
        }
    finally:
        con.close()


def assert_same_content(before: dict[str, pd.DataFrame], after: dict[str, pd.DataFrame]) -> None:
    assert before.keys() == after.keys()
    for table in before:
        pd.testing.assert_frame_equal(before[table], after[table])


def test_demo_round_trips_exactly(demo, store):
    result = ingest(store, demo, taken_at=NOVEMBER)

    assert result.created
    snap = result.snapshot
    assert (snap.id, snap.label) == (1, f"{latest_complete_month(demo):%Y-%m}")
    assert snap.label == "2026-10"
    assert snap.taken_at == NOVEMBER and snap.taken_at.tzinfo == UTC
    assert snap.source == demo.source
    assert snap.rows == {table: len(getattr(demo, table)) for table in MODELS}
    back = read_snapshot(store)
    for table in MODELS:
        pd.testing.assert_frame_equal(getattr(back, table), getattr(demo, table))
    assert back.fingerprint == snap.fingerprint
    assert (
        back.source == f"{store} snapshot 1 (2026-10, taken 2026-11-03 09:30, from {demo.source})"
    )
    assert back.notes == demo.notes
    assert ingest(store, back).snapshot == snap  # read back, it is the same data
    assert list_snapshots(store) == [snap]


def test_absent_tables_and_columns_stay_absent_and_extra_columns_are_not_stored(sales_crm, store):
    deals = sales_crm.deals.assign(crm_colour="red")  # a column beyond the contract
    empty_leads = sales_crm.leads.iloc[0:0]
    crm = dataclasses.replace(sales_crm, deals=deals, leads=empty_leads)

    snap = ingest(store, crm, "march").snapshot
    back = read_snapshot(store, "march")

    assert back.plans is None and "plans" not in snap.rows
    assert snap.rows["leads"] == 0
    pd.testing.assert_frame_equal(back.leads, empty_leads)  # present but empty: not None
    assert "cost_price" not in back.deals  # the source had no cost column: not a blank one
    pd.testing.assert_frame_equal(back.deals, sales_crm.deals)
    assert back.notes == sales_crm.notes and len(back.notes) == 2


def test_dates_keep_their_time_to_the_nanosecond(sales_crm, store):
    requests = sales_crm.requests.copy()
    requests.loc[0, "first_response_at"] = pd.Timestamp("2025-03-03 13:00:00.123456789")
    crm = dataclasses.replace(sales_crm, requests=requests)

    ingest(store, crm)

    pd.testing.assert_frame_equal(read_snapshot(store).requests, requests)


def test_equal_content_is_stored_once_whatever_its_source_order_or_label(sales_crm, store):
    first = ingest(store, sales_crm, taken_at=NOVEMBER).snapshot
    shuffled = with_deals(sales_crm, sales_crm.deals.iloc[::-1])
    again = dataclasses.replace(shuffled, source="another/folder")

    result = ingest(store, again, "other-label", taken_at=DECEMBER)

    assert not result.created
    assert result.snapshot == first
    assert list_snapshots(store) == [first]


def test_labels_default_to_the_complete_month_and_stay_unique(sales_crm, store):
    other = with_deals(sales_crm, sales_crm.deals.assign(amount=sales_crm.deals["amount"] + 1))
    third = with_deals(sales_crm, sales_crm.deals.assign(amount=sales_crm.deals["amount"] + 2))

    labels = [ingest(store, crm).snapshot.label for crm in (sales_crm, other, third)]

    assert labels == ["2025-02", "2025-02-2", "2025-02-3"]
    fourth = with_deals(sales_crm, sales_crm.deals.assign(amount=sales_crm.deals["amount"] + 3))
    with pytest.raises(DataContractError, match=r"labelled '2025-02-2' \(snapshot 2 "):
        ingest(store, fourth, "2025-02-2")
    assert [s.id for s in list_snapshots(store)] == [1, 2, 3]
    assert ingest(store, fourth, "after audit").snapshot.label == "after audit"


@pytest.mark.parametrize(
    "label", ["", "12", "Latest", "a#b", " padded", "two\nlines", "\x1b[2J", "old.duckdb"]
)
def test_a_label_that_could_not_be_named_back_is_refused(sales_crm, store, label):
    with pytest.raises(ParamsError, match="cannot be used"):
        ingest(store, sales_crm, label)
    assert not store.exists()


def test_snapshots_are_found_by_id_label_or_as_the_latest(sales_crm, store):
    other = with_deals(sales_crm, sales_crm.deals.iloc[:-1])
    # taken earlier than the first one: the latest is the one taken last, not the last ingested
    first = ingest(store, sales_crm, "march", taken_at=DECEMBER).snapshot
    earlier = ingest(store, other, "backfill", taken_at=NOVEMBER).snapshot

    assert list_snapshots(store) == [earlier, first]
    assert find_snapshot(store, None) == find_snapshot(store, "latest") == first
    assert find_snapshot(store, "2") == find_snapshot(store, " backfill ") == earlier
    with pytest.raises(DataContractError) as raised:
        find_snapshot(store, "april")
    message = str(raised.value)
    assert "no snapshot 'april'" in message
    assert "- 2 (backfill, taken 2026-11-03 09:30 UTC)" in message
    assert "- 1 (march, taken 2026-12-02 08:00 UTC)" in message


def test_taken_at_is_kept_in_utc(sales_crm, store):
    moscow = timezone(timedelta(hours=3))

    aware = ingest(store, sales_crm, taken_at=datetime(2026, 11, 3, 12, 30, tzinfo=moscow))
    naive = ingest(
        store, with_deals(sales_crm, sales_crm.deals.iloc[1:]), taken_at=datetime(2026, 11, 4)
    )

    assert aware.snapshot.taken_at == datetime(2026, 11, 3, 9, 30, tzinfo=UTC)
    assert naive.snapshot.taken_at == datetime(2026, 11, 4, tzinfo=UTC)
    assert [s.taken_at for s in list_snapshots(store)] == [
        aware.snapshot.taken_at,
        naive.snapshot.taken_at,
    ]


def test_a_store_that_does_not_exist_holds_nothing_and_is_not_created(tmp_path):
    store = tmp_path / "none.duckdb"

    assert list_snapshots(store) == []
    with pytest.raises(DataContractError, match="does not exist"):
        find_snapshot(store, None)
    with pytest.raises(DataContractError, match="does not exist"):
        read_snapshot(store)
    assert not store.exists()


def test_files_that_are_not_snapshot_stores_are_refused_and_left_alone(sales_crm, tmp_path):
    text = tmp_path / "notes.duckdb"
    text.write_text("not a database")
    other = tmp_path / "other.duckdb"
    con = duckdb.connect(str(other))
    con.execute("CREATE TABLE deals (deal_id VARCHAR)")
    con.close()

    with pytest.raises(DataContractError, match="cannot be opened as a snapshot store"):
        list_snapshots(text)
    with pytest.raises(DataContractError, match="not a snapshot store of this kit: it lacks"):
        list_snapshots(other)
    with pytest.raises(DataContractError, match="not a snapshot store"):
        ingest(other, sales_crm)
    assert text.read_text() == "not a database"
    con = duckdb.connect(str(other), read_only=True)
    assert con.execute("SHOW TABLES").fetchall() == [("deals",)]
    con.close()


def fail_on_third_table(monkeypatch) -> list[str]:
    """Make the third table's insert fail; return the tables whose insert was called."""
    called: list[str] = []
    insert = snapshots._insert_rows

    def failing(con, table, snapshot_id, frame):
        called.append(table)
        if len(called) == 3:
            raise RuntimeError("disk full")
        insert(con, table, snapshot_id, frame)

    monkeypatch.setattr(snapshots, "_insert_rows", failing)
    return called


def test_a_failing_ingest_leaves_the_store_exactly_as_it_was(demo, store, monkeypatch):
    ingest(store, demo, taken_at=NOVEMBER)
    before, listed = dump(store), list_snapshots(store)
    called = fail_on_third_table(monkeypatch)

    with pytest.raises(RuntimeError, match="disk full"):
        ingest(store, edited_demo(demo), taken_at=DECEMBER)

    assert called == ["departments", "managers", "clients"]
    assert list_snapshots(store) == listed
    assert_same_content(before, dump(store))
    monkeypatch.undo()
    assert ingest(store, edited_demo(demo), taken_at=DECEMBER).snapshot.id == 2


def test_a_failing_first_ingest_leaves_no_store_file_behind(sales_crm, store, monkeypatch):
    fail_on_third_table(monkeypatch)

    with pytest.raises(RuntimeError, match="disk full"):
        ingest(store, sales_crm)

    assert list(store.parent.iterdir()) == []


def test_a_store_in_use_by_another_process_is_reported_not_corrupted(sales_crm, store):
    first = ingest(store, sales_crm).snapshot
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('open', flush=True); "
            "sys.stdin.read()",
            str(store),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        other = with_deals(sales_crm, sales_crm.deals.iloc[1:])
        with pytest.raises(DataContractError, match="is in use by another process"):
            ingest(store, other)
        with pytest.raises(DataContractError, match="is in use by another process"):
            list_snapshots(store)
    finally:
        holder.communicate("", timeout=30)
    assert list_snapshots(store) == [first]


def test_refs_name_a_snapshot_and_parse_back(sales_crm, store):
    snap = ingest(store, sales_crm).snapshot

    ref = snapshot_ref(store, snap)

    assert ref == f"{store}#1"
    assert is_store(ref) and is_store(store) and is_store("data/KPI.DuckDB#2025-03")
    assert not is_store("data/demo") and not is_store("data/kpi.duckdb.bak")
    assert parse_ref(ref) == (store, "1")
    assert parse_ref("data/kpi.duckdb") == (Path("data/kpi.duckdb"), None)
    assert parse_ref("data/kpi.duckdb#2025-03") == (Path("data/kpi.duckdb"), "2025-03")
    store_path, which = parse_ref(ref)
    assert find_snapshot(store_path, which) == snap


def test_diff_of_two_demo_exports_finds_each_edit(demo, store):
    ingest(store, demo, taken_at=NOVEMBER)
    ingest(store, edited_demo(demo), taken_at=DECEMBER)

    diff = diff_snapshots(store, None, None)

    assert (diff.old.id, diff.new.id) == (1, 2)
    assert diff.covered == pd.Period("2026-10", "M")
    assert diff.added.set_index("deal_id")["late"].to_dict() == {"LATE1": True, "NEW1": False}
    assert list(diff.added.columns) == [*demo.deals.columns, "late"]
    assert diff.deleted["deal_id"].tolist() == ["D000006"]
    assert diff.edited.to_dict("records") == [
        {"deal_id": "D000001", "column": "stage", "old": "lost", "new": "won"},
        {"deal_id": "D000007", "column": "amount", "old": "1234000", "new": "1300000"},
    ]
    deals = diff.tables.loc["deals"]
    assert deals.to_dict() == {
        "rows_old": 10618,
        "rows_new": 10619,
        "added": 2,
        "deleted": 1,
        "changed": 2,
    }
    others = diff.tables.drop(index="deals")
    assert others[["added", "deleted", "changed"]].eq(0).all().all()
    assert others["rows_old"].tolist() == others["rows_new"].tolist()

    corrections = corrections_by_month(diff)
    may = corrections.loc[pd.Period("2024-05", "M")]
    assert may["late_added"] == 777_000
    assert may["deleted"] == -3_455_000
    assert may["edited"] == 466_000 + (1_300_000 - 1_234_000)  # D000001 won, D000007 edited
    assert may["change"] == pytest.approx(may["late_added"] + may["deleted"] + may["edited"])
    assert corrections.drop(index=pd.Period("2024-05", "M"))["change"].eq(0).all()
    assert corrections.index.max() == pd.Period("2026-10", "M")


def test_an_older_snapshot_reads_back_after_a_newer_one_was_added(demo, store):
    first = ingest(store, demo, taken_at=NOVEMBER).snapshot
    ingest(store, edited_demo(demo), taken_at=DECEMBER)

    back = read_snapshot(store, str(first.id))

    for table in MODELS:
        pd.testing.assert_frame_equal(getattr(back, table), getattr(demo, table))
    assert read_snapshot(store).deals["deal_id"].isin(["LATE1", "NEW1"]).sum() == 2


TINY_MANAGERS = """
    manager_id | department_id
    m1         | d1
"""
OLD_DEALS = """
    deal_id | manager_id | stage | created_on | closed_on  | amount
    a1      | m1         | won   | 2025-01-05 | 2025-01-10 | 100
    a2      | m1         | won   | 2025-01-06 | 2025-01-20 | 200
    a3      | m1         | open  | 2025-01-07 |            | 300
    a4      | m1         | won   | 2025-02-01 | 2025-02-10 | 400
    a5      | m1         | won   | 2025-01-15 | 2025-01-31 | 500
    a6      | m1         | lost  | 2025-02-02 | 2025-02-28 | 50
"""
NEW_DEALS = """
    deal_id | manager_id | stage | created_on | closed_on  | amount
    a1      | m1         | won   | 2025-01-05 | 2025-01-10 | 100
    a2      | m1         | won   | 2025-01-06 | 2025-01-20 | 250
    a3      | m1         | won   | 2025-01-07 | 2025-02-03 | 300
    a5      | m1         | won   | 2025-01-15 | 2025-02-01 | 500
    a6      | m1         | lost  | 2025-02-02 | 2025-02-28 | 50
    b1      | m1         | won   | 2025-01-08 | 2025-01-25 | 70
    b2      | m1         | won   | 2025-03-01 | 2025-03-05 | 1000
    b3      | m1         | open  | 2025-02-14 |            | 10
"""
OLD_DELIVERIES = """
    deal_id | promised_on | delivered_on
    a1      | 2025-01-12  | 2025-01-12
    a1      | 2025-01-12  | 2025-01-12
    a2      | 2025-01-25  |
"""
NEW_DELIVERIES = """
    deal_id | promised_on | delivered_on
    a1      | 2025-01-12  | 2025-01-12
    a1      | 2025-01-12  | 2025-01-12
    a2      | 2025-01-25  | 2025-01-26
    a5      | 2025-02-05  |
"""
OLD_PLANS = """
    period  | metric  | target | department_id | manager_id
    2025-01 | revenue | 1000   | d1            |
    2025-01 | revenue | 500    |               | m1
"""


def tiny(deals: str, deliveries: str, plans: str) -> CRM:
    tables = {
        "managers": pipe_table(TINY_MANAGERS),
        "deals": pipe_table(deals),
        "deliveries": pipe_table(deliveries),
        "plans": pipe_table(plans),
    }
    return validate_tables(tables, source="tiny")


@pytest.fixture
def tiny_diff(store) -> snapshots.SnapshotDiff:
    """January and February 2025 exported at the end of February, then corrected."""
    ingest(store, tiny(OLD_DEALS, OLD_DELIVERIES, OLD_PLANS), taken_at=NOVEMBER)
    new_plans = OLD_PLANS.replace("500 ", "600 ")
    ingest(store, tiny(NEW_DEALS, NEW_DELIVERIES, new_plans), taken_at=DECEMBER)
    return diff_snapshots(store, "2025-02", "2025-02-2")


def test_tiny_diff_lists_added_deleted_and_edited_deals(tiny_diff):
    assert tiny_diff.covered == pd.Period("2025-02", "M")
    late = tiny_diff.added.set_index("deal_id")["late"].to_dict()
    assert late == {"b1": True, "b2": False, "b3": True}  # b3: open, created in February
    assert tiny_diff.deleted["deal_id"].tolist() == ["a4"]
    edits = tiny_diff.edited.astype(object).where(tiny_diff.edited.notna(), None)
    assert edits.values.tolist() == [
        ["a2", "amount", "200", "250"],
        ["a3", "stage", "open", "won"],
        ["a3", "closed_on", None, "2025-02-03"],
        ["a5", "closed_on", "2025-01-31", "2025-02-01"],
    ]


def test_tiny_diff_compares_every_table_by_its_key(tiny_diff):
    tables = tiny_diff.tables

    assert tables.loc["deals"].tolist() == [6, 8, 3, 1, 3]
    # two equal deliveries of a1 on one date match each other; a2 was delivered; a5 is new
    assert tables.loc["deliveries"].tolist() == [3, 4, 1, 0, 1]
    assert tables.loc["plans"].tolist() == [2, 2, 0, 0, 1]  # m1's target, matched by its owner
    assert tables.loc["managers"].tolist() == [1, 1, 0, 0, 0]
    departments = tables.loc["departments"]
    assert departments[["rows_old", "rows_new"]].isna().all()  # absent from both
    assert departments[["added", "deleted", "changed"]].tolist() == [0, 0, 0]


def test_corrections_by_month_split_the_change_of_past_months(tiny_diff):
    corrections = corrections_by_month(tiny_diff)

    # January: old a1 100 + a2 200 + a5 500 = 800; new a1 100 + a2 250 + b1 70 = 420.
    # February: old a4 400; new a3 300 + a5 500 = 800. March (b2) is not a past month.
    expected = pd.DataFrame(
        {
            "revenue_old": [800.0, 400.0],
            "revenue_new": [420.0, 800.0],
            "change": [-380.0, 400.0],
            "late_added": [70.0, 0.0],  # b1
            "deleted": [0.0, -400.0],  # a4
            "edited": [350.0 - 800.0, 800.0 - 0.0],  # a2 +50, a5 moved to Feb, a3 won in Feb
        },
        index=pd.period_range("2025-01", "2025-02", freq="M", name="month"),
    )
    pd.testing.assert_frame_equal(corrections, expected)


def test_corrections_by_month_of_a_department_count_only_its_managers_deals(tiny_diff):
    everything = corrections_by_month(tiny_diff)

    pd.testing.assert_frame_equal(corrections_by_month(tiny_diff, ["m1"]), everything)
    assert corrections_by_month(tiny_diff, ["m2"]).empty  # no won deal of theirs in any month


def test_describe_diff_names_the_deals_and_the_corrections(tiny_diff):
    text = describe_diff(tiny_diff)

    assert text.startswith("From snapshot 1 (2025-02, taken 2026-11-03 09:30 UTC) to snapshot 2")
    assert (
        "Deals added late, into months the old snapshot covered completely (up to 2025-02): "
        "2 of 3 added.\n" in text
    )
    assert "  b1: won, closed 2025-01-25, amount 70, manager m1" in text
    assert "  b3: open, created 2025-02-14, amount 10, manager m1" in text
    assert "b2:" not in text  # added for March: business, not a correction
    assert "Edited deal fields: 4, in 3 deal(s)." in text
    assert "  a3 closed_on: (empty) -> 2025-02-03" in text
    assert "  a2 amount: 200 -> 250" in text
    assert "Deleted deals: 1.\n  a4: won, closed 2025-02-10, amount 400, manager m1" in text
    assert "2 of 2 month(s) corrected" in text
    assert text.splitlines()[-1].split() == ["total", "1,200", "1,220", "20", "70", "-400", "350"]


def test_describe_diff_shows_the_first_of_many(tiny_diff):
    text = describe_diff(tiny_diff, limit=1)

    assert "  a2 amount: 200 -> 250\n  ... and 3 more" in text
    assert "  b1: won" in text and "  b3:" not in text
    assert "  ... and 1 more" in text


def test_describe_diff_quotes_unprintable_ids(sales_crm, store):
    ingest(store, sales_crm, taken_at=NOVEMBER)
    deals = sales_crm.deals.copy()
    deals.loc[0, "deal_id"] = "d01\x1b[2J"
    ingest(store, with_deals(sales_crm, deals), taken_at=DECEMBER)

    text = describe_diff(diff_snapshots(store, None, None))

    assert "\x1b" not in text
    assert "'d01\\x1b[2J': won" in text


def test_data_without_dates_gets_the_day_as_label_and_no_past_months(sales_crm, store):
    managers = sales_crm.managers
    empty = CRM(managers=managers, deals=sales_crm.deals.iloc[0:0], source="empty export")

    first = ingest(store, empty, taken_at=NOVEMBER).snapshot
    ingest(store, sales_crm, taken_at=DECEMBER)
    diff = diff_snapshots(store, None, None)

    assert first.label == "2026-11-03"
    assert diff.covered is None
    assert len(diff.added) == len(sales_crm.deals) and not diff.added["late"].any()
    corrections = corrections_by_month(diff)
    assert corrections.empty and list(corrections.columns) == [
        "revenue_old",
        "revenue_new",
        "change",
        "late_added",
        "deleted",
        "edited",
    ]
    assert "Deals added late, into months the old snapshot covered completely (none): 0 of 9" in (
        describe_diff(diff)
    )


def test_a_diff_needs_two_snapshots_and_one_before_new(sales_crm, store):
    with pytest.raises(DataContractError, match="does not exist"):
        diff_snapshots(store, None, None)
    ingest(store, sales_crm, taken_at=NOVEMBER)
    with pytest.raises(DataContractError, match=r"holds 1 snapshot\(s\); a diff needs two"):
        diff_snapshots(store, None, None)
    ingest(store, with_deals(sales_crm, sales_crm.deals.iloc[1:]), taken_at=DECEMBER)
    with pytest.raises(DataContractError, match="is the oldest"):
        diff_snapshots(store, None, "1")
    with pytest.raises(DataContractError, match="no snapshot '7'"):
        diff_snapshots(store, "7", None)
    assert diff_snapshots(store, "2", "1").deleted.empty  # backwards: the deal is "added"
