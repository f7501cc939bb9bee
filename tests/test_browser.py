"""The reports as management opens them: offline, in a real headless Chromium.

Two batches are run once for this module, each into one reports folder: the monthly reports of north
and south for December 2025, and the quarterly verification of 2025Q4 for one department and the
company. The first batch runs on the demo data; the second on the same data with hostile CRM names
(markup, script, quotes, a very long name, right-to-left and Cyrillic text, spreadsheet formulas)
written as Parquet. The index, one monthly report, one quarterly report and the company report of
each are opened offline (every request but the page's own file is aborted and counted), checked,
and saved as full-page screenshots under ``tests/output/screenshots/<dataset>/<page>.png``.
"""

from __future__ import annotations

import functools
import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pandas as pd
import pytest
from browser_support import (
    OFFLINE_ARGS,
    Visit,
    chromium_path,
    missing_chromium_reason,
    visit,
)
from playwright.sync_api import Browser, sync_playwright

from kpilib import paths
from kpilib.cli import main
from kpilib.demo import DemoConfig, generate
from kpilib.io import read_yaml, write_tables
from kpilib.metrics import department_names
from kpilib.render import write_error_page
from kpilib.testing import HOSTILE_TEXTS, hostile_tables

pytestmark = pytest.mark.browser

PERIOD, QUARTER = "2025-12", "2025Q4"
MONTHLY = ("north", "south")
COMPANY = "All sales departments"
OUTPUT = Path(__file__).parent / "output"
SCREENSHOTS = OUTPUT / "screenshots"


@dataclass(frozen=True)
class Dataset:
    """A data source the batches run on."""

    name: str
    fmt: str  # how the source is written: csv or parquet (which keeps formulas exactly)
    quarterly: str  # the department whose quarterly report runs beside the company's


DATASETS = {
    "demo": Dataset("demo", "csv", "east"),
    "hostile": Dataset("hostile", "parquet", "north"),
}
PAGES = ("index", "monthly", "quarterly", "company")
ALL_PAGES = [(dataset, page) for dataset in DATASETS for page in PAGES]
REPORTS = [(dataset, page) for dataset, page in ALL_PAGES if page != "index"]


@functools.cache
def _tables(dataset: str) -> dict[str, pd.DataFrame]:
    if dataset == "hostile":
        return hostile_tables(_tables("demo"))
    return generate(DemoConfig(months=24, end=PERIOD, managers_per_department=6))


def _department_name(dataset: str, department: str) -> str:
    """The name a report shows: the department's parameters file first, else the CRM's name."""
    params = paths.PARAMS / "departments" / f"{department}.yaml"
    if params.is_file() and read_yaml(params).get("department_name"):
        return str(read_yaml(params)["department_name"])
    return str(department_names(_tables(dataset)["departments"])[department])


def _manager_names(dataset: str, department: str) -> list[str]:
    managers = _tables(dataset)["managers"]
    return managers.loc[managers["department_id"].eq(department), "name"].tolist()


def _page_file(dataset: str, page: str) -> str:
    return {
        "index": "index.html",
        "monthly": f"monthly/{PERIOD}/{MONTHLY[0]}.html",
        "quarterly": f"quarterly/{QUARTER}/{DATASETS[dataset].quarterly}.html",
        "company": f"quarterly/{QUARTER}/{paths.COMPANY_REPORT}.html",
    }[page]


@pytest.fixture(scope="module")
def chromium() -> Path:
    reason = missing_chromium_reason()
    if reason:
        pytest.skip(f"browser tests need Chromium: {reason}")
    return chromium_path()


@pytest.fixture(scope="module")
def reports(chromium, tmp_path_factory) -> dict[str, Path]:
    """Each dataset's reports folder: the monthly and the quarterly batch, run once."""
    built = {}
    for dataset in DATASETS.values():
        base = tmp_path_factory.mktemp(dataset.name)
        write_tables(_tables(dataset.name), base / "data", fmt=dataset.fmt)
        out = base / "reports"
        common = ["--data", str(base / "data"), "--out", str(out), "--jobs", "2"]
        departments = [arg for department in MONTHLY for arg in ("--department", department)]
        assert 0 == main(["run", "monthly", "--period", PERIOD, *common, *departments])
        quarterly = ["--period", QUARTER, *common, "--department", dataset.quarterly]
        assert 0 == main(["run", "quarterly", *quarterly])
        built[dataset.name] = out
    return built


