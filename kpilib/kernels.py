"""Warm kernels: a report's kernel forked from a process that has done the slow work already.

Starting a Jupyter kernel the usual way starts a new Python, which imports pandas, matplotlib,
statsmodels and the kit again and reads the data source again: seconds of work that every report
of a batch repeats. A batch instead does that work once (`warm_up`, and `kpilib.sources.keep` for
the data) and each report's kernel is a fork of the report's worker process (`fork_kernel`): a
fresh ipykernel in a process of its own, whose imports and data are already in memory, shared
copy-on-write with the batch. Reports stay isolated: every report gets a new kernel, whatever it
changes lives and dies in that process, and it never reaches the batch or another report.

`ForkedKernelManager` lets papermill (through nbclient) drive such a kernel as it drives any
other: it starts nothing, and it answers whether the kernel lives, interrupts it and stops it.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import importlib
import io
import math
import multiprocessing
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from queue import Empty
from typing import Any, TypeVar

import pandas as pd
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.connect import write_connection_file
from jupyter_client.manager import AsyncKernelManager
from traitlets import Integer, List, Type

from kpilib.history import window_shown
from kpilib.metrics import department_deals, keep_lookups
from kpilib.params import Scheme
from kpilib.schemas import CRM
from kpilib.scoring import Scorecard, keep_scorecard, score_period
from kpilib.services import keep_company_values

T = TypeVar("T")
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
KERNEL_START_IMPORTS = (
    "cProfile",
    "faulthandler",
    "ipykernel.debugger",
    "IPython.core.completerlib",
    "IPython.core.debugger",
    "IPython.core.logger",
    "IPython.core.magics.ast_mod",
    "IPython.core.magics.execution",
    "IPython.core.oinspect",
    "IPython.extensions.storemagic",
    "IPython.utils.wildcard",
    "tornado.platform.asyncio",
    "tornado.queues",
)
"""Modules an ipykernel kernel imports only as it starts (`warm_up` imports them before)."""
KERNEL_GC_THRESHOLD = 10_000
"""Allocations between two collections of a report kernel's youngest generation."""


class PromptClient(AsyncKernelClient):
    """A client that starts work as soon as its kernel answers.

    jupyter_client's `wait_for_ready`, once the kernel has answered on the shell and IOPub
    channels, goes on reading IOPub until nothing has come for 0.2 s, to drop the kernel's
    start-up messages: 0.2 s of idle time per report. nbclient reads only the messages that
    answer its own requests (by their parent's id), so nothing needs dropping.
    """

    async def wait_for_ready(self, timeout: float | None = None) -> None:  # type: ignore[override]
        """Return once the kernel answers a kernel_info request on shell and speaks on IOPub.

        Raises:
            RuntimeError: The kernel died, or did not answer within `timeout` seconds.
        """
        deadline = time.monotonic() + (math.inf if timeout is None else timeout)
        while True:
            self.kernel_info()
            with contextlib.suppress(Empty):
                reply = await self.get_shell_msg(timeout=1)
                if reply["msg_type"] == "kernel_info_reply":
                    await self.get_iopub_msg(timeout=0.2)  # the status of that request
                    self._handle_kernel_info_reply(reply)
                    return
            if not await self.is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout} seconds")


class ForkedKernelManager(AsyncKernelManager):
    """The manager of a kernel that `fork_kernel` started: nbclient talks to it through the
    connection file; this manager only watches, interrupts and stops the process."""

    client_factory = Type(PromptClient, klass=AsyncKernelClient)
    pid = Integer(0, help="The kernel's process id.")
    _exit_status: int | None = None
    _clients = List()

    def client(self, **kwargs: Any) -> Any:
        """A client of the kernel; its channels close when the kernel stops."""
        made = super().client(**kwargs)
        self._clients.append(made)
        return made

    @property
    def has_kernel(self) -> bool:
        """Always true: the kernel exists before this manager does."""
        return True

    async def _async_is_alive(self) -> bool:
        """Whether the kernel process still runs (a dead one is reaped here)."""
        return self._poll() is None

    async def _async_interrupt_kernel(self) -> None:
        """Interrupt the running cell, as Ctrl-C would."""
        if self._poll() is None:
            os.kill(self.pid, signal.SIGINT)

    async def _async_shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
        """Stop the kernel: nothing of a report must outlive it."""
        self.stop()

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        """Remove the connection file and its folder."""
        shutil.rmtree(Path(self.connection_file).parent, ignore_errors=True)

    # What nbclient and the kernel's clients call (jupyter_client names them both ways).
    is_alive = _async_is_alive  # type: ignore[assignment]
    interrupt_kernel = _async_interrupt_kernel  # type: ignore[assignment]
    shutdown_kernel = _async_shutdown_kernel  # type: ignore[assignment]
    cleanup_resources = _async_cleanup_resources  # type: ignore[assignment]

    def stop(self) -> None:
        """Close the clients' channels, kill the kernel process and reap it; remove its
        connection file and folder."""
        for made in self._clients:
            made.stop_channels()
        if self._poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            _, status = os.waitpid(self.pid, 0)
            self._exit_status = status
        shutil.rmtree(Path(self.connection_file).parent, ignore_errors=True)

    def _poll(self) -> int | None:
        """The kernel's exit status once it has ended, None while it runs."""
        if self._exit_status is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere
                self._exit_status = -1
            else:
                if pid:
                    self._exit_status = status
        return self._exit_status


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Fork inside this block: the child's garbage collector leaves alone every object that
    lived at the fork. The child must not leave the block (it ends inside it, as a kernel or a
    multiprocessing child does).

    A report's kernel inherits hundreds of thousands of objects (the libraries and the kept
    data) that it never frees. Without this, each full collection in the kernel walks them all,
    and writing their collector headers copies their memory pages into the child: measured on
    the demo, about a third of a monthly report's CPU. This process, once the block ends,
    collects as before (`gc.freeze`, `gc.unfreeze`), unless it was frozen already: a report's
    worker, itself forked in such a block, stays frozen while it forks the kernel, and so does
    a batch that runs inside such a block from its start (its collections while it reads and
    prepares the data then skip the libraries it imported).
    """
    frozen = gc.get_freeze_count() > 0
    gc.freeze()
    try:
        yield
    finally:
        if not frozen:
            gc.unfreeze()


PR_SET_PDEATHSIG = 1
"""Linux's prctl(2) option: the signal a process gets when its parent ends."""


