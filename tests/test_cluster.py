"""The Dask executor: reports run on a local Dask cluster land in the same layout as a local run."""

from __future__ import annotations

import _thread
import dataclasses
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import distributed
import pandas as pd
import psutil
import pytest
from postgres_support import SERVER, server, server_schema

from kpilib import cluster, paths
from kpilib.cluster import has_password, run_on_dask, scheduler_address
from kpilib.database import write_database
from kpilib.errors import ParamsError
from kpilib.io import read_source
from kpilib.runner import Job, Outcome, finish_batch, monthly_jobs, run_jobs
from kpilib.testing import small_notebook

PERIOD = "2026-09"


@pytest.fixture(scope="module")
def local(source, tmp_path_factory) -> Path:
    """North's results from a local run, made before the cluster starts: a local batch forks
    its workers, which a process running the cluster's threads must not do."""
    out = tmp_path_factory.mktemp("local")
    [outcome] = run_jobs([_north(source, out)])
    assert outcome.ok, outcome.error
    return out / "monthly" / PERIOD / "north.kpis.json"


@pytest.fixture(scope="module")
def address(local) -> Iterator[str]:
    """A local Dask cluster of one single-threaded worker process, as ``dask://HOST:PORT``."""
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
    ) as running:
        yield running.scheduler_address.replace("tcp://", "dask://")


def _north(source: Path, out: Path) -> Job:
    jobs, failed = monthly_jobs(["north"], pd.Period(PERIOD, "M"), source, paths.PARAMS, out)
    assert [] == failed
    return jobs[0]


@pytest.fixture(scope="module")
def remote(address, source, tmp_path_factory) -> tuple[Path, list[Outcome], list[Outcome]]:
    """North's report and one for a department the data does not have, run on the cluster."""
    out = tmp_path_factory.mktemp("remote")
    north = _north(source, out)
    nowhere = dataclasses.replace(
        north, department_id="nowhere", parameters={**north.parameters, "department": "nowhere"}
    )
    told: list[Outcome] = []
    outcomes = run_on_dask(address, [north, nowhere], on_done=told.append, timeout=600)
    finish_batch(out, outcomes, PERIOD)
    return out, outcomes, told


def _by_id(outcomes: list[Outcome]) -> dict[str, Outcome]:
    return {o.department_id: o for o in outcomes}


def test_a_report_run_on_the_cluster_lands_in_the_reports_layout(remote):
    out, outcomes, told = remote
    folder = out / "monthly" / PERIOD
    north = _by_id(outcomes)["north"]
    assert north.ok, north.error
    assert folder / "north.html" == north.html
    assert {"north.html", "north.ipynb", "north.kpis.json"} <= {p.name for p in folder.iterdir()}
    assert "Scorecard per manager" in (folder / "north.html").read_text()
    assert [] == list(folder.glob(".staging-*"))
    assert sorted(outcomes, key=str) == sorted(told, key=str)


def test_the_index_lists_the_reports_run_on_the_cluster(remote):
    index = (remote[0] / "index.html").read_text()
    assert f"monthly/{PERIOD}/north.html" in index
    assert "North" in index


def test_the_cluster_gives_the_results_a_local_run_gives(remote, local):
    on_cluster = json.loads((remote[0] / "monthly" / PERIOD / "north.kpis.json").read_text())
    assert json.loads(local.read_text()) == on_cluster


def test_a_failing_report_comes_back_as_a_failure_with_its_records(remote):
    out, outcomes, _ = remote
    folder = out / "monthly" / PERIOD
    nowhere = _by_id(outcomes)["nowhere"]
    assert not nowhere.ok
    assert "execute" == nowhere.step
    assert "nowhere" in nowhere.error
    failed = json.loads((folder / "nowhere.failed.json").read_text())
    assert ("execute", nowhere.error) == (failed["step"], failed["error"])
    assert (folder / "nowhere.error.html").is_file()
    assert (folder / "nowhere.failed.ipynb").is_file()
    assert not (folder / "nowhere.html").exists()
    assert "FAILED" in (out / "index.html").read_text()


def _sleeper(folder: Path) -> Path:
    """A notebook whose second cell sleeps for a minute."""
    parameters = 'x = 1\nresults_path = ""'
    return small_notebook(folder / "sleeper.ipynb", parameters, "import time\ntime.sleep(60)")


