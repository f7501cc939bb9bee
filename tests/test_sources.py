"""One way in for every kind of data source, and the `kpi` commands around the snapshot store."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from kpilib import paths, snapshots
from kpilib.cli import main
from kpilib.errors import ParamsError
from kpilib.io import read_source, write_tables
from kpilib.sources import open_source, pinned
from kpilib.testing import vasily_valery_tables

MAVEN = paths.ROOT.parent / "shared" / "datasets" / "maven_crm"
MAVEN_MAPPING = paths.ROOT / "mappings" / "maven_crm.yaml"
needs_maven = pytest.mark.skipif(
    not (MAVEN / "sales_pipeline.csv").is_file(),
    reason=f"the Maven CRM dataset is not beside the kit ({MAVEN})",
)


@pytest.fixture
def example(tmp_path: Path) -> Path:
    write_tables(vasily_valery_tables(), tmp_path / "example")
    return tmp_path / "example"


def _store_content(store: Path) -> tuple:
    """Everything a store holds that a reader sees: its snapshots and each one's tables."""
    found = snapshots.list_snapshots(store)
    tables = [
        {name: getattr(snapshots.read_snapshot(store, str(s.id)), name) for name in ("deals",)}
        for s in found
    ]
    return found, [t["deals"].to_dict("list") for t in tables]


def test_a_folder_reads_as_it_always_did(example):
    direct, opened = read_source(example), open_source(str(example))
    assert opened.fingerprint == direct.fingerprint
    pd.testing.assert_frame_equal(opened.deals, direct.deals)


def test_a_relative_folder_is_pinned_against_the_working_folder(example, monkeypatch):
    monkeypatch.chdir(example.parent)
    assert pinned("example") == str(example.resolve())


def test_a_store_is_pinned_to_its_latest_snapshot_at_the_time(example, tmp_path):
    store = tmp_path / "kpi.duckdb"
    first = snapshots.ingest(store, read_source(example), "first").snapshot
    assert pinned(str(store)) == snapshots.snapshot_ref(store, first)
    assert pinned(f"{store}#first") == snapshots.snapshot_ref(store, first)
    crm = open_source(pinned(str(store)))
    assert "snapshot 1 (first" in crm.source
    assert crm.fingerprint == first.fingerprint


def test_a_mapping_is_refused_for_a_snapshot_and_for_a_single_file(example, tmp_path):
    store = tmp_path / "kpi.duckdb"
    snapshots.ingest(store, read_source(example))
    with pytest.raises(ParamsError, match="kpi ingest"):
        open_source(str(store), MAVEN_MAPPING)
    with pytest.raises(ParamsError, match="not a folder"):
        open_source(str(example / "deals.csv"), MAVEN_MAPPING)


def test_ingest_twice_keeps_one_snapshot_and_lists_it(example, tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO)
    store = tmp_path / "kpi.duckdb"
    assert 0 == main(["ingest", str(example), "--store", str(store)])
    assert 0 == main(["ingest", str(example), "--store", str(store), "--label", "again"])
    assert "already holds this data as snapshot 1" in caplog.text
    assert 0 == main(["snapshots", "--store", str(store)])
    out = capsys.readouterr().out
    assert re.search(r"^\s*1\s+2025-03\s", out, re.M), out
    assert "again" not in out and len(snapshots.list_snapshots(store)) == 1


def test_a_failing_ingest_leaves_the_store_exactly_as_it_was(example, tmp_path, caplog):
    store = tmp_path / "kpi.duckdb"
    assert 0 == main(["ingest", str(example), "--store", str(store)])
    before = _store_content(store)
    stamp = store.stat().st_mtime_ns
    deals = pd.read_csv(example / "deals.csv", dtype=str)
    deals.loc[0, "stage"] = "Won (pending)"
    deals.to_csv(example / "deals.csv", index=False)

    assert 2 == main(["ingest", str(example), "--store", str(store)])
    assert "deals.stage" in caplog.text
    assert _store_content(store) == before
    assert store.stat().st_mtime_ns == stamp  # not even opened for writing

    fresh = tmp_path / "new.duckdb"
    assert 2 == main(["ingest", str(example), "--store", str(fresh)])
    assert not fresh.exists()


