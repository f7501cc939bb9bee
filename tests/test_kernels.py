"""Warm report kernels: forked from a process with the data kept, isolated from each other."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
from dataclasses import replace
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from kpilib import kernels, sources
from kpilib.errors import ReportError
from kpilib.history import window_shown
from kpilib.kernels import KERNEL_GC_THRESHOLD, PromptClient, fork_kernel, warm_data
from kpilib.metrics import deals_with_department
from kpilib.params import load_scheme
from kpilib.progress import BatchProgress
from kpilib.render import execute_notebook
from kpilib.runner import Outcome
from kpilib.schemas import CRM
from kpilib.scoring import _card_key
from kpilib.testing import small_notebook


def _notebook(path: Path, *sources_: str) -> Path:
    return small_notebook(path, 'data = ""\nparent = ""', *sources_)


def _run(tmp_path: Path, name: str, *cells: str, **parameters: object) -> nbformat.NotebookNode:
    notebook = _notebook(tmp_path / f"{name}.ipynb", *cells)
    executed = tmp_path / f"{name}.out.ipynb"
    execute_notebook(
        notebook, executed, parameters, cwd=tmp_path, kernel=lambda: fork_kernel(tmp_path)
    )
    return nbformat.read(executed, as_version=4)


def _text(nb: nbformat.NotebookNode) -> str:
    return "".join(
        output.get("text", "") + output.get("data", {}).get("text/plain", "")
        for cell in nb.cells
        for output in cell.get("outputs", [])
    )


def test_a_forked_kernel_runs_the_notebook_in_its_folder_with_inline_charts(tmp_path):
    import matplotlib.pyplot as plt

    plt.close(plt.figure())  # pyplot used before the fork: its charts must still show
    nb = _run(
        tmp_path,
        "charts",
        "import os\nprint(os.getcwd())",
        "import matplotlib.pyplot as plt\nplt.plot([1, 2], [3, 4]);",
        "print(os.getpid() != int(parent))",
        parent=str(os.getpid()),
    )
    assert str(tmp_path) in _text(nb)
    assert "True" in _text(nb)  # a process of its own
    outputs = [o for cell in nb.cells for o in cell.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert [] == [o for o in outputs if o.get("output_type") == "error"]


def test_reports_see_the_kept_data_and_none_of_each_others_state(tmp_path, sales_crm):
    kept = replace(sales_crm, source="kept by the batch")
    sources.keep("some/source", None, kept)
    try:
        first = _run(
            tmp_path,
            "first",
            "import kpilib\ncrm = kpilib.open_source(data)\nprint(crm.source)",
            "crm.deals.loc[:, 'amount'] = -1.0\nkpilib.LEFT_BEHIND = True",
            data="some/source",
        )
        second = _run(
            tmp_path,
            "second",
            "import kpilib\ncrm = kpilib.open_source(data)\nprint(crm.source)",
            "print(hasattr(kpilib, 'LEFT_BEHIND'), (crm.deals['amount'] == -1.0).any())",
            data="some/source",
        )
    finally:
        sources.forget()
    assert "kept by the batch" in _text(first)
    assert "kept by the batch" in _text(second)
    assert "False False" in _text(second)  # neither the module nor the data changed
    assert not (sales_crm.deals["amount"] == -1.0).any()  # nor the batch's own copy


def test_open_source_uses_kept_data_only_for_the_same_source_and_mapping(tmp_path, sales_crm):
    folder = tmp_path / "elsewhere"
    sources.keep(str(folder), None, sales_crm)
    try:
        assert sources.open_source(str(folder)) is sales_crm
        with pytest.raises(Exception, match="mapping.yaml"):  # another mapping: read for real
            sources.open_source(str(folder), tmp_path / "mapping.yaml")
        with pytest.raises(Exception, match="elsewhere"):  # a filtered read: read for real
            sources.open_source(str(folder), department="north")
    finally:
        sources.forget()
    with pytest.raises(Exception, match="elsewhere"):  # nothing kept: read for real
        sources.open_source(str(folder))


def test_read_once_keeps_the_data_for_the_batch_only(tmp_path, sales_crm):
    with sources.read_once(str(tmp_path), sales_crm, tmp_path / "reports", None) as (data, _):
        assert sources.open_source(data) is sales_crm
    with pytest.raises(Exception, match=str(tmp_path)):  # let go: read for real
        sources.open_source(data)


def test_a_kernel_leaves_no_process_and_no_connection_file(tmp_path):
    manager = fork_kernel(tmp_path)
    folder = Path(manager.connection_file).parent
    assert folder.is_dir() and manager.pid in _children()
    manager.stop()
    assert not folder.exists() and manager.pid not in _children()


def test_a_forked_kernels_client_starts_at_once_and_reads_only_its_cells_outputs(tmp_path):
    """The client does not wait for IOPub to fall quiet after start-up; the kernel's start-up
    messages still never reach a cell's outputs."""
    manager = fork_kernel(tmp_path)
    try:
        assert isinstance(manager.client(), PromptClient)
    finally:
        manager.stop()
    nb = _run(tmp_path, "first", "print('first cell')", "1 + 1")
    outputs = [cell.get("outputs", []) for cell in nb.cells if cell.cell_type == "code"]
    assert [{"output_type": "stream", "name": "stdout", "text": "first cell\n"}] == [
        {key: output[key] for key in ("output_type", "name", "text")} for output in outputs[-2]
    ]
    assert ["2"] == [output["data"]["text/plain"] for output in outputs[-1]]


