"""The Dask executor: a batch's reports run on the workers of a Dask distributed cluster.

``kpi run ... --executor dask://HOST:PORT`` hands each planned report (`kpilib.runner.Job`) to
the scheduler at that address as one task. A worker executes the notebook in a new ``python3``
kernel of its own and renders the page in a temporary folder, and sends the files back; the
machine that runs ``kpi`` writes them into the same ``reports/`` layout a local batch writes
(staging folder, then moved into place; a failure keeps the previous report and gets its
``<id>.failed.json`` and ``<id>.error.html``), so the index, the manifest and every later batch
see no difference.

What the workers need:

- The kit installed (the same version as the machine that runs ``kpi``) with Jupyter's
  ``python3`` kernel, and the same paths as that machine for everything a report reads: the
  notebooks, the ``params/`` folder (its schemes), the mapping, the data source, and for a
  quarterly verification the reports folder (it reads the monthly reports). A shared filesystem
  mounted at the same place gives that. A report that cannot see one of them fails with a
  message naming the path and the worker.
- For a database source, a URL that carries no password: the workers read it with their own
  credentials (``~/.pgpass`` or ``PGPASSWORD``), so no password travels to the scheduler, the
  workers or the executed notebooks. A URL with a password is refused before anything is sent.
- One thread per worker process (``dask worker ADDRESS --nthreads 1 --nworkers N``): papermill
  changes the process's working folder while it executes a notebook, which reports side by side
  in one process would share. Dask's nanny starts workers with single-threaded linear algebra,
  as a local batch runs its kernels.

A report's timeout counts from when a worker starts it, not from when it was sent: a worker
stops the report's kernel when it is overdue, and the batch gives up on a report that has not come
back soon after (`TIMEOUT_GRACE`); a batch that stops cancels its reports, and the workers stop
their kernels. A report whose worker is lost runs again on another worker (Dask's
``allowed-failures``) and then fails alone.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen
from typing import TYPE_CHECKING, Any

from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from kpilib import snapshots
from kpilib.database import is_database_url, safe_url
from kpilib.errors import ParamsError, ReportError
from kpilib.kernels import INLINE_BACKEND
from kpilib.render import last_started_cell
from kpilib.runner import (
    DEFAULT_CELL_TIMEOUT,
    DEFAULT_TIMEOUT,
    SINGLE_THREADED,
    Job,
    Outcome,
    failure,
    kill_tree,
    produce,
    publish,
    record_failure,
    staging_folder,
)

if TYPE_CHECKING:
    from distributed import Client, Future

# `distributed` is imported where it is used: a batch run on this machine does without it.

CONNECT_TIMEOUT = 10.0
"""Seconds to wait for the scheduler before the batch gives up on it."""

TIMEOUT_GRACE = 30.0
"""Seconds past a report's timeout that the batch waits for the worker to stop it and report."""

STEPS_TOPIC = "kpi-report-steps"
"""The Dask event topic on which workers tell the batch each report's steps as they start."""

_POLL = 0.2  # seconds between looks at overdue reports while none has come back
_ADDRESS = re.compile(
    r"(?P<scheme>dask|tcp)://(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s/:\[\]@]+):(?P<port>\d{1,5})/?"
)


def scheduler_address(address: str) -> str:
    """The scheduler's ``tcp://HOST:PORT`` address from ``dask://HOST:PORT`` or ``tcp://...``.

    Raises:
        ParamsError: The address is not of that form.
    """
    matched = _ADDRESS.fullmatch(address.strip())
    if matched is None or not 0 < int(matched["port"]) < 65536:
        raise ParamsError(
            f"--executor {address!r} is not the address of a Dask scheduler; give "
            "dask://HOST:PORT (or tcp://HOST:PORT), e.g. dask://scheduler.example:8786."
        )
    return f"tcp://{matched['host']}:{int(matched['port'])}"


def has_password(data: str) -> bool:
    """Whether `data` is a database URL that carries a password (``scheme://user:pass@host``,
    or ``?password=`` in its query)."""
    if not is_database_url(data):
        return False
    try:
        parsed = make_url(data)
    except (sa_exc.ArgumentError, ValueError):
        return re.search(r"://[^/@]*:[^/]*@", data) is not None or "password=" in data
    return parsed.password is not None or "password" in parsed.query


def refuse_passwords(jobs: Iterable[Job]) -> None:
    """Refuse to send a job whose data source is a database URL with a password in it.

    Raises:
        ParamsError: A job's ``data`` parameter holds a password.
    """
    for job in jobs:
        data = str(job.parameters.get("data", ""))
        if has_password(data):
            raise ParamsError(
                f"The data source {safe_url(data)} holds a password, which must not be sent to "
                "the Dask cluster; give the URL without it and let the workers read it from "
                "~/.pgpass or the PGPASSWORD environment variable."
            )


