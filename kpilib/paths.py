"""Where the kit's own folders are: derived from the package's location, no side effects."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
PARAMS = ROOT / "params"
DEMO_DATA = ROOT / "data" / "demo"
REPORTS = ROOT / "reports"
MONTHLY_NOTEBOOK = NOTEBOOKS / "monthly_fine_tuning.ipynb"
QUARTERLY_NOTEBOOK = NOTEBOOKS / "quarterly_verification.ipynb"
COMPANY_REPORT = "company"  # the company-wide quarterly report's id and file name
DEFAULT_SCHEME = PARAMS / "schemes" / "sales_funnel.yaml"


def resolve(path: str | Path) -> Path:
    """A path from parameters: absolute as given, relative ones against the kit's folder."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else ROOT / path