def test_waiting_for_a_dead_kernel_fails_at_once(tmp_path):
    manager = fork_kernel(tmp_path)
    try:
        client = manager.client()
        os.kill(manager.pid, signal.SIGKILL)
        with pytest.raises(RuntimeError, match="Kernel died"):
            asyncio.run(client.wait_for_ready(timeout=30))
    finally:
        manager.stop()


def test_a_kernel_that_dies_is_told_as_such_and_reaped(tmp_path):
    before = set(_children())
    with pytest.raises(ReportError, match=r"Cell 3 \(`import os, signal ...`\): the kernel died"):
        _run(tmp_path, "dead", "1", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    assert set(_children()) <= before


def test_each_cell_is_told_as_it_starts(tmp_path):
    notebook = _notebook(tmp_path / "cells.ipynb", "x = 1", "y = 2\nz = 3")
    told: list[str] = []
    execute_notebook(
        notebook,
        tmp_path / "out.ipynb",
        {},
        cwd=tmp_path,
        kernel=lambda: fork_kernel(tmp_path),
        on_cell=told.append,
    )
    assert ['Cell 1 (`data = "" ...`)', "Cell 2 (`x = 1`)", "Cell 3 (`y = 2 ...`)"] == told
    executed = json.loads((tmp_path / "out.ipynb").read_text())
    assert all(c["metadata"]["papermill"]["status"] == "completed" for c in executed["cells"])


def _children() -> list[int]:
    import psutil

    return [p.pid for p in psutil.Process().children(recursive=True)]


def test_progress_without_a_terminal_is_one_log_line_per_report(caplog):
    stream = io.StringIO()
    with caplog.at_level(logging.INFO, logger="kpi"), BatchProgress(3, stream) as progress:
        for name in ("north", "south", "east"):
            progress.started(name)
        progress.done(Outcome("south", True, 4.0))
        progress.done(Outcome("north", False, 5.0, step="execute", error="boom"))
    assert "" == stream.getvalue()
    first, second = caplog.messages
    assert first.startswith("[1/3] south: ok (4.0 s); running: north, east; about 0:00:")
    assert second.startswith("[2/3] north: FAILED at execute (5.0 s); running: east; about")


def test_progress_on_a_terminal_is_a_bar_with_each_reports_status(caplog):
    stream = io.StringIO()
    with (
        caplog.at_level(logging.INFO, logger="kpi"),
        BatchProgress(2, stream, interactive=True) as progress,
    ):
        progress.started("north")
        progress.started("south")
        progress.done(Outcome("north", True, 3.0))
    shown = stream.getvalue()
    assert "north: ok (3.0 s)" in shown
    assert "1/2" in shown and "running: south" in shown
    assert [] == caplog.messages  # the bar says it; the log does not repeat it


def test_warm_data_keeps_the_monthly_window_the_deals_by_department_and_the_lookups(
    source: Path,
) -> None:
    scheme = load_scheme(Path(__file__).resolve().parents[1] / "params/schemes/sales_funnel.yaml")
    month = pd.Period("2026-09", freq="M")
    monthly, quarterly = sources.open_source(str(source)), sources.open_source(str(source))

    warm_data(monthly, scheme, month, 3)
    warm_data(quarterly, scheme, month)

    def cards(crm: CRM) -> int:
        return sum(crm.kept(_card_key(scheme, m, shown)) is not None
                   for m, shown in window_shown(month, 3))  # fmt: skip

    assert (3, 0) == (cards(monthly), cards(quarterly))
    for crm in (monthly, quarterly):
        assert crm.kept("leads channel by lead_id") is not None
        assert crm.kept("clients segment by client_id") is not None
        split = crm.kept("deals by department")
        assert {"north", "south", "east", "west"} <= set(split)
        pd.testing.assert_frame_equal(
            split["north"], deals_with_department(crm).query("department_id == 'north'")
        )


def test_a_forked_kernel_leaves_the_objects_it_inherited_to_no_collection(tmp_path: Path) -> None:
    """Its collector skips what lived at the fork; the forking process collects as before."""
    import gc

    before = gc.get_freeze_count()
    nb = _run(
        tmp_path,
        "frozen",
        "import gc\nprint('FROZEN', gc.get_freeze_count(), 'YOUNGEST', gc.get_threshold()[0])",
    )

    frozen = int(_text(nb).split("FROZEN ")[1].split()[0])
    assert frozen > 10_000  # the libraries and the data, at least
    assert before == gc.get_freeze_count() == 0
    # and collects its youngest objects less often than this process does
    assert f"YOUNGEST {KERNEL_GC_THRESHOLD}" in _text(nb)
    assert gc.get_threshold()[0] < KERNEL_GC_THRESHOLD


def test_a_kernel_started_after_warm_up_imports_nothing_as_it_starts(tmp_path: Path) -> None:
    """`warm_up` imports what a kernel imports only as it starts (its debugger, IPython's
    magics), so no report's kernel spends its start importing; and it says nothing on stderr and
    leaves the environment as it was."""
    import subprocess
    import sys

    from kpilib.kernels import warm_up

    warm_up()
    (tmp_path / "modules.txt").write_text("\n".join(sys.modules), encoding="utf-8")
    nb = _run(
        tmp_path,
        "imports",
        "import sys\n"
        "known = set(open('modules.txt', encoding='utf-8').read().split())\n"
        "print('NEW', sorted(set(sys.modules) - known))",
    )
    assert "NEW []" in _text(nb)
    quiet = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os\nfrom kpilib.kernels import warm_up\n"
            "before = dict(os.environ)\nwarm_up()\nassert dict(os.environ) == before",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert quiet.stderr == ""


def test_in_fork_returns_what_the_work_returned_in_another_process() -> None:
    from kpilib.kernels import in_fork

    with in_fork(lambda: (os.getpid(), pd.Series([1.5, 2.5]).sum())) as result:
        pid, total = result()
    assert pid != os.getpid()
    assert 4.0 == total


def test_in_fork_raises_what_the_work_raised_there() -> None:
    from kpilib.kernels import in_fork

    def work() -> None:
        raise ReportError(f"failed in {os.getpid()}")

    with in_fork(work) as result, pytest.raises(ReportError, match="failed in") as caught:
        result()
    assert str(os.getpid()) not in str(caught.value)


def test_in_fork_does_the_work_here_when_the_process_ends_without_an_answer() -> None:
    from kpilib.kernels import in_fork

    here = os.getpid()

    def work() -> int:
        if os.getpid() != here:
            os._exit(3)  # the forked process dies
        return here

    with in_fork(work) as result:
        assert here == result()


class _Libc:
    """A C library whose prctl refuses (a sandbox), or that has none."""

    def __init__(self, has_prctl: bool) -> None:
        if has_prctl:
            self.prctl = lambda *_args: -1


@pytest.mark.parametrize("has_prctl", [True, False], ids=["refused", "absent"])
def test_a_process_that_cannot_ask_to_die_with_its_parent_runs_on(monkeypatch, has_prctl):
    monkeypatch.setattr(kernels.ctypes, "CDLL", lambda *_args, **_kwargs: _Libc(has_prctl))
    kernels.die_with_parent(os.getppid())  # neither raises nor ends this process
