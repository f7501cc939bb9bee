"""Run report notebooks with papermill and render them as offline HTML; write the reports index.

The only module that executes notebooks or writes HTML. A report is a single self-contained file:
no code, no stderr, no tracebacks, no request to the network when it is opened.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
from collections.abc import Callable, Mapping
from html import escape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import nbformat
import papermill
from jupyter_client.manager import KernelManager
from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbconvert import HTMLExporter
from nbconvert.exporters.templateexporter import TemplateExporter
from nbconvert.filters.highlight import Highlight2HTML
from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter
from nbconvert.preprocessors import TagRemovePreprocessor
from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines
from traitlets.config import Config

from kpilib import paths
from kpilib.display import fmt
from kpilib.errors import ReportError
from kpilib.io import write_atomically

__all__ = [
    "declared_parameters",
    "execute_notebook",
    "export_html",
    "last_started_cell",
    "write_error_page",
    "write_index",
]

logger = logging.getLogger(__name__)

_TEMPLATES = Path(__file__).resolve().parent / "templates"
_TEMPLATE_NAME = "kpi_report"
_TOC_MARKER = "<!-- kpilib:toc -->"
_REMOVED_CELL_TAGS = frozenset({"injected-parameters", "parameters", "remove_cell"})
_CELL_START = re.compile(r'<div [^<>]*\bclass="jp-Cell ')
"""Where a notebook cell's markup begins in the page."""
_HEADING = re.compile(r"<(h[23])\b.*?</\1>", re.DOTALL)
"""An h2 or h3 element of the page, with its content."""
_OUTPUT_AREA = re.compile(r'(<div class="[^"<>]*\bjp-OutputArea-output\b[^"<>]*"[^<>]*?)>')
"""The opening tag of an output area, as the template writes it (CRM text in it is escaped)."""
# Anything the browser would fetch by itself when opening the page (or a link out of it).
_REMOTE_REFERENCE = re.compile(
    r"""(?:\b(?:src|href|srcset|poster|data)\s*=\s*["']?\s*|url\(\s*["']?\s*|@import\s+["']?\s*)"""
    r"""(?:https?:)?//[^\s"'<>)]*""",
    re.IGNORECASE,
)
_PERIOD_TREES = (
    ("monthly", "Monthly reports", re.compile(r"\d{4}-\d{2}")),
    ("quarterly", "Quarterly reports", re.compile(r"\d{4}Q[1-4]")),
)
_NO_DATA = '<span class="kpi-nodata">no data</span>'
_INDEX_COLUMNS = {
    "monthly": ["Department", "Status", "Score", "Revenue", "Net profit",
                "KPIs met (of those with data)", "Report"],
    "quarterly": ["Department", "Status", "Mean score", "Revenue", "Net profit",
                  "KPI verdicts", "Report"],
}  # fmt: skip
_VERDICTS = ("keep", "re-weight", "drop", "cannot judge")
MANIFEST = "manifest.json"


# --- execution --------------------------------------------------------------------------------


def declared_parameters(notebook: Path) -> dict[str, str]:
    """Names the notebook declares in its ``parameters``-tagged cell.

    Args:
        notebook: The notebook to inspect (it needs kernelspec metadata, as Jupyter writes it).

    Returns:
        Parameter name -> inferred type name (``"int"``, ``"str"``, ...; ``"None"`` when papermill
        cannot infer it). Empty when the notebook has no parameters cell.

    Raises:
        ReportError: The notebook is missing or cannot be read.
    """
    _require_file(notebook, "notebook")
    try:
        inspected = papermill.inspect_notebook(notebook)
    except (OSError, ValueError) as exc:
        raise ReportError(f"cannot inspect notebook {notebook}: {exc}") from exc
    return {name: str(info["inferred_type_name"]) for name, info in inspected.items()}


