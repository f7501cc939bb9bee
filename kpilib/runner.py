"""The batch runner: one report per department (and company-wide), isolated, never half-written.

Each report runs in a worker process of its own, forked from the batch, in a kernel forked from
that worker (`kpilib.kernels`: the imports and the batch's data are already in memory). It is
executed and rendered in a staging folder and moved into place only when complete. A report that
fails (a cell error, a dead kernel, a hang past the cell or the report timeout) leaves its previous
report where it was, gets a ``<id>.failed.json`` and an ``<id>.error.html`` that the index shows,
and does not stop the others. One batch at a time writes to a reports folder (`batch_lock`); each
leaves a ``manifest.json``.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import gc
import hashlib
import multiprocessing
import multiprocessing.process
import os
import platform
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
from threadpoolctl import threadpool_limits

from kpilib import kernels, paths
from kpilib.errors import KpiError, ReportError
from kpilib.io import write_json
from kpilib.params import RunParams, effective_scheme, load_run_params, scheme_path
from kpilib.pdf import print_pdf
from kpilib.render import (
    MANIFEST,
    declared_parameters,
    execute_notebook,
    export_html,
    write_error_page,
    write_index,
)
from kpilib.sources import pinned


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
    data: str | Path,
    params_dir: Path,
    out: Path,
    overrides: Mapping[str, str] | None = None,
    notebook: Path = paths.MONTHLY_NOTEBOOK,
    mapping: Path | None = None,
) -> tuple[list[Job], list[Outcome]]:
    """Plan each department's monthly report; a department whose parameters are invalid fails.

    `data` names the source as `kpilib.sources.pinned` made it exact; `mapping` is the YAML
    mapping the reports read it through, if any.

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

    plan = _Plan(
        notebook, out / "monthly" / f"{period:%Y-%m}", data, params_dir, overrides, mapping
    )
    return plan.jobs([(d, d) for d in departments], wanted, title)


