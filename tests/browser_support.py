"""Opening a rendered page in headless Chromium, offline, and recording what a reader would meet.

The browser is Debian's Chromium (``/usr/bin/chromium``, or ``$KPI_CHROMIUM``) driven by Playwright;
no browser is ever downloaded. `visit` loads one page from its file and records every console error,
page error, dialog and request (a request for anything but the page's own file or a ``data:`` URL
is aborted and recorded), the page's structure as the DOM has it, its visible text and a full-page
screenshot.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, ConsoleMessage, Dialog, Route

from kpilib.pdf import CHROMIUM_ENV, OFFLINE_FLAGS

DEFAULT_CHROMIUM = Path("/usr/bin/chromium")
# The kit's own offline flags (the PDF printer's); Playwright adds its headless mode itself.
OFFLINE_ARGS = tuple(flag for flag in OFFLINE_FLAGS if flag != "--headless")
INSTALL_HINT = (
    "install Debian's Chromium with `apt-get install -y chromium` (or `bash .ci/ensure-chromium`), "
    f"or set {CHROMIUM_ENV} to a Chromium executable"
)


def chromium_path() -> Path:
    """The Chromium to drive: ``$KPI_CHROMIUM`` when set, else ``/usr/bin/chromium``."""
    given = os.environ.get(CHROMIUM_ENV)
    return Path(given) if given else DEFAULT_CHROMIUM


def missing_chromium_reason() -> str | None:
    """Why the browser tests cannot run here, or None when Chromium is present."""
    path = chromium_path()
    if path.is_file() and os.access(path, os.X_OK):
        return None
    return f"{path} is missing: {INSTALL_HINT}"


# Everything the assertions need from the DOM, read in one evaluation after the page has loaded.
FACTS_JS = """
() => {
  const all = [...document.querySelectorAll('*')];
  const sections = [];
  for (const node of document.querySelectorAll('h2, table, img')) {
    if (node.tagName === 'H2') {
      sections.push({heading: node.innerText.trim(), tables: 0, images: 0});
    } else if (sections.length && !node.closest('nav')) {
      sections[sections.length - 1][node.tagName === 'IMG' ? 'images' : 'tables'] += 1;
    }
  }
  const tocLinks = [...document.querySelectorAll('nav.kpi-toc a[href^="#"]')]
    .map(a => a.getAttribute('href'));
  return {
    title: document.title,
    reportTitle: document.querySelector('.kpi-title')?.innerText ?? null,
    headings: [...document.querySelectorAll('h2')].map(h => h.innerText.trim()),
    headingIds: [...document.querySelectorAll('h2')].map(h => h.id),
    sections: sections,
    kpiTables: document.querySelectorAll('table.kpi-table').length,
    findings: [...document.querySelectorAll('ul.kpi-findings li')].map(li => li.innerText),
    images: [...document.images].map(img => ({
      src: img.getAttribute('src')?.slice(0, 40) ?? null,
      loaded: img.complete && img.naturalWidth > 0,
    })),
    tocLinks: tocLinks,
    brokenTocLinks: tocLinks.filter(
      href => !document.getElementById(decodeURIComponent(href.slice(1)))),
    links: [...document.querySelectorAll('a[href]')].map(a => ({
      href: a.getAttribute('href'),
      row: a.closest('tr')?.cells[0]?.innerText ?? null,
    })),
    scripts: document.querySelectorAll('script').length,
    imagesWithSrcX: document.querySelectorAll('img[src="x"]').length,
    eventHandlerAttributes: all.flatMap(element => [...element.attributes]
      .filter(attribute => attribute.name.toLowerCase().startsWith('on'))
      .map(attribute => `${element.tagName.toLowerCase()}[${attribute.name}]`)),
    codeInputs: document.querySelectorAll(
      '.jp-CodeCell .jp-InputArea, .jp-CodeCell:not(.jp-mod-noInput), .jp-Editor, .CodeMirror'
    ).length,
    rawOutputs: document.querySelectorAll(
      '[data-mime-type="application/vnd.jupyter.stderr"], [data-mime-type="text/plain"], '
      + '.jp-OutputArea-error'
    ).length,
  };
}
"""


@dataclass
class Visit:
    """What one page showed and did when it was opened in the browser."""

    url: str
    requests: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    text: str = ""
    screenshot: Path | None = None


def visit(browser: Browser, page_file: Path, screenshot: Path) -> Visit:
    """Open `page_file` offline, record what happened, save a full-page PNG at `screenshot`."""
    url = page_file.resolve().as_uri()
    seen = Visit(url=url)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            seen.console_errors.append(message.text)

    def on_dialog(dialog: Dialog) -> None:
        seen.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def on_route(route: Route) -> None:
        requested = route.request.url
        seen.requests.append(requested)
        if requested == url or requested.startswith("data:"):
            route.continue_()
        else:
            seen.blocked.append(requested)
            route.abort()

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.on("console", on_console)
        page.on("pageerror", lambda error: seen.page_errors.append(str(error)))
        page.on("dialog", on_dialog)
        page.route("**/*", on_route)
        page.goto(url, wait_until="load")
        seen.facts = page.evaluate(FACTS_JS)
        seen.text = page.evaluate("() => document.body.innerText")
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
        seen.screenshot = screenshot
    finally:
        context.close()
    return seen
