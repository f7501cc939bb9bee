"""Print a rendered report to PDF with a local headless Chromium (``kpi run ... --pdf``).

The page is printed from the file itself, offline: Chromium starts with background networking,
updates and sync switched off, in a fresh profile that is removed afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from kpilib.errors import ReportError

__all__ = ["find_chromium", "print_pdf"]

CHROMIUM_ENV = "KPI_CHROMIUM"
_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Flags for a machine with no screen and no network: no sandbox (root), no GPU, nothing fetched.
OFFLINE_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
)


def find_chromium() -> Path:
    """The Chromium to print with: ``$KPI_CHROMIUM``, else the first Chromium on the PATH.

    Raises:
        ReportError: None is found (the message says how to install one or point to it).
    """
    given = os.environ.get(CHROMIUM_ENV)
    if given:
        if not Path(given).is_file():
            raise ReportError(f"{CHROMIUM_ENV}={given} is not a file; point it at a Chromium.")
        return Path(given)
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return Path(found)
    raise ReportError(
        "PDF printing needs Chromium and none was found (looked for "
        f"{', '.join(_CANDIDATES)} on the PATH); install it (Debian: apt-get install chromium) "
        f"or set {CHROMIUM_ENV} to its path."
    )


def print_pdf(html: Path, pdf: Path, *, timeout: float = 120) -> None:
    """Print `html` to `pdf` (A4, the page's print stylesheet, no browser header or footer).

    Raises:
        ReportError: Chromium is missing, fails, runs past `timeout` or writes no PDF.
    """
    chromium = find_chromium()
    pdf.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kpi-chromium-") as profile:
        command = [
            str(chromium),
            *OFFLINE_FLAGS,
            f"--user-data-dir={profile}",
            "--no-pdf-header-footer",
            f"--print-to-pdf={pdf.resolve()}",
            html.resolve().as_uri(),
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise ReportError(f"Chromium did not print {html.name} within {timeout:g} s") from exc
    if done.returncode != 0 or not pdf.is_file() or pdf.stat().st_size == 0:
        detail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise ReportError(
            f"Chromium could not print {html.name} (exit code {done.returncode}): "
            + " / ".join(detail)
        )