def run_on_dask(
    address: str,
    jobs: Iterable[Job],
    on_done: Callable[[Outcome], None] | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    cell_timeout: int = DEFAULT_CELL_TIMEOUT,
    pdf: bool = False,
) -> list[Outcome]:
    """Run jobs on the Dask cluster at `address`, one task each, and put their reports in place.

    The counterpart of `kpilib.runner.run_jobs` for a cluster: the same reports, files and
    failure records. Each report's outcome is taken as it comes back, in any order. If the batch
    itself stops (an exception, Ctrl-C, SIGTERM), the reports not yet back are cancelled.

    Args:
        address: The scheduler, ``dask://HOST:PORT`` or ``tcp://HOST:PORT``.
        jobs: The reports to produce.
        on_done: Called with each outcome as it arrives (progress display).
        timeout: Seconds one report may take once a worker has started it.
        cell_timeout: Seconds one notebook cell may run.
        pdf: Also print each report as PDF (the workers need Chromium).

    Raises:
        ParamsError: The address is malformed, no scheduler answers there within
            `CONNECT_TIMEOUT` seconds, or a job's data source holds a password.
    """
    scheduler = scheduler_address(address)
    jobs = list(jobs)
    refuse_passwords(jobs)
    client = _connect(address, scheduler)
    watch = _Watch()
    outcomes: list[Outcome] = []
    pending: dict[Future, _Sent] = {}
    try:
        client.subscribe_topic(STEPS_TOPIC, watch)
        for job in jobs:
            key = f"kpi-report-{job.department_id}-{uuid.uuid4().hex}"
            future = client.submit(
                produce_remotely, job, pdf, cell_timeout, timeout, key, key=key, pure=False
            )
            pending[future] = _Sent(job, key, time.monotonic())
        outcomes = _collect(client, pending, watch, timeout, on_done)
    finally:  # the batch itself is stopping: nothing of it may go on running on the cluster
        if pending:
            with contextlib.suppress(Exception):
                client.cancel(list(pending), force=True)
        with contextlib.suppress(Exception):
            client.unsubscribe_topic(STEPS_TOPIC)
        client.close()
    return outcomes


def _connect(address: str, scheduler: str) -> Client:
    """A client of the scheduler at `scheduler`, or a ParamsError naming `address`."""
    from distributed import Client

    try:
        return Client(scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError) as error:
        raise ParamsError(
            f"No Dask scheduler answered at {address} within {CONNECT_TIMEOUT:g} s ({error}); "
            "start one (dask scheduler) or check the address."
        ) from None


@dataclass
class _Sent:
    """A job handed to the cluster, and when."""

    job: Job
    key: str
    sent: float


@dataclass
class _Watch:
    """What the workers said about each report: when it started and the step it is at.

    Called by the Dask client with each event of `STEPS_TOPIC`, on the client's own thread. A
    report that starts again (Dask runs it anew when its worker is lost) starts its clock again.
    """

    started: dict[str, float] = field(default_factory=dict)
    steps: dict[str, str] = field(default_factory=dict)

    def __call__(self, event: tuple[float, Any]) -> None:
        _, message = event
        if not isinstance(message, Mapping) or not isinstance(message.get("key"), str):
            return
        key, step = message["key"], str(message.get("step", ""))
        if step == "prepare" or key not in self.started:
            self.started[key] = time.monotonic()
        self.steps[key] = step


def _collect(
    client: Client,
    pending: dict[Future, _Sent],
    watch: _Watch,
    timeout: float,
    on_done: Callable[[Outcome], None] | None,
) -> list[Outcome]:
    """Take each report's result as it comes back, write it in place, and give up on overdue
    ones; `pending` keeps the futures not yet back."""
    from distributed import as_completed

    outcomes: list[Outcome] = []

    def finish(outcome: Outcome) -> None:
        outcomes.append(outcome)
        if on_done:
            on_done(outcome)

    arrivals = as_completed(list(pending), loop=client.loop)
    while pending:
        for future in arrivals.next_batch(block=False):
            sent = pending.pop(future, None)
            if sent is not None:
                finish(_arrived(future, sent, watch))
        now = time.monotonic()
        for future, sent in list(pending.items()):
            started = watch.started.get(sent.key)
            if started is not None and now - started >= timeout + TIMEOUT_GRACE:
                del pending[future]
                future.cancel(force=True)
                finish(_overdue(sent, watch, timeout, now - started))
        if pending and not arrivals.has_ready():
            time.sleep(_POLL)
    return outcomes