def _kernels() -> list[psutil.Process]:
    """Jupyter kernels started by this test run's processes (the cluster's worker among them)."""
    found = []
    for process in psutil.Process().children(recursive=True):
        try:
            if any("ipykernel" in part for part in process.cmdline()):
                found.append(process)
        except psutil.NoSuchProcess:
            continue
    return found


def test_an_overdue_report_is_stopped_on_the_worker_and_recorded(address, tmp_path):
    out_dir = tmp_path / "monthly" / PERIOD
    out_dir.mkdir(parents=True)
    (out_dir / "north.html").write_text("last good report")
    job = Job("north", PERIOD, _sleeper(tmp_path), out_dir, {"x": 2}, "t")
    started = time.monotonic()
    [outcome] = run_on_dask(address, [job], timeout=4)
    assert time.monotonic() - started < 40
    assert not outcome.ok
    assert "execute" == outcome.step
    assert "ran longer than the 4 s report timeout" in outcome.error
    assert "Cell 3 (`import time ...`) was running" in outcome.error
    assert "last good report" == (out_dir / "north.html").read_text()
    assert (out_dir / "north.failed.json").is_file() and (out_dir / "north.failed.ipynb").is_file()
    assert [] == _kernels()


def test_a_report_the_worker_does_not_bring_back_in_time_is_given_up(
    address, tmp_path, monkeypatch
):
    """The batch's own deadline: here before the worker's, which it would otherwise follow."""
    monkeypatch.setattr(cluster, "TIMEOUT_GRACE", -2.0)
    out_dir = tmp_path / "monthly" / PERIOD
    job = Job("north", PERIOD, _sleeper(tmp_path), out_dir, {"x": 2}, "t")
    [outcome] = run_on_dask(address, [job], timeout=4)
    assert not outcome.ok
    assert "execute" == outcome.step
    assert "ran longer than the 4 s report timeout" in outcome.error
    assert outcome.seconds < 4
    assert "execute" == json.loads((out_dir / "north.failed.json").read_text())["step"]
    deadline = time.monotonic() + 15
    while _kernels() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [] == _kernels()


def _interrupt_once_a_kernel_runs(seen: threading.Event) -> None:
    """Press Ctrl-C in the main thread as soon as a report's kernel runs (within a minute)."""
    deadline = time.monotonic() + 60
    while not _kernels() and time.monotonic() < deadline:
        time.sleep(0.2)
    if _kernels():
        seen.set()
    _thread.interrupt_main()


def test_a_stopped_batch_stops_its_reports_on_the_cluster(address, tmp_path):
    out_dir = tmp_path / "monthly" / PERIOD
    job = Job("north", PERIOD, _sleeper(tmp_path), out_dir, {"x": 2}, "t")
    seen = threading.Event()
    threading.Thread(target=_interrupt_once_a_kernel_runs, args=(seen,), daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        run_on_dask(address, [job], timeout=600)
    assert seen.is_set()
    deadline = time.monotonic() + 15
    while _kernels() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [] == _kernels()
    assert not out_dir.exists() or [] == list(out_dir.iterdir())


def test_a_task_that_fails_on_the_cluster_fails_only_its_report(address, tmp_path, monkeypatch):
    def broken(*_args: object) -> None:
        raise RuntimeError("the worker lost its disk")

    monkeypatch.setattr(cluster, "produce_remotely", broken)
    out_dir = tmp_path / "monthly" / PERIOD
    job = Job("north", PERIOD, tmp_path / "any.ipynb", out_dir, {}, "t")
    [outcome] = run_on_dask(address, [job])
    assert not outcome.ok
    assert "RuntimeError: the worker lost its disk" in outcome.error
    assert "lost its disk" in (out_dir / "north.failed.json").read_text()
    assert (out_dir / "north.error.html").is_file()


def test_a_worker_that_cannot_see_the_files_says_so(address, tmp_path):
    out_dir = tmp_path / "monthly" / PERIOD
    job = Job("north", PERIOD, tmp_path / "elsewhere.ipynb", out_dir, {}, "t")
    [outcome] = run_on_dask(address, [job])
    assert not outcome.ok
    assert "elsewhere.ipynb is not there on the Dask worker" in outcome.error


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("dask://scheduler.example:8786", "tcp://scheduler.example:8786"),
        ("tcp://10.0.0.5:8786", "tcp://10.0.0.5:8786"),
        ("dask://[::1]:8786/", "tcp://[::1]:8786"),
    ],
)
def test_scheduler_addresses_are_read_as_tcp(given, expected):
    assert expected == scheduler_address(given)