def execute_notebook(
    notebook: Path,
    output: Path,
    parameters: Mapping[str, object],
    *,
    cwd: Path,
    cell_timeout: int = 600,
    kernel: Callable[[], KernelManager] | None = None,
    on_cell: Callable[[str], None] | None = None,
) -> None:
    """Execute ``notebook`` with papermill, injecting ``parameters``, and save it to ``output``.

    The kernel is ``python3``, i.e. the ipykernel of the running interpreter, started by
    papermill, or the one `kernel` starts (`kpilib.kernels.fork_kernel`), stopped when done.
    When a cell fails the executed notebook is still written to ``output`` (for audit) and the
    error names the cell by its execution count, as ``In [n]`` in the executed notebook.

    Args:
        notebook: The report notebook (committed without outputs).
        output: Where to write the executed notebook; its folder is created if needed.
        parameters: Values for names declared in the notebook's parameters cell.
        cwd: Working directory of the kernel (relative paths in the notebook resolve here).
        cell_timeout: Seconds one cell may run before the execution is abandoned.
        kernel: Starts the kernel to run in (called with nothing; its working directory is its
            own business); by default papermill starts one in `cwd`.
        on_cell: Told each code cell as it starts (``Cell 3 (`...`)``), so that whoever stops
            an overdue report from outside knows which cell was running.

    Raises:
        ReportError: A parameter is not declared by the notebook (nothing is executed), a cell
            raised, a cell ran past ``cell_timeout`` or the kernel died.
    """
    _refuse_undeclared(notebook, parameters)
    output.parent.mkdir(parents=True, exist_ok=True)
    manager = kernel() if kernel else None
    try:
        papermill.execute_notebook(
            notebook,
            output,
            parameters=dict(parameters),
            kernel_name="python3",
            progress_bar=False,
            log_output=False,
            cwd=cwd,
            execution_timeout=cell_timeout,
            # The kernel's own start-up chatter (a warning about its local TCP transport) is not
            # news for the scheduler's log; its errors still are.
            extra_arguments=["--IPKernelApp.log_level=ERROR"],
            km=manager,
            engine_name=_ENGINE,
            on_cell=on_cell,
        )
    except papermill.PapermillExecutionError as exc:
        cell = _describe_cell(exc.exec_count, exc.source)
        raise ReportError(f"{cell}: {exc.ename}: {exc.evalue}") from exc
    except CellTimeoutError as exc:
        cell = last_started_cell(output)
        raise ReportError(f"{cell} ran longer than the {cell_timeout} s cell timeout") from exc
    except DeadKernelError as exc:
        cell = last_started_cell(output)
        raise ReportError(f"{cell}: the kernel died ({exc})") from exc
    finally:
        if manager is not None:
            run_sync(manager.shutdown_kernel)(now=True)