def _arrived(future: Future, sent: _Sent, watch: _Watch) -> Outcome:
    """The outcome of a task that came back: its report written in place, or its failure."""
    job = sent.job
    if future.status == "finished":
        try:
            result = future.result()
        except Exception as error:  # its result could not be fetched or read here
            return _lost(sent, watch, f"its result could not be read: {error}")
        return put_in_place(job, result)
    if future.status == "error":
        error = future.exception()
        return _lost(sent, watch, f"the Dask task failed: {type(error).__name__}: {error}")
    return _lost(sent, watch, f"the Dask task was {future.status} before the report was complete")


def _lost(sent: _Sent, watch: _Watch, error: str) -> Outcome:
    """Record a report the cluster did not bring back."""
    started = watch.started.get(sent.key, sent.sent)
    step = watch.steps.get(sent.key, "prepare")
    outcome = Outcome(sent.job.department_id, False, time.monotonic() - started, step, error)
    _record(sent.job, outcome)
    return outcome


def _overdue(sent: _Sent, watch: _Watch, timeout: float, seconds: float) -> Outcome:
    """Record a report that ran past its timeout and did not come back after all."""
    step = watch.steps.get(sent.key, "prepare")
    error = f"the report ran longer than the {timeout:g} s report timeout and was stopped"
    outcome = Outcome(sent.job.department_id, False, seconds, step, error)
    _record(sent.job, outcome)
    return outcome


def _record(job: Job, outcome: Outcome) -> None:
    job.out_dir.mkdir(parents=True, exist_ok=True)
    record_failure(job.out_dir, job.period, outcome, job.title)


@dataclass(frozen=True)
class Produced:
    """What a worker sends back for one report: how it went, and its files.

    `files` maps each suffix (``.html``, ``.ipynb``, ``.kpis.json``, ``.pdf``) to the file's
    bytes; after a failure it holds the executed notebook (``.ipynb``), if there is one.
    """

    ok: bool
    seconds: float
    step: str = ""
    error: str = ""
    files: dict[str, bytes] = field(default_factory=dict)


def put_in_place(job: Job, produced: Produced) -> Outcome:
    """Write a report's files from a worker into the job's folder as a local batch does.

    A complete report goes through a staging folder and is moved into place (`publish`); a
    failure keeps the previous report, its executed notebook becomes ``<id>.failed.ipynb`` and
    it gets its failure records.
    """
    name = job.department_id
    staging = staging_folder(job)
    try:
        job.out_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        for suffix, content in produced.files.items():
            (staging / f"{name}{suffix}").write_bytes(content)
        if produced.ok:
            publish(job, staging, list(produced.files))
            return Outcome(name, True, produced.seconds, html=job.out_dir / f"{name}.html")
        outcome = Outcome(name, False, produced.seconds, produced.step, produced.error)
        if ".ipynb" in produced.files:
            (staging / f"{name}.ipynb").replace(job.out_dir / f"{name}.failed.ipynb")
    except Exception as error:  # a report that cannot be written here fails alone
        outcome = failure(job, "publish", error, produced.seconds)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _record(job, outcome)
    return outcome


def produce_remotely(
    job: Job, pdf: bool, cell_timeout: int, timeout: float, report_key: str = ""
) -> Produced:
    """Produce one report on a Dask worker, in a temporary folder, and return its files.

    Runs as the task `run_on_dask` submits. The notebook runs in a new ``python3`` kernel in the
    notebook's folder (never a fork: a worker runs threads and an event loop), which is stopped
    when the report runs past `timeout` seconds or the batch cancels the task `report_key` (a
    thread cannot be stopped; its kernel can). Every failure is a result, not an error of the
    task. Each step is told to the batch as an event of `STEPS_TOPIC` carrying `report_key`.
    """
    started = time.monotonic()
    steps = _RemoteSteps(report_key)
    kernel = _Kernel(job.notebook.parent)
    done = threading.Event()
    cancelled = _cancellation(report_key)
    guard = threading.Thread(
        target=_guard, args=(kernel, started + timeout, cancelled, done), daemon=True
    )
    with tempfile.TemporaryDirectory(prefix="kpi-report-", dir=_local_folder()) as temporary:
        folder = Path(temporary)
        executed = folder / f"{job.department_id}.ipynb"
        try:
            steps("prepare")
            guard.start()
            _require_shared(job)
            suffixes = produce(job, folder, pdf, cell_timeout, steps, kernel)
            files = {
                suffix: (folder / f"{job.department_id}{suffix}").read_bytes()
                for suffix in suffixes
            }
            return Produced(True, time.monotonic() - started, files=files)
        except Exception as error:  # one report's failure is the batch's news, not the task's
            reason: BaseException = error
            if kernel.stopped == "overdue":
                reason = ReportError(
                    f"the report ran longer than the {timeout:g} s report timeout and was "
                    f"stopped; {last_started_cell(executed)} was running"
                )
            elif kernel.stopped == "cancelled":
                reason = ReportError("the batch was stopped before the report was complete")
            outcome = failure(job, steps.step, reason, time.monotonic() - started)
            files = {".ipynb": executed.read_bytes()} if executed.is_file() else {}
            return Produced(False, outcome.seconds, outcome.step, outcome.error, files)
        finally:
            done.set()
            kernel.stop_now()


