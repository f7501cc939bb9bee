"""The `kpi` command line: the documents' example, formats, and errors without tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from kpilib.cli import main
from kpilib.io import write_tables
from kpilib.testing import vasily_valery_tables


@pytest.fixture
def example_source(tmp_path: Path) -> Path:
    write_tables(vasily_valery_tables(), tmp_path / "example")
    return tmp_path / "example"


def test_score_json_reproduces_the_documents_net_profit(example_source, capsys):
    assert 0 == main(["score", str(example_source), "--period", "2025-03", "--format", "json"])
    result = json.loads(capsys.readouterr().out)
    profit = {m["manager_id"]: m["metrics"]["net_profit"] for m in result["managers"]}
    assert {"vasily": 100_000.0, "valery": 250_000.0} == profit
    assert "2025-03" == result["period"]
    kpi = result["managers"][0]["kpis"][0]
    assert {"kpi", "actual", "target", "met", "attainment", "weight"} <= set(kpi)


def test_score_json_reports_missing_tables_as_null(example_source, capsys):
    main(["score", str(example_source), "--period", "2025-03", "--format", "json"])
    metrics = json.loads(capsys.readouterr().out)["managers"][0]["metrics"]
    assert None is metrics["on_time_delivery"]
    assert None is metrics["leads"]


def test_score_defaults_to_the_latest_complete_month(example_source, capsys):
    # The example's last deal closed on 2025-03-31, so March is complete and is the default.
    main(["score", str(example_source), "--format", "json"])
    result = json.loads(capsys.readouterr().out)
    assert "2025-03" == result["period"]
    profit = {m["manager_id"]: m["metrics"]["net_profit"] for m in result["managers"]}
    assert {"vasily": 100_000.0, "valery": 250_000.0} == profit


def test_score_table_and_csv_formats_list_every_manager(example_source, capsys):
    main(["score", str(example_source), "--period", "2025-03", "--format", "csv"])
    table = pd.read_csv(pd.io.common.StringIO(capsys.readouterr().out))
    assert [100_000.0, 250_000.0] == sorted(table["net_profit"])
    main(["score", str(example_source), "--period", "2025-03"])
    out = capsys.readouterr().out
    assert "vasily" in out and "valery" in out


def test_set_overrides_the_technical_hour_cost(example_source, capsys):
    main(
        [
            "score",
            str(example_source),
            "--period",
            "2025-03",
            "--format",
            "json",
            "--set",
            "technical_hour_cost=2000",
        ]
    )
    managers = json.loads(capsys.readouterr().out)["managers"]
    assert (
        50_000.0
        == next(m for m in managers if m["manager_id"] == "vasily")["metrics"]["net_profit"]
    )


def test_bad_data_exits_2_with_a_message_not_a_traceback(tmp_path, caplog):
    tables = vasily_valery_tables()
    tables["deals"].loc[0, "amount"] = "-5"
    write_tables(tables, tmp_path / "bad")
    assert 2 == main(["validate", str(tmp_path / "bad")])
    assert "deals.amount" in caplog.text
    assert "Traceback" not in caplog.text


def test_bad_parameter_names_set(example_source, caplog):
    assert 2 == main(["score", str(example_source), "--set", "trend_months=many"])
    assert "--set" in caplog.text and "trend_months" in caplog.text


def test_validate_lists_tables_and_absent_ones(example_source, capsys):
    assert 0 == main(["validate", str(example_source)])
    out = capsys.readouterr().out
    assert "deals        2 rows" in out
    assert "deliveries   absent: no data" in out


def test_demo_writes_a_readable_source(tmp_path):
    assert 0 == main(["demo", "--out", str(tmp_path / "demo"), "--months", "24"])
    assert 0 == main(["validate", str(tmp_path / "demo")])


# --- the command's exit ---------------------------------------------------------------------


def _kpi(*argv: str, before: str = "") -> subprocess.CompletedProcess[str]:
    """Run ``kpi`` as its console script does (`kpilib.cli.entry`), after `before`'s code."""
    code = "\n".join(
        [
            "import sys",
            before,
            f"sys.argv = ['kpi', *{list(argv)!r}]",
            "from kpilib.cli import entry",
            "entry()",
        ]
    )
    # Buffered output, as a scheduler's kpi has it unless told otherwise.
    env = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )


def test_the_command_ends_with_mains_status_and_all_of_its_output(example_source, capsys):
    argv = ["validate", str(example_source)]
    assert 0 == main(argv)
    expected = capsys.readouterr().out
    # Into a pipe, a few lines stay in the stream's buffer until it is flushed.
    done = _kpi(*argv)
    assert (0, expected) == (done.returncode, done.stdout)
    failed = _kpi("validate", str(example_source / "nowhere"))
    assert 2 == failed.returncode
    assert "is not a folder" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_the_command_runs_the_exit_handlers_before_it_ends(example_source):
    done = _kpi(
        "validate",
        str(example_source),
        before="import atexit\natexit.register(print, 'the exit handlers ran')",
    )
    assert 0 == done.returncode
    assert done.stdout.endswith("the exit handlers ran\n")


def test_the_default_number_of_reports_at_once_honours_a_containers_cpu_quota(monkeypatch):
    import dask.system
    import psutil

    from kpilib import cli

    # A 64-core node whose container may use one core's worth of CPU time (Kubernetes limit 1).
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(64)))
    monkeypatch.setattr(os, "process_cpu_count", lambda: 64, raising=False)  # Python 3.13+
    monkeypatch.setattr(psutil.Process, "cpu_affinity", lambda _self: list(range(64)))
    monkeypatch.setattr(dask.system, "_try_extract_cgroup_cpu_quota", lambda: (100_000, 100_000))
    assert 1 == cli.cores()
    # without a quota, the 64 cores of its affinity
    monkeypatch.setattr(dask.system, "_try_extract_cgroup_cpu_quota", lambda: (None, None))
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert 64 == cli.cores()
