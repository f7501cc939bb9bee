"""The batch runner: one report per department (and company-wide), isolated, never half-written.

Each report is executed and rendered in a staging folder and moved into place only when complete.
A department that fails leaves its previous report where it was, gets a ``<id>.failed.json`` that
the index shows, and does not stop the others.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from kpilib import paths
from kpilib.errors import KpiError
from kpilib.io import write_json
from kpilib.params import RunParams, effective_scheme, load_run_params, scheme_path
from kpilib.render import declared_parameters, execute_notebook, export_html, write_index


@dataclass(frozen=True)
class Job:
    """One department's report to produce."""

    department_id: str
    period: str
    notebook: Path
    out_dir: Path
    parameters: dict[str, Any] = field(default_factory=dict)
    title: str = ""


@dataclass(frozen=True)
class Outcome:
    """How one department's report went."""

    department_id: str
    ok: bool
    seconds: float = 0.0
    step: str = ""
    error: str = ""
    html: Path | None = None


def monthly_jobs(
    departments: Sequence[str],
    period: pd.Period,
    data: Path,
    params_dir: Path,
    out: Path,
    overrides: Mapping[str, str] | None = None,
    notebook: Path = paths.MONTHLY_NOTEBOOK,
) -> tuple[list[Job], list[Outcome]]:
    """Plan each department's monthly report; a department whose parameters are invalid fails.

    Returns:
        The jobs to run, and the outcomes of departments that failed while planning.
    """

    def wanted(department: str, run: RunParams) -> dict[str, Any]:
        return {
            "department": department,
            "period": f"{period:%Y-%m}",
            "trend_months": run.trend_months,
            "department_name": run.department_name or "",
        }

    def title(department: str, run: RunParams) -> str:
        return f"{run.department_name or department}: monthly KPI report {period:%Y-%m}"

    plan = _Plan(notebook, out / "monthly" / f"{period:%Y-%m}", data, params_dir, overrides)
    return plan.jobs([(d, d) for d in departments], wanted, title)


def quarterly_jobs(
    departments: Sequence[str],
    quarter: pd.Period,
    data: Path,
    params_dir: Path,
    out: Path,
    overrides: Mapping[str, str] | None = None,
    notebook: Path = paths.QUARTERLY_NOTEBOOK,
) -> tuple[list[Job], list[Outcome]]:
    """Plan the quarterly verification of each department and the company-wide one.

    The company-wide report (``company.html``) runs on ``params/base.yaml`` and the overrides
    alone and pools every sales department of the data; it reads each month's recorded scheme
    from the monthly reports under `out`.

    Returns:
        The jobs to run, and the outcomes of reports that failed while planning.
    """

    def wanted(department: str | None, run: RunParams) -> dict[str, Any]:
        return {
            "department": department or "",
            "period": str(quarter),
            "link_months": run.link_months,
            "department_name": run.department_name or "" if department else "",
            "reports": str(out.resolve()),
        }

    def title(department: str | None, run: RunParams) -> str:
        name = (run.department_name or department) if department else "All sales departments"
        return f"{name}: quarterly KPI verification {quarter}"

    plan = _Plan(notebook, out / "quarterly" / str(quarter), data, params_dir, overrides)
    targets: list[tuple[str, str | None]] = [(d, d) for d in departments]
    return plan.jobs([*targets, (paths.COMPANY_REPORT, None)], wanted, title)


@dataclass(frozen=True)
class _Plan:
    """What every job of a batch shares: notebook, output folder, data and parameters."""

    notebook: Path
    out_dir: Path
    data: Path
    params_dir: Path
    overrides: Mapping[str, str] | None

    def jobs(
        self,
        targets: Sequence[tuple[str, str | None]],
        wanted: Callable[[Any, RunParams], dict[str, Any]],
        title: Callable[[Any, RunParams], str],
    ) -> tuple[list[Job], list[Outcome]]:
        """Plan one job per (report id, department) pair; None is the company-wide report."""
        declared = set(declared_parameters(self.notebook))
        ids = [report_id for report_id, department in targets if department is not None]
        jobs, failed = [], []
        for report_id, department in targets:
            if not is_file_safe(report_id):
                error = (
                    f"department id {report_id!r} cannot name a report file (letters, digits, _.-)"
                )
                failed.append(Outcome(report_id, False, step="parameters", error=error))
                continue
            if department is None and report_id in ids:
                error = (
                    f"a sales department is called {report_id!r}, the name of the company-wide "
                    "report; rename the department in the data"
                )
                failed.append(Outcome(report_id, False, step="parameters", error=error))
                continue
            try:
                run = load_run_params(self.params_dir, department, self.overrides)
                effective_scheme(
                    self.params_dir, run
                )  # a broken scheme fails here, not in the kernel
            except KpiError as error:
                failed.append(Outcome(report_id, False, step="parameters", error=str(error)))
                continue
            values = {
                **wanted(department, run),
                "data": str(self.data.resolve()),
                "scheme": str(scheme_path(self.params_dir, run).resolve()),
                "currency": run.currency,
                "technical_hour_cost": run.technical_hour_cost,
            }
            lost = sorted(k for k, v in values.items() if k not in declared and v not in (None, ""))
            if lost:
                error = (
                    f"{self.notebook.name} does not declare the parameter(s) {', '.join(lost)} "
                    "set for it"
                )
                failed.append(Outcome(report_id, False, step="parameters", error=error))
                continue
            parameters = {key: value for key, value in values.items() if key in declared}
            label = str(values["period"])
            jobs.append(
                Job(
                    report_id,
                    label,
                    self.notebook,
                    self.out_dir,
                    parameters,
                    title(department, run),
                )
            )
        return jobs, failed