@pytest.mark.parametrize(
    "given",
    ["dask://scheduler.example", "http://scheduler.example:8786", "dask://:8786", "dask://h:0", ""],
)
def test_a_malformed_address_is_refused(given):
    with pytest.raises(ParamsError, match="not the address of a Dask scheduler"):
        run_on_dask(given, [])


def test_an_address_where_no_scheduler_answers_is_refused_quickly(monkeypatch):
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 2.0)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(ParamsError, match=f"No Dask scheduler answered at dask://127.0.0.1:{port}"):
        run_on_dask(f"dask://127.0.0.1:{port}", [])
    assert time.monotonic() - started < 8


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("postgresql://kpi:s3cret@db.example/crm", True),
        ("postgresql://kpi@db.example/crm?password=s3cret", True),
        ("postgresql://kpi:p@ss@db.example/crm", True),
        ("postgresql://kpi@db.example/crm", False),
        ("sqlite:///data/crm.db", False),
        ("/srv/crm/export", False),
        ("/srv/crm/kpi.duckdb#3", False),
    ],
)
def test_passwords_in_database_urls_are_found(data, expected):
    assert expected == has_password(data)


def test_a_database_url_with_a_password_is_never_sent(tmp_path, monkeypatch):
    def connect(*_args: object) -> None:
        raise AssertionError("connected although a password would be sent")

    monkeypatch.setattr(cluster, "_connect", connect)
    data = "postgresql://kpi:s3cret@db.example/crm"
    job = Job("north", PERIOD, tmp_path / "n.ipynb", tmp_path, {"data": data}, "t")
    with pytest.raises(ParamsError, match="PGPASSWORD") as raised:
        run_on_dask("dask://127.0.0.1:8786", [job])
    assert "s3cret" not in str(raised.value)
    assert "db.example" in str(raised.value)


def test_kpi_run_with_an_executor_runs_the_batch_on_the_cluster(address, source, tmp_path):
    from kpilib.cli import main

    out = tmp_path / "reports"
    argv = ["run", "monthly", "--data", str(source), "--out", str(out), "--period", PERIOD]
    assert 0 == main([*argv, "--department", "south", "--executor", address])
    folder = out / "monthly" / PERIOD
    assert (folder / "south.html").is_file() and (folder / "south.kpis.json").is_file()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert address == manifest["settings"]["executor"]
    assert ["ok"] == [report["status"] for report in manifest["reports"]]
    assert "south" in (out / "index.html").read_text()


@server
def test_a_batch_on_postgresql_runs_on_the_cluster_from_the_batchs_copy(
    address, source, local, tmp_path
):
    """The batch reads the database once; the workers read its copy, gone when the batch ends."""
    from kpilib.cli import main

    crm = read_source(source)
    out = tmp_path / "reports"
    with server_schema() as schema:
        write_database(crm.tables(), SERVER, schema=schema)
        url = f"{SERVER}?options=-csearch_path%3D{schema}"
        argv = ["run", "monthly", "--data", url, "--out", str(out), "--period", PERIOD]
        assert 0 == main([*argv, "--department", "north", "--executor", address])
    folder = out / "monthly" / PERIOD
    executed = json.loads((folder / "north.ipynb").read_text())
    [given] = [
        "".join(cell["source"])
        for cell in executed["cells"]
        if "injected-parameters" in cell["metadata"].get("tags", [])
    ]
    assert f"{out.resolve()}/.kpi-batch-data.duckdb#1" in given and SERVER not in given
    assert not list(out.glob(".kpi-batch-data*"))
    results = json.loads((folder / "north.kpis.json").read_text())
    expected = json.loads(local.read_text())
    del results["data_fingerprint"], expected["data_fingerprint"]
    assert expected == results  # the same report as on the files
    manifest = json.loads((folder / "manifest.json").read_text())
    assert url == manifest["data"]["source"]
