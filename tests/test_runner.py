"""The batch runner: end to end on a small demo, isolated failures, nothing half-written."""

from __future__ import annotations

import contextlib
import html
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from kpilib import paths
from kpilib.cli import main
from kpilib.demo import DemoConfig, generate
from kpilib.io import write_tables
from kpilib.runner import (
    Job,
    batch_lock,
    finish_batch,
    monthly_jobs,
    quarterly_jobs,
    run_jobs,
    single_threaded,
)
from kpilib.testing import small_notebook

PERIOD = "2025-12"


@pytest.fixture(scope="module")
def demo_source(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("demo") / "data"
    write_tables(generate(DemoConfig(months=24, end=PERIOD, managers_per_department=6)), folder)
    return folder


@pytest.fixture(scope="module")
def batch(demo_source, tmp_path_factory) -> tuple[int, Path]:
    """One real batch: two departments, one of them with an invalid parameters file."""
    params = tmp_path_factory.mktemp("params")
    shutil.copytree(paths.PARAMS, params, dirs_exist_ok=True)
    (params / "departments").mkdir(exist_ok=True)
    (params / "departments" / "south.yaml").write_text("trend_months: 12\ncolour: red\n")
    out = tmp_path_factory.mktemp("reports")
    code = main(
        [
            "run",
            "monthly",
            "--data",
            str(demo_source),
            "--params",
            str(params),
            "--out",
            str(out),
            "--department",
            "north",
            "--department",
            "south",
        ]
    )
    return code, out


def test_batch_writes_report_notebook_and_results_beside_each_other(batch):
    _, out = batch
    folder = out / "monthly" / PERIOD
    assert {"north.html", "north.ipynb", "north.kpis.json"} <= {p.name for p in folder.iterdir()}
    html = (folder / "north.html").read_text()
    for section in (
        "Findings",
        "Department roll-up",
        "Scorecard per manager",
        "Net profit per manager",
        "Revenue structure",
        "Trends",
        "Provenance",
    ):
        assert section in html
    assert "Vasily" in html
    assert "Traceback" not in html and "Warning" not in html


def test_report_shows_no_code_and_requests_nothing(batch):
    html = (batch[1] / "monthly" / PERIOD / "north.html").read_text()
    assert "kpilib.prepare_monthly" not in html
    assert 'src="http' not in html and 'href="http' not in html and "<script" not in html


def test_results_json_matches_the_documented_shape(batch):
    results = json.loads((batch[1] / "monthly" / PERIOD / "north.kpis.json").read_text())
    assert PERIOD == results["period"]
    assert "north" == results["department_id"]
    assert {"manager_id", "department_id", "tier", "score", "metrics", "kpis"} <= set(
        results["managers"][0]
    )
    assert results["headline"]["revenue"] > 0


def test_index_links_the_report_with_its_headline(batch):
    index = (batch[1] / "index.html").read_text()
    assert f"monthly/{PERIOD}/north.html" in index
    assert "North" in index


def test_a_failing_department_is_reported_and_the_batch_exits_non_zero(batch):
    code, out = batch
    assert 1 == code
    failure = json.loads((out / "monthly" / PERIOD / "south.failed.json").read_text())
    assert "parameters" == failure["step"]
    assert "colour" in failure["error"] and "south.yaml" in failure["error"]
    assert "FAILED" in (out / "index.html").read_text()


def _notebook(path: Path, source: str) -> Path:
    return small_notebook(path, 'x = 1\nresults_path = ""', source)


def test_a_failed_run_leaves_the_previous_report_in_place(tmp_path):
    out_dir = tmp_path / "monthly" / PERIOD
    out_dir.mkdir(parents=True)
    (out_dir / "north.html").write_text("last good report")
    broken = _notebook(tmp_path / "broken.ipynb", "raise ValueError('boom')")
    [outcome] = run_jobs([Job("north", PERIOD, broken, out_dir, {"x": 2}, "t")])
    assert not outcome.ok
    assert "execute" == outcome.step and "boom" in outcome.error
    assert "last good report" == (out_dir / "north.html").read_text()
    assert "boom" in (out_dir / "north.failed.json").read_text()
    assert [] == list(out_dir.glob(".staging-*"))


def test_set_overrides_reach_the_notebook_parameters(tmp_path):
    jobs, failed = monthly_jobs(
        ["north"],
        pd.Period(PERIOD, "M"),
        tmp_path,
        paths.PARAMS,
        tmp_path,
        {"technical_hour_cost": "2000"},
    )
    assert [] == failed
    assert 2000.0 == jobs[0].parameters["technical_hour_cost"]
    assert str(paths.PARAMS / "schemes" / "sales_funnel.yaml") == jobs[0].parameters["scheme"]


def test_a_set_parameter_the_notebook_does_not_declare_fails_instead_of_vanishing(tmp_path):
    notebook = _notebook(tmp_path / "small.ipynb", "print(x)")
    jobs, failed = monthly_jobs(
        ["north"],
        pd.Period(PERIOD, "M"),
        tmp_path,
        paths.PARAMS,
        tmp_path,
        {"technical_hour_cost": "2000"},
        notebook=notebook,
    )
    assert [] == jobs
    assert "technical_hour_cost" in failed[0].error


def test_a_department_id_that_cannot_name_a_file_fails_alone(tmp_path):
    jobs, failed = monthly_jobs(
        ["../../evil", "north"], pd.Period(PERIOD, "M"), tmp_path, paths.PARAMS, tmp_path
    )
    assert ["north"] == [job.department_id for job in jobs]
    assert "cannot name a report file" in failed[0].error


HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>"


def test_hostile_crm_text_reaches_the_report_and_index_only_escaped(demo_source, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(demo_source, data)
    for table, column in (
        ("managers", "name"),
        ("departments", "name"),
        ("products", "name"),
        ("clients", "segment"),
        ("leads", "channel"),
    ):
        frame = pd.read_csv(data / f"{table}.csv", dtype=str, keep_default_na=False)
        frame[column] = HOSTILE + " $x$ " + frame[column]
        frame.to_csv(data / f"{table}.csv", index=False)
    out = tmp_path / "reports"
    assert 0 == main(
        ["run", "monthly", "--data", str(data), "--out", str(out), "--department", "north"]
    )
    for page in (out / "monthly" / PERIOD / "north.html", out / "index.html"):
        html = page.read_text()
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def _quarterly_notebook(path: Path) -> Path:
    names = ["department", "period", "data", "scheme", "currency", "link_months"]
    names += ["technical_hour_cost", "department_name", "reports", "results_path"]
    return small_notebook(path, "\n".join(f"{name} = None" for name in names))


def test_quarterly_jobs_plan_each_department_and_the_company_wide_report(tmp_path):
    notebook = _quarterly_notebook(tmp_path / "quarterly.ipynb")
    jobs, failed = quarterly_jobs(
        ["north", "east"],
        pd.Period("2026Q3", "Q"),
        tmp_path,
        paths.PARAMS,
        tmp_path / "reports",
        {"link_months": "9"},
        notebook=notebook,
    )
    assert [] == failed
    assert ["north", "east", "company"] == [job.department_id for job in jobs]
    assert {tmp_path / "reports" / "quarterly" / "2026Q3"} == {job.out_dir for job in jobs}
    east, company = jobs[1].parameters, jobs[2].parameters
    assert ("east", "2026Q3", 9) == (east["department"], east["period"], east["link_months"])
    assert "East (KPI pilot)" == east["department_name"]  # params/departments/east.yaml
    assert ("", "") == (company["department"], company["department_name"])
    assert str((tmp_path / "reports").resolve()) == company["reports"]
    assert "All sales departments: quarterly KPI verification 2026Q3" == jobs[2].title


def test_a_department_named_like_the_company_wide_report_fails_that_report_alone(tmp_path):
    notebook = _quarterly_notebook(tmp_path / "quarterly.ipynb")
    jobs, failed = quarterly_jobs(
        ["company"], pd.Period("2026Q3", "Q"), tmp_path, paths.PARAMS, tmp_path, notebook=notebook
    )
    assert ["company"] == [job.department_id for job in jobs]
    assert 1 == len(failed) and "name of the company-wide report" in failed[0].error


@pytest.fixture(scope="module")
def quarterly_batch(demo_source, tmp_path_factory) -> tuple[int, Path]:
    """A real quarterly batch: one department and the company-wide report."""
    out = tmp_path_factory.mktemp("reports")
    args = ["run", "quarterly", "--data", str(demo_source), "--out", str(out)]
    code = main([*args, "--department", "east", "--jobs", "2"])
    return code, out


def test_quarterly_batch_writes_each_report_and_the_company_wide_one_linked_from_the_index(
    quarterly_batch,
):
    code, out = quarterly_batch
    assert 0 == code
    folder = out / "quarterly" / "2025Q4"  # the demo ends with December 2025
    for name in ("east", "company"):
        assert {f"{name}.html", f"{name}.ipynb", f"{name}.kpis.json"} <= {
            p.name for p in folder.iterdir()
        }
    index = (out / "index.html").read_text(encoding="utf-8")
    assert 'href="quarterly/2025Q4/company.html"' in index
    assert 'href="quarterly/2025Q4/east.html"' in index
    results = json.loads((folder / "company.kpis.json").read_text(encoding="utf-8"))
    assert ("2025Q4", "All sales departments") == (results["period"], results["department_name"])
    html = (folder / "east.html").read_text(encoding="utf-8")
    assert "East (KPI pilot): quarterly KPI verification, 2025Q4" in html
    verdicts = html.index(">Verdicts<")
    assert verdicts < html.index(">Do the KPIs still drive results?<")
    assert "East has run the KPI system since" in html
    assert "Traceback" not in html and "Warning" not in html


# --- failures, timeouts, lock, manifest, PDF ---------------------------------------------------


def _previous_reports(out_dir: Path, names: list[str]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        (out_dir / f"{name}.html").write_text(f"last good report of {name}")
        (out_dir / f"{name}.kpis.json").write_text('{"last": "good"}')


def test_a_failing_cell_a_killed_kernel_and_a_hang_leave_the_previous_reports_and_error_pages(
    tmp_path,
):
    out_dir = tmp_path / "monthly" / PERIOD
    _previous_reports(out_dir, ["good", "boom", "dead", "hang"])
    cells = {
        "good": "open(results_path, 'w').write('{}')",
        "boom": "raise ValueError('boom in the data')",
        "dead": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
        "hang": "import time\ntime.sleep(600)",
    }
    jobs = [
        Job(name, PERIOD, _notebook(tmp_path / f"{name}.ipynb", source), out_dir, {"x": 2}, name)
        for name, source in cells.items()
    ]
    kernel_folders = set(Path(tempfile.gettempdir()).glob("kpi-kernel-*"))
    before = _children()
    outcomes = {o.department_id: o for o in run_jobs(jobs, workers=2, timeout=25)}
    # The killed kernels' sockets went with them.
    assert kernel_folders == set(Path(tempfile.gettempdir()).glob("kpi-kernel-*"))

    assert outcomes["good"].ok
    assert "last good report" not in (out_dir / "good.html").read_text()
    assert not (out_dir / "good.error.html").exists()
    expected = {
        "boom": ("execute", "Cell 3 (`raise ValueError('boom in the data')`): ValueError: boom"),
        "dead": ("execute", "Cell 3 (`import os, signal ...`): the kernel died"),
        "hang": ("execute", "report timeout and was stopped; Cell 3 (`import time ...`)"),
    }
    for name, (step, message) in expected.items():
        outcome = outcomes[name]
        assert (False, step) == (outcome.ok, outcome.step), outcome
        assert message in outcome.error
        assert f"last good report of {name}" == (out_dir / f"{name}.html").read_text()
        assert '{"last": "good"}' == (out_dir / f"{name}.kpis.json").read_text()
        page = (out_dir / f"{name}.error.html").read_text()
        assert f"<td>{step}</td>" in page and html.escape(message) in page
        assert f'href="{name}.html"' in page  # links the last good report
        assert f'href="{name}.failed.ipynb"' in page  # and the notebook as far as it ran
        assert (out_dir / f"{name}.failed.ipynb").is_file()
    assert 25 <= outcomes["hang"].seconds < 60
    index = finish_batch(tmp_path, list(outcomes.values()), PERIOD).read_text()
    assert index.count('<span class="kpi-failed">FAILED</span>') == 3
    assert '<a href="monthly/2025-12/hang.html">previous</a>' in index
    assert '<a href="monthly/2025-12/hang.error.html">error</a>' in index
    assert '<a href="monthly/2025-12/good.html">open</a>' in index
    assert [] == list(out_dir.glob(".staging-*"))
    assert before == _children()  # the hung kernel was killed too


def test_a_cell_past_the_cell_timeout_fails_its_report_naming_the_cell(tmp_path):
    out_dir = tmp_path / "monthly" / PERIOD
    slow = _notebook(tmp_path / "slow.ipynb", "import time\ntime.sleep(60)")
    [outcome] = run_jobs([Job("north", PERIOD, slow, out_dir, {"x": 2}, "t")], cell_timeout=2)
    assert (False, "execute") == (outcome.ok, outcome.step)
    assert "Cell 3 (`import time ...`) ran longer than the 2 s cell timeout" == outcome.error
    assert "ran longer than the 2 s cell timeout" in (out_dir / "north.error.html").read_text()


def test_a_second_batch_on_the_same_folder_stops_with_a_clear_message(tmp_path, caplog):
    out = tmp_path / "reports"
    with batch_lock(out):
        code = main(["run", "monthly", "--data", str(tmp_path / "nowhere"), "--out", str(out)])
    assert 2 == code
    assert "Another batch is writing reports in" in caplog.text and "pid" in caplog.text
    with batch_lock(out):  # released by the first holder, free again
        pass


def test_the_batch_manifest_records_the_run_and_the_index_shows_it(batch, demo_source):
    _, out = batch
    manifest = json.loads((out / "monthly" / PERIOD / "manifest.json").read_text())
    assert ("monthly", PERIOD) == (manifest["kind"], manifest["period"])
    assert str(demo_source) == manifest["data"]["source"]
    assert manifest["data"]["fingerprint"]
    assert ["north", "south"] == manifest["settings"]["departments"]
    assert {"kpilib", "pandas", "papermill", "python"} <= set(manifest["versions"])
    [(scheme, digest)] = manifest["schemes"].items()  # north's; south failed before planning
    assert scheme.endswith("schemes/sales_funnel.yaml") and digest.startswith("sha256:")
    statuses = {r["department_id"]: (r["status"], r["step"]) for r in manifest["reports"]}
    assert {"north": ("ok", ""), "south": ("failed", "parameters")} == statuses
    index = (out / "index.html").read_text()
    assert "1 of 2 report(s) written" in index and manifest["data"]["fingerprint"] in index
    assert 'href="monthly/2025-12/manifest.json"' in index


def test_a_rerun_gives_byte_identical_results(batch, demo_source, tmp_path):
    _, out = batch
    again = tmp_path / "reports"
    shutil.copytree(out, again)
    args = ["run", "monthly", "--data", str(demo_source), "--out", str(again)]
    assert 0 == main([*args, "--department", "north"])
    first = (out / "monthly" / PERIOD / "north.kpis.json").read_bytes()
    assert first == (again / "monthly" / PERIOD / "north.kpis.json").read_bytes()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="PDF printing needs /usr/bin/chromium")
def test_pdf_is_printed_beside_the_report_and_linked_from_the_index(tmp_path):
    out_dir = tmp_path / "monthly" / PERIOD
    small = _notebook(tmp_path / "small.ipynb", "open(results_path, 'w').write('{}')")
    [outcome] = run_jobs([Job("north", PERIOD, small, out_dir, {"x": 2}, "North")], pdf=True)
    assert outcome.ok, outcome.error
    assert (out_dir / "north.pdf").read_bytes().startswith(b"%PDF-")
    index = finish_batch(tmp_path, [outcome], PERIOD).read_text()
    assert 'href="monthly/2025-12/north.pdf">PDF</a>' in index


def test_a_batch_stopped_midway_stops_its_workers_and_kernels_too(tmp_path):
    out_dir = tmp_path / "monthly" / PERIOD
    quick = _notebook(tmp_path / "quick.ipynb", "open(results_path, 'w').write('{}')")
    hang = _notebook(tmp_path / "hang.ipynb", "import time\ntime.sleep(600)")
    jobs = [
        Job(n, PERIOD, nb, out_dir, {"x": 2}, n) for n, nb in (("hang", hang), ("quick", quick))
    ]

    def stop(outcome):
        raise KeyboardInterrupt  # the operator, or the scheduler's SIGTERM, ends the batch

    before = _children()
    with pytest.raises(KeyboardInterrupt):
        run_jobs(jobs, workers=2, on_done=stop)
    assert before == _children()
    assert [] == list(out_dir.glob(".staging-*"))
    assert not (out_dir / "hang.html").exists()


KILLED_BATCH = """
import sys
from pathlib import Path
from kpilib.runner import Job, batch_lock, run_jobs

out, notebook = Path(sys.argv[1]), Path(sys.argv[2])
with batch_lock(out):
    run_jobs([Job("hang", "2025-12", notebook, out / "monthly" / "2025-12", {"x": 2}, "Hang")])
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="only Linux ends orphans")
def test_a_batch_killed_outright_takes_its_worker_and_kernel_with_it(tmp_path):
    # kill -9 or the out-of-memory killer: the batch cannot stop its workers itself, and an
    # orphaned worker would hold the folder's lock and write into it unsupervised.
    hang = _notebook(tmp_path / "hang.ipynb", "import time\ntime.sleep(600)")
    out = tmp_path / "reports"
    # its kernel's socket folder, which only the killed batch would have removed, goes here
    environment = {**os.environ, "TMPDIR": str(tmp_path)}
    batch = subprocess.Popen(
        [sys.executable, "-c", KILLED_BATCH, str(out), str(hang)], env=environment
    )
    family: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 60
        while len(family) < 2 and time.monotonic() < deadline:  # a worker and its kernel
            time.sleep(0.2)
            family = psutil.Process(batch.pid).children(recursive=True)
        assert 2 == len(family), "the batch did not start a worker and a kernel within 60 s"
        batch.kill()
        batch.wait()
        _, alive = psutil.wait_procs(family, timeout=10)
        assert [] == alive
        with batch_lock(out):  # free at once
            pass
        assert not (out / "monthly" / "2025-12" / "hang.html").exists()
    finally:
        batch.kill()
        for process in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()


def test_an_id_that_reads_as_another_reports_file_cannot_name_a_report(tmp_path):
    period = pd.Period(PERIOD, "M")
    jobs, failed = monthly_jobs(["north.error", "north"], period, tmp_path, paths.PARAMS, tmp_path)
    assert ["north"] == [job.department_id for job in jobs]
    assert "cannot name a report file" in failed[0].error


def _children() -> set[int]:
    """This process's descendants (other tests may have left helpers running, such as the
    resource tracker of a Dask cluster's worker processes)."""
    return {process.pid for process in psutil.Process().children(recursive=True)}


def test_kernels_run_single_threaded_linear_algebra_unless_the_environment_sets_a_count():
    environ = {"OPENBLAS_NUM_THREADS": "", "OMP_NUM_THREADS": "4", "PATH": "/bin"}
    single_threaded(environ)
    # blank says nothing (a crontab's `OPENBLAS_NUM_THREADS=`), unset neither; a count stays
    assert environ == {
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "4",
        "MKL_NUM_THREADS": "1",
        "PATH": "/bin",
    }
    blank = {"OPENBLAS_NUM_THREADS": "  "}
    single_threaded(blank)
    assert blank["OPENBLAS_NUM_THREADS"] == "1"