class _Execution(NotebookExecutionManager):
    """Papermill's record of an execution, writing the notebook when the execution starts and
    when it stops early, not also as every cell starts and ends: those writes (the whole
    notebook, charts included, encoded and validated each time) cost a report more than a
    second."""

    on_cell: Callable[[str], None] | None = None
    _writing = True

    def save(self, **kwargs: Any) -> None:
        if self._writing:
            super().save(**kwargs)

    def cell_start(
        self, cell: nbformat.NotebookNode, cell_index: int | None = None, **kwargs: Any
    ) -> None:
        if self.on_cell and cell_index is not None:
            # Cells run in order: a cell's place among the code cells is its execution count.
            code = [c for c in self.nb.cells[: cell_index + 1] if c.cell_type == "code"]
            self.on_cell(_describe_cell(len(code), cell.source))
        self._quietly(super().cell_start, cell, cell_index, **kwargs)

    def cell_complete(
        self, cell: nbformat.NotebookNode, cell_index: int | None = None, **kwargs: Any
    ) -> None:
        self._quietly(super().cell_complete, cell, cell_index, **kwargs)

    def _quietly(self, step: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        self._writing = False
        try:
            step(*args, **kwargs)
        finally:
            self._writing = True


class _Engine(NBClientEngine):
    """Papermill's nbclient engine, keeping its record of the execution with `_Execution`."""

    @classmethod
    def execute_notebook(  # type: ignore[override]
        cls,
        nb: nbformat.NotebookNode,
        kernel_name: str,
        output_path: str | None = None,
        progress_bar: bool = True,
        log_output: bool = False,
        autosave_cell_every: int = 30,
        on_cell: Callable[[str], None] | None = None,
        **kwargs: Any,
    ) -> nbformat.NotebookNode:
        execution = _Execution(
            nb,
            output_path=output_path,
            progress_bar=progress_bar,
            log_output=log_output,
            autosave_cell_every=autosave_cell_every,
        )
        execution.on_cell = on_cell
        execution.notebook_start()
        try:
            cls.execute_managed_notebook(execution, kernel_name, log_output=log_output, **kwargs)
        except BaseException:
            execution.cleanup_pbar()
            execution.notebook_complete()  # written as far as it ran, for the audit
            raise
        execution.cleanup_pbar()
        # Not written here: papermill writes the notebook as soon as the engine returns, after
        # a failed cell too.
        execution._quietly(execution.notebook_complete)
        return execution.nb


_ENGINE = "kpilib"
papermill_engines.register(_ENGINE, _Engine)


def _refuse_undeclared(notebook: Path, parameters: Mapping[str, object]) -> None:
    declared = declared_parameters(notebook)
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise ReportError(
            f"{notebook.name} does not declare parameter(s) {', '.join(unknown)}; "
            f"it declares: {', '.join(sorted(declared)) or 'none'}"
        )


def last_started_cell(output: Path) -> str:
    """The cell papermill was running when it gave up: the last one it recorded a start for.

    The executed notebook records when each cell started; it is written when the execution
    ends, also when a cell fails, times out or the kernel dies.
    """
    try:
        nb = _read_notebook(output)
    except ReportError:
        return "A cell"
    code = [c for c in nb.cells if c.cell_type == "code"]
    started = [
        (ordinal, c)
        for ordinal, c in enumerate(code, start=1)
        if c.metadata.get("papermill", {}).get("start_time")
    ]
    if not started:
        return "A cell"
    ordinal, cell = started[-1]
    # A cell stopped while running has no execution count yet; cells run in order, so its
    # place among the code cells is the count it would have had.
    return _describe_cell(cell.get("execution_count") or ordinal, cell.source)


def _describe_cell(exec_count: int | None, source: str) -> str:
    lines = source.strip().splitlines()
    first = lines[0] if lines else ""
    if len(first) > 60 or len(lines) > 1:
        first = first[:57].rstrip() + " ..."
    return f"Cell {exec_count} (`{first}`)"


def _read_notebook(path: Path) -> nbformat.NotebookNode:
    _require_file(path, "notebook")
    try:
        return nbformat.read(path, as_version=4)
    except (OSError, ValueError) as exc:
        raise ReportError(f"cannot read notebook {path}: {exc}") from exc


def _require_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise ReportError(f"{what} not found: {path}")


# --- HTML export ------------------------------------------------------------------------------


def export_html(executed: Path, html: Path, *, title: str) -> None:
    """Render an executed notebook as a single self-contained, offline HTML report.

    The page shows no code and no prompts; cells tagged ``injected-parameters``, ``parameters``
    or ``remove_cell`` are removed, ``remove_input``/``remove_output`` are honoured, stderr output
    (warnings, logs) is dropped and logged instead. A table of contents of the h2/h3 headings
    follows the title and parameters. Nothing is written unless the whole page renders.

    Args:
        executed: The notebook written by :func:`execute_notebook`.
        html: Where to write the page; its folder is created if needed.
        title: The page title (escaped).

    Raises:
        ReportError: The notebook is missing or unreadable, holds an error output (a report
            never shows a traceback), or the page would reference something on the network.
    """
    nb = _read_notebook(executed)
    _refuse_error_outputs(nb, executed)
    _drop_stderr(nb, executed)
    nb.metadata["title"] = title  # the lab template escapes it into <title>
    resources = {"metadata": {"name": title, "path": str(executed.parent)}}
    page, _ = _exporter().from_notebook_node(nb, resources=resources)
    _refuse_remote_references(page, executed)
    html.parent.mkdir(parents=True, exist_ok=True)
    html.write_text(_with_toc(page), encoding="utf-8")


def warm_up() -> None:
    """Build the exporter and compile its templates once, by rendering a small page, so that
    the processes a batch forks for its reports start with them ready."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("## Warm-up"), nbformat.v4.new_code_cell("1")]
    _exporter().from_notebook_node(nb, resources={"metadata": {"name": "warm-up"}})


class ReportExporter(HTMLExporter):
    """nbconvert's HTML exporter without its pass over the finished page.

    `HTMLExporter` parses every page it renders with BeautifulSoup's pure-Python parser, only to
    give images without a description a default one and to make output areas focusable: a
    third of a monthly report's export time. Here the report template gives each chart its
    description as its ``alt``, and the opening tags of the output areas the template wrote get
    ``tabindex="0"``, so that a reader can scroll a wide table with the keyboard.
    Nor is the notebook validated again after each preprocessor: the preprocessors are
    nbconvert's own and the notebook was validated when it was read.
    """

    def from_notebook_node(  # type: ignore[override]
        self, nb: nbformat.NotebookNode, resources: dict[str, Any] | None = None, **kw: Any
    ) -> tuple[str, dict[str, Any]]:
        """Render the notebook with the template and the filters `HTMLExporter` gives it."""
        language = nb.metadata.get("language_info", {})
        lexer = language.get("pygments_lexer", language.get("name"))
        highlight = self.filters.get(
            "highlight_code", Highlight2HTML(pygments_lexer=lexer, parent=self)
        )
        resources = self._init_resources(resources)
        data_type = WidgetsDataTypeFilter(
            notebook_metadata=self._nb_metadata, parent=self, resources=resources
        )
        self.register_filter("highlight_code", highlight)
        self.register_filter("filter_data_type", data_type)
        page, resources = TemplateExporter.from_notebook_node(self, nb, resources, **kw)
        return _OUTPUT_AREA.sub(r'\1 tabindex="0">', page), resources

    def _validate_preprocessor(self, nbc: nbformat.NotebookNode, preprocessor: Any) -> None:
        """Leave the notebook as the preprocessor left it (see the class' description)."""


@functools.cache
def _exporter() -> ReportExporter:
    config = Config()
    # Pygments styles only matter for code, which a report never shows.
    config.CSSHTMLHeaderPreprocessor.enabled = False
    exporter = ReportExporter(
        config=config,
        template_name=_TEMPLATE_NAME,
        extra_template_basedirs=[str(_TEMPLATES)],
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        embed_images=True,
    )
    tags = TagRemovePreprocessor(
        remove_cell_tags=set(_REMOVED_CELL_TAGS),
        remove_input_tags={"remove_input"},
        remove_all_outputs_tags={"remove_output"},
    )
    exporter.register_preprocessor(tags, enabled=True)
    return exporter


def _refuse_error_outputs(nb: nbformat.NotebookNode, executed: Path) -> None:
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                where = _describe_cell(cell.get("execution_count"), cell.get("source", ""))
                raise ReportError(
                    f"{executed.name}: {where}: {output.get('ename')}: {output.get('evalue')}; "
                    "a report with a traceback is not rendered"
                )


def _drop_stderr(nb: nbformat.NotebookNode, executed: Path) -> None:
    for index, cell in enumerate(nb.cells):
        outputs = cell.get("outputs", [])
        stderr = [o for o in outputs if o.get("output_type") == "stream" and o.name == "stderr"]
        for output in stderr:
            logger.warning(
                "%s: cell %d wrote to stderr (left out of the report): %s",
                executed.name,
                index,
                output.text.strip()[:500],
            )
        if stderr:
            cell.outputs = [o for o in outputs if o not in stderr]


def _refuse_remote_references(page: str, executed: Path) -> None:
    found = _REMOTE_REFERENCE.search(page)
    if found:
        raise ReportError(
            f"{executed.name}: the report would reference the network ({found.group(0)[:120]}); "
            "reports must open offline"
        )


class _HeadingCollector(HTMLParser):
    """Collects (tag, id, text) of h2/h3 elements that carry an id, skipping their ¶ links."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.headings: list[tuple[str, str, str]] = []
        self._current: tuple[str, str] | None = None
        self._text: list[str] = []
        self._in_anchor_link = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag in {"h2", "h3"} and attributes.get("id"):
            self._current, self._text = (tag, attributes["id"] or ""), []
        elif tag == "a" and "anchor-link" in (attributes.get("class") or "").split():
            self._in_anchor_link = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._in_anchor_link = False
        elif self._current and tag == self._current[0]:
            text = " ".join("".join(self._text).split())
            self.headings.append((*self._current, text))
            self._current = None

    def handle_data(self, data: str) -> None:
        if self._current and not self._in_anchor_link:
            self._text.append(data)


def _with_toc(page: str) -> str:
    """The page with its table of contents after the title and parameters: before the first
    section (the first cell holding an h2), or at the top of the page when it has none."""
    toc = _toc(page)
    first_section = page.find("<h2")
    cells = list(_CELL_START.finditer(page, 0, max(first_section, 0)))
    if not cells:
        return page.replace(_TOC_MARKER, toc, 1)
    cell = cells[-1].start()
    return page[:cell].replace(_TOC_MARKER, "", 1) + toc + "\n" + page[cell:]


def _toc(page: str) -> str:
    collector = _HeadingCollector()
    for heading in _HEADING.finditer(page):  # only the headings: the page is mostly charts
        collector.feed(heading.group(0))
    items = [
        f'<li class="kpi-toc-{tag}"><a href="#{escape(anchor)}">{escape(text)}</a></li>'
        for tag, anchor, text in collector.headings
    ]
    if not items:
        return ""
    return '<nav class="kpi-toc" aria-label="Contents"><p>Contents</p><ul>{}</ul></nav>'.format(
        "".join(items)
    )


# --- error page -------------------------------------------------------------------------------


def write_error_page(html: Path, *, title: str, step: str, error: str, previous: Path) -> None:
    """Write the page shown in place of a report that failed: what failed, where, and why.

    Args:
        html: Where to write it (``<department_id>.error.html``).
        title: The report's title (escaped, like every string here).
        step: The step that failed (parameters, execute, render, ...).
        error: The error message, naming the cell where there is one.
        previous: The report's page; when it exists, the page says it is the last good one and
            links it.
    """
    executed = previous.with_name(previous.name.removesuffix(".html") + ".failed.ipynb")
    audit = (
        f'<p>The notebook as executed up to the failure: <a href="{escape(quote(executed.name))}">'
        f"{escape(executed.name)}</a>.</p>"
        if executed.is_file()
        else ""
    )
    if previous.is_file():
        kept = (
            f'<p>The last good report is still in place: <a href="{escape(quote(previous.name))}">'
            f"{escape(previous.name)}</a>.</p>"
        )
    else:
        kept = '<p class="kpi-muted">There is no earlier report for this department.</p>'
    body = (
        f'<h1>{escape(title)}</h1>\n<p class="kpi-failed">This report failed and was not '
        f'written.</p>\n<table class="kpi-params">\n<tr><th>Step</th><td>{escape(step)}</td></tr>'
        f"\n</table>\n<h2>Error</h2>\n<pre>{escape(error)}</pre>\n{audit}{kept}\n"
    )
    write_atomically(html, _page(f"{title}: failed", body))


def _page(title: str, body: str) -> str:
    """A self-contained page with the reports' stylesheet inlined."""
    css = (_TEMPLATES / _TEMPLATE_NAME / "static" / "report.css").read_text(encoding="utf-8")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1.0">\n'
        f"<title>{escape(title)}</title>\n<style>\n{css}</style>\n</head>\n"
        f"<body>\n<main>\n{body}</main>\n</body>\n</html>\n"
    )


# --- index page -------------------------------------------------------------------------------


def write_index(reports_dir: Path) -> Path:
    """Write ``reports_dir/index.html``: every report and every failure, newest period first.

    Reads ``monthly/<YYYY-MM>/`` and, when present, ``quarterly/<YYYY>Q<n>/``: each
    ``<department_id>.html`` with the headline of ``<department_id>.kpis.json`` beside it, and
    each ``<department_id>.failed.json`` shown as FAILED with its message. Every string read from
    these files is escaped; a missing headline value is shown as "no data", never as 0.

    Args:
        reports_dir: The reports folder (``reports/``).

    Returns:
        The path of the index page.
    """
    sections = [
        _index_section(reports_dir / folder, heading, pattern)
        for folder, heading, pattern in _PERIOD_TREES
        if (reports_dir / folder).is_dir()
    ]
    body = "".join(sections) or '<p class="kpi-muted">No reports yet.</p>'
    index = reports_dir / "index.html"
    write_atomically(index, _page("KPI reports", f"<h1>KPI reports</h1>\n{body}"))
    return index


def _index_section(tree: Path, heading: str, pattern: re.Pattern[str]) -> str:
    periods = sorted(
        (d for d in tree.iterdir() if d.is_dir() and pattern.fullmatch(d.name)),
        key=lambda d: d.name,
        reverse=True,
    )
    tables = "".join(_period_table(tree.name, period) for period in periods)
    return f"<h2>{escape(heading)}</h2>\n{tables}" if tables else ""


def _period_table(tree: str, period: Path) -> str:
    found = {_department_id(f.name) for f in period.iterdir() if f.is_file()}
    # The company-wide report (quarterly) heads its table.
    departments = sorted((d for d in found if d), key=lambda d: (d != paths.COMPANY_REPORT, d))
    if not departments:
        return ""
    rows = "".join(_department_row(tree, period, department) for department in departments)
    return (
        f"<h3>{escape(period.name)}</h3>\n<table>\n"
        f"<thead>{_row(_INDEX_COLUMNS[tree], 'th')}</thead>\n"
        f"<tbody>\n{rows}</tbody>\n</table>\n{_manifest_block(tree, period)}"
    )


def _department_id(file_name: str) -> str | None:
    for suffix in (".kpis.json", ".failed.json", ".error.html", ".html"):
        if file_name.endswith(suffix) and len(file_name) > len(suffix):
            return file_name.removesuffix(suffix)
    return None


def _department_row(tree: str, period: Path, department: str) -> str:
    kpis, kpis_problem = _read_json(period / f"{department}.kpis.json")
    failed = period / f"{department}.failed.json"
    failure, failure_problem = _read_json(failed)
    problem = (failure_problem or _failure_text(failure)) if failed.is_file() else kpis_problem
    headline = kpis.get("headline")
    headline = headline if isinstance(headline, dict) else {}
    currency = kpis.get("currency")
    cells = [
        escape(str(kpis.get("department_name") or department)),
        f'<span class="kpi-failed">FAILED</span> {escape(problem)}' if problem else "OK",
        _percent(headline.get("score")),
        _money(headline.get("revenue"), currency),
        _money(headline.get("net_profit"), currency),
        _verdicts(headline.get("verdicts"))
        if tree == "quarterly"
        else _ratio(headline.get("kpis_met"), headline.get("kpis_with_data")),
        _report_link(tree, period, department),
    ]
    return _row(cells, "td") + "\n"


def _row(cells: list[str], tag: str) -> str:
    """A table row; the first two columns (name, status) are text, the rest numbers."""
    return "<tr>{}</tr>".format(
        "".join(
            f'<{tag} class="kpi-left">{cell}</{tag}>' if i < 2 else f"<{tag}>{cell}</{tag}>"
            for i, cell in enumerate(cells)
        )
    )


def _report_link(tree: str, period: Path, department: str) -> str:
    """Links to the report (the last good one when this run failed), its PDF and error page."""
    failed = (period / f"{department}.error.html").is_file()
    links = []
    for suffix, label in ((".html", "previous" if failed else "open"), (".pdf", "PDF")):
        if (period / f"{department}{suffix}").is_file():
            links.append(_link(tree, period, f"{department}{suffix}", label))
    if failed:
        links.append(_link(tree, period, f"{department}.error.html", "error"))
    return " · ".join(links) or '<span class="kpi-muted">missing</span>'


def _link(tree: str, period: Path, file_name: str, label: str) -> str:
    return f'<a href="{escape(quote(f"{tree}/{period.name}/{file_name}"))}">{escape(label)}</a>'


def _manifest_block(tree: str, period: Path) -> str:
    """The period's last batch, from its ``manifest.json``: when, on what, with what, how long."""
    manifest, problem = _read_json(period / MANIFEST)
    if problem:
        return f'<p class="kpi-failed">{escape(problem)}</p>\n'
    if not manifest:
        return ""
    reports = [r for r in manifest.get("reports") or [] if isinstance(r, dict)]
    ok = sum(1 for r in reports if r.get("status") == "ok")
    seconds = _number(manifest.get("seconds"))
    summary = [
        f"Last run {manifest.get('finished') or '?'}",
        f"{ok} of {len(reports)} report(s) written",
        f"{seconds:,.0f} s" if seconds is not None else "",
    ]
    data = manifest.get("data") if isinstance(manifest.get("data"), dict) else {}
    settings = manifest.get("settings") if isinstance(manifest.get("settings"), dict) else {}
    versions = manifest.get("versions") if isinstance(manifest.get("versions"), dict) else {}
    schemes = manifest.get("schemes") if isinstance(manifest.get("schemes"), dict) else {}
    items = {
        "Data source": data.get("source"),
        "Data fingerprint": data.get("fingerprint"),
        **{f"Scheme {name}": digest for name, digest in schemes.items()},
        **{f"Setting {name}": value for name, value in settings.items()},
        **{f"Version of {name}": value for name, value in versions.items()},
    }
    rows = "".join(
        f"<tr><th>{escape(str(k))}</th><td>{escape(_plain(v))}</td></tr>" for k, v in items.items()
    )
    runs = "".join(
        _row(
            [
                escape(str(r.get("department_id", ""))),
                escape(str(r.get("status", ""))),
                escape(f"{_number(r.get('seconds')) or 0:,.1f} s"),
                escape(str(r.get("step") or "")),
            ],
            "td",
        )
        for r in reports
    )
    return (
        '<details class="kpi-manifest">\n'
        f"<summary>{escape(' · '.join(part for part in summary if part))}</summary>\n"
        f'<table class="kpi-params">{rows}</table>\n'
        f"<table><thead>{_row(['Report', 'Status', 'Duration', 'Failed at'], 'th')}</thead>"
        f"<tbody>{runs}</tbody></table>\n"
        f"<p>{_link(tree, period, MANIFEST, 'manifest.json')}</p>\n</details>\n"
    )


def _plain(value: object) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value))
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return "" if value is None else str(value)