@pytest.fixture(scope="module")
def browser(chromium, reports) -> Iterator[Browser]:
    """Chromium, started after the batches (the runner forks its workers)."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium), args=[*OFFLINE_ARGS])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def visits(browser, reports) -> Callable[[str, str], Visit]:
    """Each page opened once; its screenshot lands in ``tests/output/screenshots``."""
    OUTPUT.mkdir(exist_ok=True)
    (OUTPUT / ".gitignore").write_text("# test output, never committed\n*\n")

    @functools.cache
    def opened(dataset: str, page: str) -> Visit:
        page_file = reports[dataset] / _page_file(dataset, page)
        return visit(browser, page_file, SCREENSHOTS / dataset / f"{page}.png")

    return opened


@pytest.mark.parametrize(("dataset", "page"), ALL_PAGES)
def test_page_raises_no_error_and_opens_no_dialog(visits, dataset, page):
    seen = visits(dataset, page)
    assert ([], [], []) == (seen.console_errors, seen.page_errors, seen.dialogs)


@pytest.mark.parametrize(("dataset", "page"), ALL_PAGES)
def test_page_requests_nothing_but_its_own_file(visits, dataset, page):
    seen = visits(dataset, page)
    assert seen.url == seen.requests[0]  # the route saw the page itself, so it saw everything
    assert [] == seen.blocked


@pytest.mark.parametrize(("dataset", "page"), ALL_PAGES)
def test_every_image_has_loaded(visits, dataset, page):
    images = visits(dataset, page).facts["images"]
    assert [] == [image["src"] for image in images if not image["loaded"]]
    assert bool(images) or page == "index"  # every report has charts


@pytest.mark.parametrize(("dataset", "page"), ALL_PAGES)
def test_every_contents_link_reaches_its_section(visits, dataset, page):
    facts = visits(dataset, page).facts
    assert [] == facts["brokenTocLinks"]
    if page != "index":  # a report lists every section in its contents
        linked = {unquote(link.removeprefix("#")) for link in facts["tocLinks"]}
        assert [] == [heading for heading in facts["headingIds"] if heading not in linked]


MONTHLY_SECTIONS = {  # heading: (tables, charts) at least
    "Findings": (0, 0),
    "Discrepancy register": (1, 0),
    "Department roll-up": (1, 0),
    "Gap decomposition": (1, 1),
    "Service departments": (1, 0),
    "Scorecard per manager": (1, 1),
    "Net profit per manager": (1, 1),
    "Revenue structure": (1, 1),
    "Forecast": (1, 1),
    "Trends": (0, 1),
    "Provenance": (1, 0),
}
QUARTERLY_SECTIONS = {
    "Verdicts": (0, 0),
    "Do the KPIs still drive results?": (1, 1),
    "Score versus profit": (1, 1),
    "Target calibration": (1, 1),
    "Requirements to other departments": (1, 1),
    "Scheme stability": (1, 0),
    "Provenance": (1, 0),
}


@pytest.mark.parametrize(("dataset", "page"), REPORTS)
def test_report_opens_with_findings_then_its_sections_with_tables_and_charts(visits, dataset, page):
    facts = visits(dataset, page).facts
    expected = MONTHLY_SECTIONS if page == "monthly" else QUARTERLY_SECTIONS
    assert list(expected)[0] == facts["headings"][0]
    assert list(expected)[-1] == facts["headings"][-1]
    assert len(facts["findings"]) >= 3
    found = {s["heading"]: (s["tables"], s["images"]) for s in facts["sections"]}
    assert set(expected) <= set(found)
    short = {
        heading: found[heading]
        for heading, (tables, images) in expected.items()
        if found[heading][0] < tables or found[heading][1] < images
    }
    assert {} == short


@pytest.mark.parametrize("dataset", DATASETS)
def test_index_lists_each_report_under_its_kind_with_the_department_name(visits, dataset):
    facts = visits(dataset, "index").facts
    assert ["Monthly reports", "Quarterly reports"] == facts["headings"]
    assert [True, True] == [section["tables"] > 0 for section in facts["sections"]]
    rows = {link["href"]: link["row"] for link in facts["links"]}
    quarterly = DATASETS[dataset].quarterly
    expected = {f"monthly/{PERIOD}/{d}.html": _department_name(dataset, d) for d in MONTHLY} | {
        f"quarterly/{QUARTER}/{quarterly}.html": _department_name(dataset, quarterly),
        f"quarterly/{QUARTER}/{paths.COMPANY_REPORT}.html": COMPANY,
    }
    assert expected == {href: rows.get(href) for href in expected}


VISIBLE_FAULTS = re.compile(
    r"Traceback|\b\w*Warning:|DeprecationWarning|FutureWarning|UserWarning|\b\w*Error:|"
    r"<Figure size|<Axes:|<matplotlib\."
)


@pytest.mark.parametrize(("dataset", "page"), ALL_PAGES)
def test_page_shows_no_code_warning_or_traceback(visits, dataset, page):
    seen = visits(dataset, page)
    assert (0, 0) == (seen.facts["codeInputs"], seen.facts["rawOutputs"])
    assert [] == VISIBLE_FAULTS.findall(seen.text)


@pytest.mark.parametrize(("dataset", "page"), ALL_PAGES)
def test_page_holds_no_script_or_injected_element(visits, dataset, page):
    facts = visits(dataset, page).facts
    assert (0, 0) == (facts["scripts"], facts["imagesWithSrcX"])
    assert [] == facts["eventHandlerAttributes"]


@pytest.mark.parametrize(("dataset", "page"), REPORTS)
def test_report_title_and_manager_names_are_shown_as_written(visits, dataset, page):
    seen = visits(dataset, page)
    department = {"monthly": MONTHLY[0], "quarterly": DATASETS[dataset].quarterly}.get(page)
    name = _department_name(dataset, department) if department else COMPANY
    if page == "monthly":
        title = f"{name}: monthly KPI report, {pd.Period(PERIOD, 'M'):%B %Y}"
    else:
        title = f"{name}: quarterly KPI verification, {QUARTER}"
    assert title == seen.facts["reportTitle"]
    if department:
        managers = _manager_names(dataset, department)
        assert [] == [manager for manager in managers if manager not in seen.text]


@pytest.mark.parametrize("page", ["index", "monthly", "company"])
def test_hostile_text_is_shown_literally(visits, page):
    text = visits("hostile", page).text
    if page == "index":
        expected = [_department_name("hostile", d) for d in MONTHLY]
        assert {"<script>alert(1)</script>", "<img src=x onerror=alert(2)>"} == set(expected)
    else:
        expected = list(HOSTILE_TEXTS)
    assert [] == [hostile for hostile in expected if hostile not in text]


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert b"\x89PNG\r\n\x1a\n" == header[:8]
    width, height = struct.unpack(">II", header[16:24])
    return width, height


@pytest.mark.parametrize(("dataset", "page"), ALL_PAGES)
def test_full_page_screenshot_is_saved(visits, dataset, page):
    seen = visits(dataset, page)
    assert SCREENSHOTS / dataset / f"{page}.png" == seen.screenshot
    width, height = _png_size(seen.screenshot)
    assert 1280 == width
    assert height >= 900
    assert (height > 900) or page == "index"  # a report is longer than the 900 px screen


BAD_PAGE = """<!DOCTYPE html><html><head><title>bad</title></head><body>
<nav class="kpi-toc"><a href="#listed">listed</a><a href="#nowhere">nowhere</a></nav>
<h2 id="listed">Listed</h2><h2 id="unlisted">Unlisted</h2>
<img src="http://evil.example/pixel.png"><img src="x" onerror="alert(2)">
<pre>Traceback (most recent call last):
ValueError: boom</pre>
<script>console.error("broken"); alert(1); missingFunction();</script>
</body></html>"""


def test_the_checks_catch_a_page_that_fails_every_one_of_them(browser, tmp_path):
    page_file = tmp_path / "bad.html"
    page_file.write_text(BAD_PAGE, encoding="utf-8")
    seen = visit(browser, page_file, tmp_path / "bad.png")
    assert ["alert: 1", "alert: 2"] == sorted(seen.dialogs)
    assert "broken" in seen.console_errors
    assert ["missingFunction is not defined"] == [e.split(": ")[-1] for e in seen.page_errors]
    assert {"http://evil.example/pixel.png", (tmp_path / "x").as_uri()} == set(seen.blocked)
    facts = seen.facts
    assert [False, False] == [image["loaded"] for image in facts["images"]]
    assert (["#nowhere"], ["listed", "unlisted"]) == (facts["brokenTocLinks"], facts["headingIds"])
    assert (1, 1, ["img[onerror]"]) == (
        facts["scripts"],
        facts["imagesWithSrcX"],
        facts["eventHandlerAttributes"],
    )
    assert ["Traceback", "ValueError:"] == VISIBLE_FAULTS.findall(seen.text)


@pytest.mark.parametrize("dataset", DATASETS)
def test_index_shows_each_batch_manifest_when_opened(browser, reports, dataset):
    page = browser.new_page()
    try:
        page.route(
            "**/*",
            lambda route: (
                route.continue_() if route.request.url.startswith("file:") else route.abort()
            ),
        )
        page.goto((reports[dataset] / "index.html").resolve().as_uri())
        summaries = page.locator("details.kpi-manifest summary")
        assert 2 == summaries.count()  # the monthly and the quarterly batch
        assert "Data fingerprint" not in page.evaluate("() => document.body.innerText")
        for i in range(2):
            summaries.nth(i).click()
        text = page.evaluate("() => document.body.innerText")
    finally:
        page.close()
    assert "2 of 2 report(s) written" in text  # north and south; the department and the company
    for item in ("Data fingerprint", "Version of kpilib", "Setting timeout", "Failed at"):
        assert 2 == text.count(item), item


def test_an_error_page_shows_hostile_error_text_literally(browser, tmp_path):
    message = f"Cell 7 (`x`): ValueError: unknown client {HOSTILE_TEXTS[0]} {HOSTILE_TEXTS[1]}"
    page_file = tmp_path / "north.error.html"
    write_error_page(
        page_file,
        title=HOSTILE_TEXTS[0],
        step="execute",
        error=message,
        previous=tmp_path / "north.html",
    )
    seen = visit(browser, page_file, SCREENSHOTS / "error" / "north.error.png")
    assert ([], [], []) == (seen.dialogs, seen.page_errors, seen.blocked)
    assert 0 == seen.facts["scripts"]
    assert message in seen.text and "There is no earlier report" in seen.text