def die_with_parent(parent: int) -> None:
    """Have the operating system kill this process as soon as its parent ``parent`` ends.

    However the parent ends: a batch killed outright (``kill -9``, the out-of-memory killer)
    cannot stop its report workers, nor a worker its kernel, and the orphans would go on
    unsupervised, a worker holding the reports folder's lock and writing into it, a kernel
    waiting forever. Call it first thing in the forked child, forked by the parent's main
    thread (the signal follows the thread that forked). Only Linux can do this; elsewhere, or
    where a sandbox refuses the request, the process runs on without it, as it did before.

    Args:
        parent: The parent's process id, read before the fork (read after it, it could already
            be the id of whatever adopted this process).
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        refused = ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (AttributeError, OSError):  # no prctl in this C library
        return
    if not refused and os.getppid() != parent:  # it ended before the request was in place
        os.kill(os.getpid(), signal.SIGKILL)


def fork_kernel(cwd: Path, folder: Path | None = None) -> ForkedKernelManager:
    """Start a kernel in a fork of this process, working in `cwd`.

    The kernel runs in a session of its own (so a report timeout can kill it with its worker),
    talks over Unix sockets in `folder` (by default a new temporary folder; removed when the
    kernel stops), reads nothing from the terminal, and draws charts inline as any notebook
    kernel does. Fork only from a process that runs no event loop and no threads that hold locks:
    a report's worker process, before it starts executing.

    Returns:
        Its manager, to hand to papermill (``km=``) and to stop when the report is done.
    """
    folder = folder or Path(tempfile.mkdtemp(prefix="kpi-kernel-"))
    # Unix sockets in a folder of its own: kernels started side by side cannot take each other's
    # TCP ports (a port found free is bound only later, by the kernel), and nothing listens on
    # the network.
    connection_file, _ = write_connection_file(
        str(folder / "kernel.json"),
        transport="ipc",
        ip=str(folder / "kernel"),
        key=secrets.token_hex(16).encode(),
    )
    sys.stdout.flush()
    sys.stderr.flush()
    worker = os.getpid()
    with frozen_heap():
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child becomes the kernel and never returns
            _become_kernel(connection_file, cwd, worker)
    manager = ForkedKernelManager(connection_file=connection_file)
    manager.load_connection_file()
    manager.pid = pid
    return manager


def _become_kernel(  # pragma: no cover - in the fork
    connection_file: str, cwd: Path, worker: int
) -> None:
    """Run an ipykernel in this (forked) process until it is stopped, then end the process;
    or as soon as its `worker` ends."""
    code = 1
    try:
        die_with_parent(worker)
        os.setsid()
        os.chdir(cwd)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # its banner; cells' output goes to iopub
        os.environ["MPLBACKEND"] = INLINE_BACKEND
        # A report makes many short-lived objects (chart artists, small frames) and lives a
        # few seconds: collect the youngest generation after 10,000 allocations rather than
        # 700. Measured on the demo's monthly report: 107 collections taking 0.08 s of CPU
        # became 3 taking 0.03 s.
        gc.set_threshold(KERNEL_GC_THRESHOLD, *gc.get_threshold()[1:])
        from ipykernel.kernelapp import IPKernelApp

        app = IPKernelApp.instance()
        # No input history: a report's kernel is never resumed, and kernels running side by
        # side would contend for the one history database.
        app.initialize(
            [
                "-f",
                connection_file,
                "--IPKernelApp.log_level=ERROR",
                "--HistoryManager.enabled=False",
            ]
        )
        # As `%matplotlib inline` would: pyplot may have been imported, even used, before the
        # fork, and its figures must still reach the notebook.
        app.shell.enable_matplotlib("inline")
        app.start()
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def warm_data(crm: CRM, scheme: Scheme, month: pd.Period, trend_months: int | None = None) -> None:
    """Derive once, in this process, what every report derives from the data the same way.

    Scoring `month` for the whole company builds the frames the source keeps for later use
    (deals with their departments, each table split by month, each client's first won deal), so
    the report kernels forked from this process start with them instead of each building them
    from every row of the data. With `trend_months`, the monthly reports' months (`month` and
    the trend window before it) are scored for the whole company and kept, so that each
    report's `score_window` takes its department's rows instead of scoring them again, and the
    service departments' company-wide values of those months are kept too
    (`services.keep_company_values`); the older two thirds of the window are scored in a forked
    process meanwhile (`in_fork`), while this process also warms up (`warm_up`). The deals are
    split by department (`department_deals`) and the lookups of the deal dimensions made
    (`metrics.keep_lookups`).
    """
    if trend_months is None:
        score_period(crm, scheme, month)
        _derive_for_reports(crm)
        return
    window = window_shown(month, trend_months)
    # The older two thirds of the window are scored in a fork, on another core, while this
    # process scores the rest, derives everything else and warms up.
    older = window[: len(window) * 2 // 3]

    def score_older() -> list[Scorecard]:
        return [score_period(crm, scheme, period, None, shown) for period, shown in older]

    with in_fork(score_older) as cards:
        for period, shown in window[len(older) :]:
            keep_scorecard(crm, scheme, period, shown)
        keep_company_values(crm, scheme, month, [m for m, _ in window])
        _derive_for_reports(crm)
        warm_up()
        for (period, shown), card in zip(older, cards(), strict=True):
            keep_scorecard(crm, scheme, period, shown, card)


def _derive_for_reports(crm: CRM) -> None:
    department_deals(crm, "")  # splits the deals by department, for every report's analyses
    keep_lookups(crm)


@contextlib.contextmanager
def in_fork(work: Callable[[], T]) -> Iterator[Callable[[], T]]:
    """Start `work` in a forked process; inside the block, what collects its result.

    Collecting waits for the process and returns what `work` returned there (it must pickle),
    or raises what it raised; should the process end without an answer, `work` is done here.
    The process is stopped when the block ends, collected or not. Fork only from a process that
    runs no threads holding locks (as `fork_kernel`).
    """
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_answer, args=(work, sender), daemon=True)
    process.start()
    sender.close()

    def collect() -> T:
        try:
            kind, value = receiver.recv()
        except EOFError:  # it ended without answering
            kind, value = "none", None
        if kind == "raised":
            raise value
        return value if kind == "returned" else work()

    try:
        yield collect
    finally:
        receiver.close()
        if process.is_alive():
            process.kill()
        process.join()


def _answer(work: Callable[[], Any], sender: Connection) -> None:  # pragma: no cover - in a fork
    try:
        answer = ("returned", work())
    except Exception as error:
        answer = ("raised", error)
    sender.send(answer)
    sender.close()


@functools.cache
def warm_up() -> None:
    """Do in this process, once, the slow first-time work every report's kernel would repeat:
    import what the notebooks and the kernel import, and draw and export a first chart (fonts,
    text layout, PNG encoding). Charts are drawn off-screen without choosing pyplot's backend,
    which stays for each kernel to set. Later calls do nothing.
    """
    import ipykernel.ipkernel  # noqa: F401
    import ipykernel.kernelapp  # noqa: F401
    import matplotlib_inline.backend_inline  # noqa: F401

    # What a kernel imports as it starts, not when its modules are imported: its debugger (with
    # debugpy), IPython's magics, its debugger and its extensions; 0.13 s of each kernel's start.
    # debugpy would warn on this process' stderr that it may miss breakpoints in Python's frozen
    # modules: no report's kernel is ever debugged.
    environment = dict(os.environ)
    os.environ["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    try:
        for name in KERNEL_START_IMPORTS:
            importlib.import_module(name)
    finally:  # the environment as it was (debugpy sets variables of its own too)
        for name in set(os.environ) - set(environment):
            del os.environ[name]
        for name, value in environment.items():
            if os.environ.get(name) != value:
                os.environ[name] = value
    from matplotlib.figure import Figure

    import kpilib  # noqa: F401
    import kpilib.render

    figure = Figure(figsize=(4, 3))
    axes = figure.subplots()
    axes.bar(["a", "b"], [1.0, 2.0])
    axes.set_title("warm-up")
    figure.savefig(io.BytesIO(), format="png", bbox_inches="tight")
    kpilib.render.warm_up()
