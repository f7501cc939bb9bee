"""Tests for kpilib.render: papermill execution, offline HTML export and the reports index."""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

import nbformat
import pytest
from nbformat import v4

from kpilib.errors import ReportError
from kpilib.render import declared_parameters, execute_notebook, export_html, write_index

HOSTILE = "<script>alert(1)</script>"
CODE_SNIPPETS = ["print('VALUE', x * 10)", "plt.subplots", "file=sys.stderr"]


def _notebook(*cells: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb = v4.new_notebook(cells=list(cells))
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def _tagged(cell: nbformat.NotebookNode, *tags: str) -> nbformat.NotebookNode:
    cell.metadata["tags"] = list(tags)
    return cell


def _write(nb: nbformat.NotebookNode, path: Path) -> Path:
    nbformat.write(nb, path)
    return path


def _report_notebook(path: Path) -> Path:
    return _write(
        _notebook(
            v4.new_markdown_cell("# Monthly report"),
            _tagged(v4.new_code_cell("x: int = 1  # a number"), "parameters"),
            v4.new_markdown_cell("## Revenue & profit\n\nSome text."),
            v4.new_code_cell("print('VALUE', x * 10)"),
            v4.new_code_cell("import sys\nprint('STDERR-MARKER', file=sys.stderr)"),
            v4.new_markdown_cell("### Chart"),
            v4.new_code_cell(
                "import matplotlib.pyplot as plt\n"
                "fig, ax = plt.subplots(figsize=(2, 2))\n"
                "ax.plot([1, 2], [3, 4])\n"
                "plt.show()"
            ),
            v4.new_code_cell(
                "from kpilib.plots import new_figure\n"
                "chart = new_figure(2, 2, 'Described <chart> & \"alt\"')\n"
                "chart.subplots().bar(['a'], [1])\n"
                "chart"
            ),
            v4.new_code_cell(
                "from IPython.display import HTML, Markdown, display\n"
                "display(Markdown('*MARKDOWN-OUTPUT*'), HTML('<b>HTML-OUTPUT</b>'))\n"
                "'TEXT-RESULT'"
            ),
            _tagged(v4.new_code_cell("print('HIDDEN-OUTPUT')"), "remove_output"),
            _tagged(v4.new_markdown_cell("REMOVED-CELL"), "remove_cell"),
        ),
        path,
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("render")


@pytest.fixture(scope="module")
def executed(workdir: Path) -> Path:
    """The report notebook executed once with x=5, shared by the execution and export tests."""
    output = workdir / "out" / "report.ipynb"
    execute_notebook(_report_notebook(workdir / "report.ipynb"), output, {"x": 5}, cwd=workdir)
    return output


@pytest.fixture(scope="module")
def report_html(executed: Path, workdir: Path) -> str:
    html = workdir / "out" / "report.html"
    export_html(executed, html, title='North <Q&A> "2026-10"')
    return html.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def failed_run(workdir: Path) -> tuple[ReportError, Path]:
    """A notebook whose second code cell raises, executed once."""
    notebook = _write(
        _notebook(
            _tagged(v4.new_code_cell("x: int = 1"), "parameters"),
            v4.new_code_cell("card = {}['missing']\nprint('never')"),
            v4.new_code_cell("print('not reached')"),
        ),
        workdir / "failing.ipynb",
    )
    output = workdir / "out" / "failing.ipynb"
    with pytest.raises(ReportError) as caught:
        execute_notebook(notebook, output, {"x": 2}, cwd=workdir)
    return caught.value, output


# --- execution --------------------------------------------------------------------------------


def test_declared_parameters_are_read_from_the_parameters_cell(tmp_path: Path) -> None:
    notebook = _report_notebook(tmp_path / "report.ipynb")

    assert declared_parameters(notebook) == {"x": "int"}


def test_declared_parameters_of_a_missing_notebook_is_a_report_error(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="not found"):
        declared_parameters(tmp_path / "absent.ipynb")


def test_execution_injects_parameters_and_the_value_reaches_the_output(executed: Path) -> None:
    nb = nbformat.read(executed, as_version=4)
    texts = [o.get("text", "") for c in nb.cells for o in c.get("outputs", [])]

    assert [
        t for c in nb.cells for t in c.metadata.get("tags", []) if t == "injected-parameters"
    ] == ["injected-parameters"]
    assert "VALUE 50\n" in texts


def test_an_undeclared_parameter_is_refused_before_execution(tmp_path: Path) -> None:
    notebook = _report_notebook(tmp_path / "report.ipynb")
    output = tmp_path / "out.ipynb"

    with pytest.raises(ReportError, match="does not declare parameter.*region.*declares: x"):
        execute_notebook(notebook, output, {"x": 2, "region": "north"}, cwd=tmp_path)
    assert not output.exists()


def test_a_failing_cell_raises_report_error_naming_the_cell_and_the_error(
    failed_run: tuple[ReportError, Path],
) -> None:
    error, _ = failed_run

    # In [1] parameters, In [2] injected parameters, In [3] the failing cell.
    assert str(error) == "Cell 3 (`card = {}['missing'] ...`): KeyError: 'missing'"


def test_a_failing_run_still_writes_the_executed_notebook(
    failed_run: tuple[ReportError, Path],
) -> None:
    _, output = failed_run

    nb = nbformat.read(output, as_version=4)
    assert any(o.output_type == "error" for c in nb.cells for o in c.get("outputs", []))


def test_a_cell_running_past_the_timeout_raises_report_error_naming_it(tmp_path: Path) -> None:
    notebook = _write(
        _notebook(v4.new_code_cell("import time\ntime.sleep(30)")), tmp_path / "s.ipynb"
    )

    with pytest.raises(
        ReportError, match=r"Cell 1 \(`import time \.\.\.`\) ran longer than the 1 s"
    ):
        execute_notebook(notebook, tmp_path / "out.ipynb", {}, cwd=tmp_path, cell_timeout=1)


# --- HTML export ------------------------------------------------------------------------------


def test_html_shows_no_code(report_html: str) -> None:
    assert [snippet for snippet in CODE_SNIPPETS if snippet in report_html] == []
    assert "In&nbsp;[" not in report_html


def test_html_leaves_out_parameter_cells_removed_cells_and_removed_outputs(
    report_html: str,
) -> None:
    assert "injected-parameters" not in report_html
    assert "x = 5" not in report_html
    assert "REMOVED-CELL" not in report_html
    assert "HIDDEN-OUTPUT" not in report_html


def test_html_shows_stdout_but_not_stderr(report_html: str) -> None:
    assert "VALUE 50" in report_html
    assert "STDERR-MARKER" not in report_html


def test_html_makes_no_network_reference(report_html: str) -> None:
    remote = re.findall(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//|//cdn""", report_html)

    assert remote == []
    assert "<script" not in report_html


def test_html_embeds_the_figure_as_a_data_uri(report_html: str) -> None:
    sources = re.findall(r'<img[^>]*\bsrc="([^"]*)"', report_html)

    assert len(sources) == 2
    assert all(source.startswith("data:image/png;base64,") for source in sources)


def test_html_gives_a_report_chart_its_description_even_with_inline_charts_on(
    report_html: str,
) -> None:
    """The kernel's inline chart formatter, on since pyplot was used, must not replace a report
    figure's own PNG and drop its alternative text."""
    alts = re.findall(r"""<img[^>]*\balt=(["'])(.*?)\1""", report_html)

    assert [unescape(alt) for _, alt in alts] == ["Chart", 'Described <chart> & "alt"']
    assert "<chart>" not in report_html


def test_html_table_of_contents_links_resolve_to_headings(report_html: str) -> None:
    toc = re.search(r'<nav class="kpi-toc".*?</nav>', report_html, re.DOTALL)
    assert toc is not None
    links = [unescape(h) for h in re.findall(r'href="#([^"]*)"', toc.group(0))]
    ids = {unescape(i) for i in re.findall(r'\bid="([^"]*)"', report_html)}

    assert links == ["Revenue-&-profit", "Chart"]
    assert set(links) <= ids
    assert report_html.index("</nav>") < report_html.index("VALUE 50")
    # After the title, before the first section.
    assert report_html.index(">Monthly report<") < toc.start() < report_html.index("<h2")
    assert re.match(r'\s*<div [^<>]*\bclass="jp-Cell ', report_html[toc.end() :])  # between cells


def test_html_lets_the_keyboard_reach_every_output(report_html: str) -> None:
    """Each output area takes the focus (a wide table scrolls without a mouse), whatever its
    kind: text, stream, Markdown, HTML, chart."""
    areas = re.findall(r"<div [^<>]*\bjp-OutputArea-output\b[^<>]*>", report_html)
    kinds = {kind for area in areas for kind in re.findall(r"\bjp-Rendered(?!HTMLCommon)\w+", area)}

    assert kinds == {
        "jp-RenderedText",
        "jp-RenderedMarkdown",
        "jp-RenderedHTML",
        "jp-RenderedImage",
    }
    assert all('tabindex="0"' in area for area in areas)
    for marker in ("VALUE 50", "<em>MARKDOWN-OUTPUT</em>", "<b>HTML-OUTPUT</b>", "TEXT-RESULT"):
        assert marker in report_html


def test_html_title_is_escaped(report_html: str) -> None:
    assert '<title>North &lt;Q&amp;A&gt; "2026-10"</title>' in report_html


def test_export_refuses_a_notebook_with_an_error_output(
    failed_run: tuple[ReportError, Path], tmp_path: Path
) -> None:
    _, output = failed_run
    html = tmp_path / "failing.html"

    with pytest.raises(ReportError, match=r"Cell 3 .*KeyError.*not rendered"):
        export_html(output, html, title="failing")
    assert not html.exists()


def test_export_refuses_an_output_that_would_load_from_the_network(tmp_path: Path) -> None:
    cell = v4.new_code_cell("show()", execution_count=1)
    cell.outputs = [
        v4.new_output("display_data", {"text/html": '<script src="https://cdn.example/x.js">'})
    ]
    executed = _write(_notebook(cell), tmp_path / "remote.ipynb")

    with pytest.raises(ReportError, match="network"):
        export_html(executed, tmp_path / "remote.html", title="remote")
    assert not (tmp_path / "remote.html").exists()


# --- index ------------------------------------------------------------------------------------


def _kpis(period: str, department_id: str, name: str, **headline: object) -> dict:
    values = {"score": 0.93, "revenue": 12345678.0, "net_profit": 3456789.0}
    values |= {"kpis_met": 5, "kpis_with_data": 8} | headline
    return {
        "period": period,
        "department_id": department_id,
        "department_name": name,
        "currency": "RUB",
        "headline": values,
    }


def _report(reports: Path, tree: str, period: str, kpis: dict) -> None:
    folder = reports / tree / period
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{kpis['department_id']}.html").write_text("<html></html>", encoding="utf-8")
    (folder / f"{kpis['department_id']}.kpis.json").write_text(json.dumps(kpis), encoding="utf-8")


def _failure(reports: Path, period: str, department_id: str, error: str) -> None:
    folder = reports / "monthly" / period
    folder.mkdir(parents=True, exist_ok=True)
    failure = {"period": period, "department_id": department_id, "step": "execute", "error": error}
    (folder / f"{department_id}.failed.json").write_text(json.dumps(failure), encoding="utf-8")


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    reports = tmp_path / "reports"
    _report(reports, "monthly", "2026-09", _kpis("2026-09", "north", "North"))
    _report(reports, "monthly", "2026-10", _kpis("2026-10", "north", HOSTILE))
    nulls = {"score": None, "revenue": None, "net_profit": None, "kpis_met": None}
    _report(reports, "monthly", "2026-10", _kpis("2026-10", "east", "East", **nulls))
    _failure(reports, "2026-10", "south", f"Cell 7 (`card = ...`): KeyError: '{HOSTILE}'")
    (reports / "monthly" / "staging-tmp").mkdir()
    return reports


def test_index_lists_reports_newest_period_first_with_relative_links(reports: Path) -> None:
    page = write_index(reports).read_text(encoding="utf-8")
    links = re.findall(r'href="([^"]*)"', page)

    assert links[:2] == ["monthly/2026-10/east.html", "monthly/2026-10/north.html"]
    assert links[2] == "monthly/2026-09/north.html"
    assert all((reports / link).is_file() for link in links)
    assert "staging-tmp" not in page


def test_index_shows_headline_numbers_formatted(reports: Path) -> None:
    page = write_index(reports).read_text(encoding="utf-8")

    assert "93.0%" in page
    assert "12,345,678 RUB" in page
    assert "3,456,789 RUB" in page
    assert "5 / 8" in page


def test_index_shows_no_data_for_null_headline_values_never_zero(reports: Path) -> None:
    page = write_index(reports).read_text(encoding="utf-8")
    east = re.search(r"<tr><td[^>]*>East</td>.*?</tr>", page)

    assert east is not None
    assert east.group(0).count("no data") == 4
    assert " 0 RUB" not in east.group(0)
    assert "0%" not in east.group(0)


def test_index_shows_failed_reports_with_their_message(reports: Path) -> None:
    page = write_index(reports).read_text(encoding="utf-8")
    south = re.search(r"<tr><td[^>]*>south</td>.*?</tr>", page)

    assert south is not None
    assert "FAILED" in south.group(0)
    assert "execute: Cell 7 (`card = ...`): KeyError:" in south.group(0)


def test_index_shows_unreadable_result_files_as_failed_instead_of_skipping_them(
    reports: Path,
) -> None:
    (reports / "monthly" / "2026-10" / "west.failed.json").write_text("{}", encoding="utf-8")
    (reports / "monthly" / "2026-10" / "east.kpis.json").write_text("{trunc", encoding="utf-8")

    page = write_index(reports).read_text(encoding="utf-8")
    west = re.search(r"<tr><td[^>]*>west</td>.*?</tr>", page)
    east = re.search(r"<tr><td[^>]*>east</td>.*?</tr>", page)

    assert west is not None
    assert "FAILED" in west.group(0)
    assert east is not None
    assert "FAILED</span> cannot read east.kpis.json" in east.group(0)


def test_index_escapes_every_crm_string(reports: Path) -> None:
    page = write_index(reports).read_text(encoding="utf-8")

    assert HOSTILE not in page
    assert "<script" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 2


def test_index_includes_the_quarterly_tree_when_present(reports: Path) -> None:
    _report(reports, "quarterly", "2026Q3", _kpis("2026Q3", "north", "North"))

    page = write_index(reports).read_text(encoding="utf-8")

    assert page.index("Monthly reports") < page.index("Quarterly reports")
    assert 'href="quarterly/2026Q3/north.html"' in page


def test_quarterly_rows_show_the_verdicts_and_the_company_wide_report_first(reports: Path) -> None:
    verdicts = {"keep": 3, "re-weight": 1, "drop": 2, "cannot judge": 0}
    _report(reports, "quarterly", "2026Q3", _kpis("2026Q3", "north", "North", verdicts=verdicts))
    company = _kpis("2026Q3", "company", "All sales departments", verdicts={"keep": 4})
    _report(reports, "quarterly", "2026Q3", company)

    page = write_index(reports).read_text(encoding="utf-8")
    quarterly = page[page.index("Quarterly reports") :]

    assert "KPI verdicts" in quarterly and "Mean score" in quarterly
    assert quarterly.index("All sales departments") < quarterly.index("North")
    assert "3 keep, 1 re-weight, 2 drop" in quarterly and "4 keep" in quarterly


def test_index_of_an_empty_reports_folder_says_so(tmp_path: Path) -> None:
    page = write_index(tmp_path).read_text(encoding="utf-8")

    assert "No reports yet." in page