def quarterly_jobs(
    departments: Sequence[str],
    quarter: pd.Period,
    data: str | Path,
    params_dir: Path,
    out: Path,
    overrides: Mapping[str, str] | None = None,
    notebook: Path = paths.QUARTERLY_NOTEBOOK,
    mapping: Path | None = None,
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

    plan = _Plan(notebook, out / "quarterly" / str(quarter), data, params_dir, overrides, mapping)
    targets: list[tuple[str, str | None]] = [(d, d) for d in departments]
    return plan.jobs([*targets, (paths.COMPANY_REPORT, None)], wanted, title)


@dataclass(frozen=True)
class _Plan:
    """What every job of a batch shares: notebook, output folder, data and parameters."""

    notebook: Path
    out_dir: Path
    data: str | Path
    params_dir: Path
    overrides: Mapping[str, str] | None
    mapping: Path | None = None

    def jobs(
        self,
        targets: Sequence[tuple[str, str | None]],
        wanted: Callable[[Any, RunParams], dict[str, Any]],
        title: Callable[[Any, RunParams], str],
    ) -> tuple[list[Job], list[Outcome]]:
        """Plan one job per (report id, department) pair; None is the company-wide report."""
        declared = set(declared_parameters(self.notebook))
        data = pinned(self.data)
        mapping = str(self.mapping.resolve()) if self.mapping else ""
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
                "data": data,
                "mapping": mapping,
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
    """Whether an id can name report files: word characters, dots and dashes, no leading dot,
    and no ending that reads as another report's file (``north.error``, ``north.failed``)."""
    return re.fullmatch(r"\w[\w.-]*", department_id) is not None and not department_id.endswith(
        (".error", ".failed", ".kpis")
    )


def run_job(
    job: Job,
    pdf: bool = False,
    cell_timeout: int = 600,
    on_step: Callable[[str], None] | None = None,
    kernel: Callable[[], Any] | None = None,
) -> Outcome:
    """Execute and render one report in a staging folder, then move it into place.

    Runs in the calling process; `run_jobs` calls it in a worker process of its own. A report
    that fails leaves the previous one in place and gets a failure record and an error page.

    Args:
        job: The report to produce.
        pdf: Also print the page as ``<id>.pdf`` with Chromium (`kpilib.pdf`).
        cell_timeout: Seconds one notebook cell may run.
        on_step: Told the name of each step as it starts (prepare, execute, render, pdf,
            publish), so that whoever stops an overdue report knows where it was.
        kernel: Starts the kernel the report runs in (`kpilib.kernels.fork_kernel`); by default
            papermill starts a new ``python3`` kernel.
    """
    started = time.monotonic()
    staging = staging_folder(job)
    progress = _Steps(on_step)
    try:
        job.out_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        suffixes = produce(job, staging, pdf, cell_timeout, progress, kernel, progress.cell)
        progress("publish")
        publish(job, staging, suffixes)
        name = job.department_id
        return Outcome(name, True, time.monotonic() - started, html=job.out_dir / f"{name}.html")
    except Exception as error:  # one report's failure, whatever it is, must not end the batch
        outcome = failure(job, progress.step, error, time.monotonic() - started)
        _keep_failed_notebook(job)
        record_failure(job.out_dir, job.period, outcome, job.title)
        return outcome
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class _Steps:
    """The step a report is at, told to whoever watches (`on_step`) as each one starts, and
    while it executes, each cell as it starts (as ``("cell", description)``)."""

    def __init__(self, on_step: Callable[[Any], None] | None) -> None:
        self.step = "prepare"
        self._on_step = on_step

    def __call__(self, step: str) -> None:
        self.step = step
        if self._on_step:
            self._on_step(step)

    def cell(self, description: str) -> None:
        if self._on_step:
            self._on_step(("cell", description))


def produce(
    job: Job,
    folder: Path,
    pdf: bool,
    cell_timeout: int,
    on_step: Callable[[str], None],
    kernel: Callable[[], Any] | None = None,
    on_cell: Callable[[str], None] | None = None,
) -> list[str]:
    """Execute the job's notebook and render its page (and PDF) into `folder`.

    Returns:
        The suffixes of the files written (``.kpis.json``, ``.ipynb``, ``.html``, ``.pdf``),
        ready for `publish`.

    Raises:
        ReportError: The notebook failed or the page could not be rendered.
    """
    name = job.department_id
    on_step("execute")
    parameters = {**job.parameters, "results_path": str(folder / f"{name}.kpis.json")}
    execute_notebook(
        job.notebook,
        folder / f"{name}.ipynb",
        parameters,
        cwd=job.notebook.parent,
        cell_timeout=cell_timeout,
        kernel=kernel,
        on_cell=on_cell,
    )
    on_step("render")
    export_html(folder / f"{name}.ipynb", folder / f"{name}.html", title=job.title)
    suffixes = [".kpis.json", ".ipynb", ".html"]
    if pdf:
        on_step("pdf")
        print_pdf(folder / f"{name}.html", folder / f"{name}.pdf")
        suffixes.append(".pdf")
    return suffixes


def publish(job: Job, folder: Path, suffixes: Sequence[str]) -> None:
    """Move a complete report's files from `folder` into place and clear what no longer holds:
    an earlier failure's records, and a PDF that would no longer match the page."""
    name = job.department_id
    for suffix in suffixes:
        (folder / f"{name}{suffix}").replace(job.out_dir / f"{name}{suffix}")
    pdf = ".pdf" in suffixes
    for stale in (".failed.json", ".error.html", ".failed.ipynb", *(() if pdf else (".pdf",))):
        (job.out_dir / f"{name}{stale}").unlink(missing_ok=True)


def failure(job: Job, step: str, error: BaseException, seconds: float) -> Outcome:
    """The outcome of a report that failed at `step` with `error`."""
    message = str(error) if isinstance(error, KpiError) else f"{type(error).__name__}: {error}"
    return Outcome(job.department_id, False, seconds, step, message)


def _keep_failed_notebook(job: Job) -> None:
    """Keep the executed notebook of a failed run, up to the failing cell, for audit."""
    executed = staging_folder(job) / f"{job.department_id}.ipynb"
    if executed.is_file():
        executed.replace(job.out_dir / f"{job.department_id}.failed.ipynb")


def staging_folder(job: Job) -> Path:
    """Where a report is written until it is complete."""
    return job.out_dir / f".staging-{job.department_id}"


def record_failure(out_dir: Path, period: str, outcome: Outcome, title: str = "") -> None:
    """Write the ``<id>.failed.json`` the index shows and the ``<id>.error.html`` it links to.

    Args:
        out_dir: The period's reports folder.
        period: The report's period label.
        outcome: The failure.
        title: The report's title, for the error page's heading.
    """
    name = outcome.department_id
    write_json(
        {"period": period, "department_id": name, "step": outcome.step, "error": outcome.error},
        out_dir / f"{name}.failed.json",
    )
    write_error_page(
        out_dir / f"{name}.error.html",
        title=title or f"{name}: report {period}",
        step=outcome.step,
        error=outcome.error,
        previous=out_dir / f"{name}.html",
    )


# Reports already run side by side, one per core; multi-threaded linear algebra in each kernel
# (the forecast's model fitting) would only fight over the same cores. Kernels inherit these.
SINGLE_THREADED = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def single_threaded(environ: MutableMapping[str, str]) -> None:
    """Set ``SINGLE_THREADED``'s variables in ``environ`` where it does not say otherwise.

    A variable that is unset or blank (``OPENBLAS_NUM_THREADS=`` in a crontab) says nothing, and
    the libraries would use every core in every kernel: a 12-report batch on 2 cores took 21 s
    instead of 14 s that way. Any other value is left as it is.
    """
    for name, value in SINGLE_THREADED.items():
        if not environ.get(name, "").strip():
            environ[name] = value


DEFAULT_TIMEOUT = 1800
DEFAULT_CELL_TIMEOUT = 600


def run_jobs(
    jobs: Iterable[Job],
    workers: int = 1,
    on_done: Callable[[Outcome], None] | None = None,
    *,
    on_start: Callable[[str], None] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    cell_timeout: int = DEFAULT_CELL_TIMEOUT,
    pdf: bool = False,
) -> list[Outcome]:
    """Run jobs, `workers` at a time, each in a worker process of its own.

    This process is prepared first (`kpilib.kernels.warm_up`); each worker is a fork of it and
    runs its report in a kernel forked from itself, so no report imports the libraries again or
    reads data this process keeps (`kpilib.sources.keep`).

    A worker (with its kernel) that runs past `timeout` seconds is killed, as is one whose
    report is done but whose process does not end; a worker that dies is reported as such.
    Either way the previous report stays in place and the report gets an error page; the other
    reports go on. Kernels start with single-threaded linear algebra (``SINGLE_THREADED``)
    unless the environment already says otherwise.

    Args:
        jobs: The reports to produce.
        workers: How many reports to run at once.
        on_done: Called with each outcome as it arrives (progress display).
        on_start: Called with each report's id as it starts.
        timeout: Seconds one report may take, from start to finish (the outer timeout).
        cell_timeout: Seconds one notebook cell may run.
        pdf: Also print each report as PDF.
    """
    single_threaded(os.environ)
    # The kernels are forks of this process, whose linear algebra libraries read those settings
    # when they were loaded; tell them now.
    for name, api in (("OPENBLAS_NUM_THREADS", "blas"), ("OMP_NUM_THREADS", "openmp")):
        if os.environ[name].isdigit():
            threadpool_limits(limits=int(os.environ[name]), user_api=api)
    pending = list(jobs)[::-1]
    running: dict[Connection, _Worker] = {}
    outcomes: list[Outcome] = []

    def finish(outcome: Outcome) -> None:
        outcomes.append(outcome)
        if on_done:
            on_done(outcome)

    kernels.warm_up()  # once in this process (done already if it prepared the data), not per kernel
    gc.collect()  # what is garbage now would stay in every frozen fork (`kernels.frozen_heap`)
    context = multiprocessing.get_context("fork")
    try:
        while pending or running:
            while pending and len(running) < max(1, workers):
                job = pending.pop()
                receiver, sender = context.Pipe(duplex=False)
                # Made here, so that it goes however the worker and its kernel end.
                sockets = Path(tempfile.mkdtemp(prefix="kpi-kernel-"))
                process = context.Process(
                    target=_work,
                    args=(job, sender, pdf, cell_timeout, sockets, os.getpid()),
                    daemon=False,
                )
                with kernels.frozen_heap():
                    process.start()
                sender.close()
                running[receiver] = _Worker(job, process, time.monotonic(), sockets)
                if on_start:
                    on_start(job.department_id)
            deadline = min(w.started + timeout for w in running.values())
            wait(list(running), timeout=max(0.0, deadline - time.monotonic()))
            for receiver, worker in list(running.items()):
                outcome = _drain(receiver, worker)
                if outcome is None and time.monotonic() - worker.started >= timeout:
                    receiver.close()
                    outcome = _time_out(worker, timeout)
                if outcome is not None:
                    del running[receiver]
                    shutil.rmtree(worker.sockets, ignore_errors=True)
                    finish(outcome)
    finally:  # the batch itself is stopping: no worker may go on writing unsupervised
        for receiver, worker in running.items():
            receiver.close()
            kill_tree(worker.process.pid)
            worker.process.join()
            shutil.rmtree(staging_folder(worker.job), ignore_errors=True)
            shutil.rmtree(worker.sockets, ignore_errors=True)
    return outcomes


@dataclass
class _Worker:
    job: Job
    process: multiprocessing.process.BaseProcess
    started: float
    sockets: Path
    step: str = "prepare"
    cell: str = "A cell"


def _work(
    job: Job, sender: Connection, pdf: bool, cell_timeout: int, sockets: Path, batch: int
) -> None:
    """A worker process: produce one report in a kernel forked from it (talking over Unix
    sockets in the folder `sockets`), telling each step, and send its outcome back; or end as
    soon as the `batch` process ends."""
    kernels.die_with_parent(batch)
    kernel = functools.partial(kernels.fork_kernel, job.notebook.parent, sockets)
    outcome = run_job(job, pdf=pdf, cell_timeout=cell_timeout, on_step=sender.send, kernel=kernel)
    sender.send(outcome)
    sender.close()


def _drain(receiver: Connection, worker: _Worker) -> Outcome | None:
    """Read everything a worker has said: its steps, then its outcome when it is done.

    Returns:
        The outcome (also a failure when the worker died without one), or None while it runs.
    """
    while receiver.poll(0):
        try:
            message = receiver.recv()
        except (EOFError, OSError):
            return _collect(receiver, worker, None)
        if isinstance(message, tuple):
            worker.cell = message[1]
        elif isinstance(message, str):
            worker.step = message
        else:
            return _collect(receiver, worker, message)
    return None


def _collect(receiver: Connection, worker: _Worker, outcome: Outcome | None) -> Outcome:
    """The outcome a worker sent, or a failure when it died before sending one."""
    receiver.close()
    worker.process.join(timeout=10)
    if worker.process.is_alive():
        kill_tree(worker.process.pid)
        worker.process.join()
    if isinstance(outcome, Outcome):
        return outcome
    seconds = time.monotonic() - worker.started
    code = worker.process.exitcode
    error = f"the worker process died (exit code {code}) before the report was complete"
    outcome = Outcome(worker.job.department_id, False, seconds, worker.step, error)
    _abandon(worker.job, outcome)
    return outcome


def _time_out(worker: _Worker, timeout: float) -> Outcome:
    """Kill an overdue worker and its kernel; record where the report was when it was stopped."""
    kill_tree(worker.process.pid)
    worker.process.join()
    job = worker.job
    error = f"the report ran longer than the {timeout:g} s report timeout and was stopped"
    if worker.step == "execute":
        error += f"; {worker.cell} was running"
    seconds = time.monotonic() - worker.started
    outcome = Outcome(job.department_id, False, seconds, worker.step, error)
    _abandon(job, outcome)
    return outcome


def _abandon(job: Job, outcome: Outcome) -> None:
    """Record a failure the worker could not record itself and clear its staging folder."""
    job.out_dir.mkdir(parents=True, exist_ok=True)
    _keep_failed_notebook(job)
    record_failure(job.out_dir, job.period, outcome, job.title)
    shutil.rmtree(staging_folder(job), ignore_errors=True)


def kill_tree(pid: int | None) -> None:
    """Kill a process and every process it started (the kernel runs in a session of its own)."""
    if pid is None:
        return
    try:
        root = psutil.Process(pid)
        root.suspend()  # it can start nothing more while its family is listed
        family = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return
    for process in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(family, timeout=10)


def finish_batch(
    out: Path,
    outcomes: Sequence[Outcome],
    period: str,
    kind: str = "monthly",
    manifest: Mapping[str, Any] | None = None,
) -> Path:
    """Record planning failures, write the batch's manifest and the index of every report.

    Args:
        out: The reports folder.
        outcomes: Every report's outcome.
        period: The batch's period folder name (``2026-09``, ``2026Q3``).
        kind: ``monthly`` or ``quarterly``.
        manifest: The batch's manifest (`batch_manifest`), written as the period's
            ``manifest.json`` and shown on the index.
    """
    folder = out / kind / period
    for outcome in outcomes:
        if not outcome.ok and outcome.step == "parameters" and is_file_safe(outcome.department_id):
            record_failure(folder, period, outcome)
    if manifest is not None:
        folder.mkdir(parents=True, exist_ok=True)
        write_json(manifest, folder / MANIFEST)
    return write_index(out)


# The packages whose versions decide what a report shows.
_VERSIONED = (
    "kpilib", "pandas", "numpy", "pandera", "pydantic", "statsmodels", "scipy", "matplotlib",
    "seaborn", "papermill", "nbconvert", "nbclient", "ipykernel",
)  # fmt: skip


def batch_manifest(
    *,
    kind: str,
    period: str,
    started: datetime,
    finished: datetime,
    data: Mapping[str, Any],
    jobs: Sequence[Job],
    outcomes: Sequence[Outcome],
    settings: Mapping[str, Any],
) -> dict[str, Any]:
    """What a batch ran, on what, with what, and how each report went.

    Args:
        kind: ``monthly`` or ``quarterly``.
        period: The batch's period label.
        started: When the batch started (UTC).
        finished: When it finished (UTC).
        data: The data source: ``source`` and ``fingerprint`` (or snapshot id).
        jobs: The planned reports (their schemes are fingerprinted).
        outcomes: Every report's outcome, in any order.
        settings: The batch's settings: departments, overrides, workers, timeouts, PDF.
    """
    schemes = sorted(
        {str(job.parameters["scheme"]) for job in jobs if job.parameters.get("scheme")}
    )
    return {
        "kind": kind,
        "period": period,
        "started": f"{started:%Y-%m-%d %H:%M:%S} UTC",
        "finished": f"{finished:%Y-%m-%d %H:%M:%S} UTC",
        "seconds": round((finished - started).total_seconds(), 1),
        "data": dict(data),
        "schemes": {scheme: _file_digest(Path(scheme)) for scheme in schemes},
        "settings": dict(settings),
        "versions": {"python": platform.python_version(), **_versions()},
        "reports": [
            {
                "department_id": o.department_id,
                "status": "ok" if o.ok else "failed",
                "seconds": round(o.seconds, 1),
                "step": "" if o.ok else o.step,
                "error": o.error,
            }
            for o in sorted(outcomes, key=lambda o: o.department_id)
        ],
    }


def _versions() -> dict[str, str]:
    found = {}
    for package in _VERSIONED:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def _file_digest(path: Path) -> str:
    """``sha256:<hex digest>`` of the file's bytes, or why there is none."""
    try:
        return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        return f"unreadable: {exc.strerror}"


LOCK_FILE = ".kpi-batch.lock"


@contextlib.contextmanager
def batch_lock(out: Path) -> Iterator[None]:
    """Hold the reports folder for one batch at a time.

    A second batch on the same folder stops at once with a message naming the batch that holds
    it. It is an OS file lock: released when the holder ends, however it ends, and its report
    workers with it (they share the lock; `run_jobs` stops them when the batch stops, and the
    operating system when the batch is killed outright: `kernels.die_with_parent`).

    Raises:
        ReportError: Another batch holds the folder.
    """
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_FILE
    with path.open("a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ReportError(
                f"Another batch is writing reports in {out} ({holder}); wait for it to finish "
                "and run again."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, started {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)