def _guard(
    kernel: _Kernel, deadline: float, cancelled: Callable[[], bool], done: threading.Event
) -> None:
    """Watch a report on a worker until it is `done`: stop its kernel when the `deadline`
    passes or its task is `cancelled` (the batch stopped, or gave up on it)."""
    while not done.wait(min(1.0, max(0.0, deadline - time.monotonic()))):
        if time.monotonic() >= deadline:
            kernel.stop("overdue")
            return
        if cancelled():
            kernel.stop("cancelled")
            return


def _cancellation(key: str) -> Callable[[], bool]:
    """Tells whether this worker was told to cancel the task `key` it is running; to be asked
    from any thread (the worker is found here, in the task's own thread)."""
    try:
        from distributed import get_worker

        tasks = get_worker().state.tasks
    except Exception:  # not on a worker, or one that keeps no such state
        return lambda: False

    def cancelled() -> bool:
        task = tasks.get(key)
        return task is not None and getattr(task, "state", "") == "cancelled"

    return cancelled


class _RemoteSteps:
    """The step a report is at on a worker, told to the batch as each one starts."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.step = "prepare"

    def __call__(self, step: str) -> None:
        self.step = step
        if not self.key:
            return
        with contextlib.suppress(Exception):  # no worker (a direct call) or it is closing
            from distributed import get_worker

            get_worker().log_event(STEPS_TOPIC, {"key": self.key, "step": step})


def _local_folder() -> str | None:
    """The worker's own scratch folder, or the system's when not on a worker."""
    with contextlib.suppress(Exception):
        from distributed import get_worker

        return str(get_worker().local_directory)
    return None


def _worker_name() -> str:
    with contextlib.suppress(Exception):
        from distributed import get_worker

        return str(get_worker().address)
    return os.uname().nodename


def _require_shared(job: Job) -> None:
    """Make sure this worker sees what the report reads, under the batch's paths.

    Raises:
        ReportError: The notebook, the scheme, the mapping, the data or the reports folder is
            not there.
    """
    parameters = job.parameters
    needed: list[tuple[str, Path, bool]] = [("notebook", job.notebook, False)]
    for name in ("scheme", "mapping"):
        if parameters.get(name):
            needed.append((name, Path(str(parameters[name])), False))
    data = str(parameters.get("data") or "")
    if data and not is_database_url(data):
        store = snapshots.parse_ref(data)[0] if snapshots.is_store(data) else Path(data)
        needed.append(("data source", store, True))
    if parameters.get("reports"):
        needed.append(("reports folder", Path(str(parameters["reports"])), True))
    for what, path, folder_ok in needed:
        if not (path.exists() if folder_ok else path.is_file()):
            raise ReportError(
                f"The {what} {path} is not there on the Dask worker {_worker_name()}; the "
                "workers must see the kit's notebooks, parameters and data under the same paths "
                "as the machine that runs kpi (a shared filesystem)."
            )


class _Kernel:
    """Starts a report's kernel, a new ``python3`` kernel working in `cwd`, and stops it: when
    the report is overdue or cancelled (`stop`, from another thread), or done (`stop_now`)."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.stopped = ""  # why the kernel was stopped early: "overdue" or "cancelled"
        self._process: Popen[bytes] | None = None
        self._lock = threading.Lock()

    def __call__(self) -> AsyncKernelManager:
        """Start the kernel (charts inline, single-threaded linear algebra unless set)."""
        manager = AsyncKernelManager(kernel_name="python3")
        env = {**SINGLE_THREADED, **os.environ, "MPLBACKEND": INLINE_BACKEND}
        run_sync(manager.start_kernel)(
            cwd=str(self.cwd), env=env, extra_arguments=["--IPKernelApp.log_level=ERROR"]
        )
        with self._lock:
            self._process = getattr(manager.provisioner, "process", None)
            if self.stopped:
                self._kill()
        return manager

    def stop(self, why: str) -> None:
        """Kill the kernel now, for the reason `why` (the running cell fails as a dead kernel)."""
        with self._lock:
            self.stopped = why
            self._kill()

    def stop_now(self) -> None:
        """Make sure nothing of the kernel outlives the report."""
        with self._lock:
            self._kill()
            self._process = None

    def _kill(self) -> None:
        # Only a process not yet reaped: a reaped one's pid may be another process's by now.
        if self._process is not None and self._process.poll() is None:
            kill_tree(self._process.pid)