def is_file_safe(department_id: str) -> bool:
    """Whether an id can name report files: word characters, dots and dashes, no leading dot."""
    return re.fullmatch(r"\w[\w.-]*", department_id) is not None


def run_job(job: Job) -> Outcome:
    """Execute and render one report in a staging folder, then move it into place."""
    started = time.monotonic()
    name = job.department_id
    staging = job.out_dir / f".staging-{name}"
    step = "prepare"
    try:
        job.out_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        step = "execute"
        parameters = {**job.parameters, "results_path": str(staging / f"{name}.kpis.json")}
        execute_notebook(
            job.notebook, staging / f"{name}.ipynb", parameters, cwd=job.notebook.parent
        )
        step = "render"
        export_html(staging / f"{name}.ipynb", staging / f"{name}.html", title=job.title)
        for suffix in (".kpis.json", ".ipynb", ".html"):
            (staging / f"{name}{suffix}").replace(job.out_dir / f"{name}{suffix}")
        (job.out_dir / f"{name}.failed.json").unlink(missing_ok=True)
        return Outcome(name, True, time.monotonic() - started, html=job.out_dir / f"{name}.html")
    except Exception as error:  # one report's failure, whatever it is, must not end the batch
        message = str(error) if isinstance(error, KpiError) else f"{type(error).__name__}: {error}"
        outcome = Outcome(name, False, time.monotonic() - started, step, message)
        record_failure(job.out_dir, job.period, outcome)
        return outcome
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def record_failure(out_dir: Path, period: str, outcome: Outcome) -> None:
    """Write the ``<id>.failed.json`` the index shows beside the last good report."""
    write_json(
        {
            "period": period,
            "department_id": outcome.department_id,
            "step": outcome.step,
            "error": outcome.error,
        },
        out_dir / f"{outcome.department_id}.failed.json",
    )


# Reports already run side by side, one per core; multi-threaded linear algebra in each kernel
# (the forecast's model fitting) would only fight over the same cores. Kernels inherit these.
SINGLE_THREADED = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run_jobs(
    jobs: Iterable[Job], workers: int = 1, on_done: Callable[[Outcome], None] | None = None
) -> list[Outcome]:
    """Run jobs, `workers` at a time, in separate processes when more than one.

    Kernels start with single-threaded linear algebra (``SINGLE_THREADED``) unless the
    environment already says otherwise.

    Args:
        jobs: The reports to produce.
        workers: How many reports to run at once.
        on_done: Called with each outcome as it arrives (progress display).
    """
    for name, value in SINGLE_THREADED.items():
        os.environ.setdefault(name, value)
    jobs = list(jobs)
    outcomes = []
    if workers <= 1:
        for job in jobs:
            outcomes.append(run_job(job))
            if on_done:
                on_done(outcomes[-1])
        return outcomes
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for future in as_completed([pool.submit(run_job, job) for job in jobs]):
            outcomes.append(future.result())
            if on_done:
                on_done(outcomes[-1])
    return outcomes


def finish_batch(
    out: Path, outcomes: Sequence[Outcome], period: str, kind: str = "monthly"
) -> Path:
    """Record planning failures and write the index of every report under `out`.

    Args:
        out: The reports folder.
        outcomes: Every report's outcome.
        period: The batch's period folder name (``2026-09``, ``2026Q3``).
        kind: ``monthly`` or ``quarterly``.
    """
    for outcome in outcomes:
        if not outcome.ok and outcome.step == "parameters" and is_file_safe(outcome.department_id):
            record_failure(out / kind / period, period, outcome)
    return write_index(out)