def _read_json(path: Path) -> tuple[dict, str | None]:
    """The file's object ({} when absent), or a problem to show instead of failing the index."""
    if not path.is_file():
        return {}, None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return {}, f"cannot read {path.name}: {exc}"
    if not isinstance(data, dict):
        return {}, f"cannot read {path.name}: not a JSON object"
    return data, None


def _failure_text(failure: dict) -> str:
    step = failure.get("step")
    error = str(failure.get("error") or "no message")
    return f"{step}: {error}" if step else error


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _percent(value: object) -> str:
    number = _number(value)
    return _NO_DATA if number is None else escape(fmt(number, "share"))


def _money(value: object, currency: object) -> str:
    number = _number(value)
    if number is None:
        return _NO_DATA
    return escape(fmt(number, "money", str(currency) if currency else "").strip())


def _verdicts(counts: object) -> str:
    """``3 keep, 1 re-weight, 2 drop`` from the quarterly headline's counts."""
    if not isinstance(counts, dict):
        return _NO_DATA
    given = [(v, _number(counts.get(v))) for v in _VERDICTS]
    text = ", ".join(f"{n:.0f} {v}" for v, n in given if n)
    return escape(text) if text else _NO_DATA


def _ratio(met: object, total: object) -> str:
    met_n, total_n = _number(met), _number(total)
    if met_n is None or total_n is None:
        return _NO_DATA
    return f"{met_n:.0f} / {total_n:.0f}"