def test_diff_shows_a_deal_added_late_an_edit_and_a_deletion(source, tmp_path, capsys):
    example = Path(shutil.copytree(source, tmp_path / "export"))
    store = tmp_path / "kpi.duckdb"
    assert 0 == main(["ingest", str(example), "--store", str(store), "--label", "october"])
    deals = pd.read_csv(example / "deals.csv", dtype=str)
    won = deals.index[deals["stage"].eq("won")]
    deals.loc[won[0], "amount"] = str(float(deals.loc[won[0], "amount"]) + 500)
    late = deals.loc[[won[1]]].assign(deal_id="late-1")
    delivered = pd.read_csv(example / "deliveries.csv", dtype=str)["deal_id"]
    undelivered = deals.index[deals["stage"].eq("lost") & ~deals["deal_id"].isin(delivered)]
    gone = deals.loc[undelivered[0], "deal_id"]
    kept = deals.drop(index=undelivered[0])
    pd.concat([kept, late]).to_csv(example / "deals.csv", index=False)
    assert 0 == main(["ingest", str(example), "--store", str(store), "--label", "corrected"])

    assert 0 == main(["diff", "october", "corrected", "--store", str(store)])
    out = capsys.readouterr().out
    assert "late-1" in out and gone in out
    assert f"{deals.loc[won[0], 'deal_id']} amount" in out


def test_a_batch_records_the_snapshot_it_ran_on(example, tmp_path, monkeypatch):
    store = tmp_path / "kpi.duckdb"
    snapshot = snapshots.ingest(store, read_source(example), "march").snapshot
    seen = {}

    def run_jobs(jobs, *args, **kwargs):
        seen["data"] = {job.parameters["data"] for job in jobs}
        return []

    monkeypatch.setattr("kpilib.cli.run_jobs", run_jobs)
    out = tmp_path / "reports"
    assert 0 == main(["run", "monthly", "--data", str(store), "--out", str(out)])
    assert seen["data"] == {snapshots.snapshot_ref(store, snapshot)}
    manifest = json.loads(next(out.glob("monthly/*/manifest.json")).read_text())
    assert "snapshot 1 (march" in manifest["data"]["source"]
    assert manifest["data"]["fingerprint"] == snapshot.fingerprint


@needs_maven
def test_the_maven_export_validates_through_its_mapping(capsys):
    assert 0 == main(["validate", str(MAVEN), "--mapping", str(MAVEN_MAPPING)])
    out = capsys.readouterr().out
    assert "deals        8,300 rows" in out
    assert "500 row(s) skipped: prospecting deals without an engage date" in out
    for table in ("deliveries", "requests", "plans"):
        assert re.search(rf"{table}\s+absent: no data", out)


@needs_maven
def test_the_maven_export_scores_through_its_mapping(capsys):
    args = ["score", str(MAVEN), "--mapping", str(MAVEN_MAPPING), "--format", "json"]
    assert 0 == main([*args, "--period", "2017-12", "--department", "West"])
    result = json.loads(capsys.readouterr().out)
    metrics = {m["manager_id"]: m["metrics"] for m in result["managers"]}
    pipeline = pd.read_csv(MAVEN / "sales_pipeline.csv")
    teams = pd.read_csv(MAVEN / "sales_teams.csv")
    west = teams.loc[teams["regional_office"].eq("West"), "sales_agent"]
    won = pipeline.loc[
        pipeline["deal_stage"].eq("Won")
        & pipeline["close_date"].str.startswith("2017-12")
        & pipeline["sales_agent"].isin(west)
    ]
    assert set(metrics) == set(west)
    expected = won.groupby("sales_agent")["close_value"].sum()
    assert {k: v["revenue"] for k, v in metrics.items() if v["revenue"]} == expected.to_dict()
    assert all(v["net_profit"] is None and v["on_time_delivery"] is None for v in metrics.values())


@needs_maven
def test_the_maven_export_runs_a_monthly_report_that_says_no_data(tmp_path):
    out = tmp_path / "reports"
    args = ["run", "monthly", "--data", str(MAVEN), "--mapping", str(MAVEN_MAPPING)]
    assert 0 == main([*args, "--department", "West", "--set", "currency=USD", "--out", str(out)])
    page = (out / "monthly" / "2017-12" / "West.html").read_text()
    text = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    assert "No data for On-time delivery, Fulfilment days, Response hours" in text
    assert "mapping" in text and "maven_crm.yaml" in page
    assert "500 row(s) skipped" in text
