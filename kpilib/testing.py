"""Small, exact CRM fixtures, hostile CRM text and scratch database schemas shared by the tests,
docs, notebook test and benchmarks."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import nbformat
import pandas as pd
import sqlalchemy as sa

from kpilib.database import engine_for
from kpilib.schemas import CRM
from kpilib.validation import validate_tables


def vasily_valery_tables() -> dict[str, pd.DataFrame]:
    """The source documents' example: equal revenue, different net profit.

    Vasily sold 400,000 RUB with cost price 150,000 and 100 technical hours (at 1,500 RUB/h: net
    profit 100,000); Valery sold 400,000 with cost price 150,000 and no extra hours (net profit
    250,000). Both deals closed in March 2025, the last on the 31st, so March is a complete month.
    """
    managers = pd.DataFrame(
        {
            "manager_id": ["vasily", "valery"],
            "department_id": ["sales", "sales"],
            "name": ["Vasily", "Valery"],
        }
    )
    deals = pd.DataFrame(
        {
            "deal_id": ["1", "2"],
            "manager_id": ["vasily", "valery"],
            "stage": ["won", "won"],
            "created_on": ["2025-03-03", "2025-03-05"],
            "closed_on": ["2025-03-20", "2025-03-31"],
            "amount": ["400000", "400000"],
            "cost_price": ["150000", "150000"],
            "extra_hours": ["100", "0"],
        }
    )
    return {"managers": managers, "deals": deals}


def vasily_valery() -> CRM:
    """The documents' example as a validated data source."""
    return validate_tables(vasily_valery_tables(), source="vasily-valery example")


_LONG_NAME = "Amalgamated " + " ".join(f"Regional-Trading-House-{n:02d}" for n in range(1, 13))

HOSTILE_TEXTS: tuple[str, ...] = (
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(2)>",
    'Dmitry "Dima" O\'Neil',
    _LONG_NAME,
    "شركة النور للتجارة",
    'חברת האור בע"מ',
    "ООО «Ромашка» Ёлкин",
    '=HYPERLINK("http://evil.example","click")',
    "+cmd|' /C calc'!A0",
    "@SUM(1+1)",
    "-2+3",
)
"""CRM text that a report must show literally and never act on.

Markup and script, both quotes, a name of a few hundred characters, right-to-left (Arabic and
Hebrew) and Cyrillic text, and spreadsheet formulas (``=``, ``+``, ``@`` and ``-`` first).
"""

HOSTILE_OFFSETS: dict[str, int] = {"departments": 0, "managers": 0, "products": 6, "clients": 0}
"""Where each table's names start in `HOSTILE_TEXTS`.

Row ``i`` of a table takes text ``(offset + i) % len(HOSTILE_TEXTS)``. Products start at the
formulas, so one sales department's managers (six in the demo) and the products together carry
every hostile text.
"""


def _hostile_names(frame: pd.DataFrame, id_column: str, offset: int) -> list[str]:
    """A hostile name per row: the bare text for the first pass, then text + the original name."""
    names = []
    for row, (key, original) in enumerate(zip(frame[id_column], frame["name"], strict=True)):
        text = HOSTILE_TEXTS[(offset + row) % len(HOSTILE_TEXTS)]
        if row < len(HOSTILE_TEXTS):
            names.append(text)
        else:
            kept = original if isinstance(original, str) and original else str(key)
            names.append(f"{text} {kept}")
    return names


def hostile_tables(tables: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Copies of CRM tables whose department, manager, product and client names are hostile.

    Every ``name`` of the ``departments``, ``managers``, ``products`` and ``clients`` tables is
    replaced with a text of `HOSTILE_TEXTS` (see `HOSTILE_OFFSETS` for which row gets which). The
    first ``len(HOSTILE_TEXTS)`` rows of a table get the bare text; later rows get the text followed
    by a space and the row's original name (its id where the name is missing), so names that were
    distinct stay distinct. Identifiers and every other column are unchanged (they name files and
    join tables); tables without a ``name`` column, and other tables, are copied as they are.
    Write the result as Parquet (``kpilib.io.write_tables(..., fmt="parquet")``) to keep the
    formulas exactly as they are.

    Args:
        tables: CRM tables keyed by table name, such as ``kpilib.demo.generate``'s.

    Returns:
        New tables keyed by the same names; the inputs are not modified.
    """
    ids = {"departments": "department_id", "managers": "manager_id"}
    ids |= {"products": "product_id", "clients": "client_id"}
    result = {}
    for table, frame in tables.items():
        copy = frame.copy()
        if table in HOSTILE_OFFSETS and {"name", ids[table]} <= set(copy.columns):
            names = _hostile_names(copy, ids[table], HOSTILE_OFFSETS[table])
            copy["name"] = pd.Series(names, index=copy.index, dtype="str")
        result[table] = copy
    return result


def small_notebook(path: Path, parameters: str, *sources: str) -> Path:
    """Write a notebook for the ``python3`` kernel: a parameters cell, then a code cell per
    source; for tests of how notebooks are run, without the kit's report notebooks."""
    cells = [nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]})]
    cells += [nbformat.v4.new_code_cell(source) for source in sources]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    return path


@contextmanager
def scratch_schema(url: str, prefix: str = "kpi_test") -> Iterator[str]:
    """A new schema (``<prefix>_<8 hex digits>``) on the database server at `url`, dropped with
    everything in it when the block ends."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    engine = engine_for(url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.schema.CreateSchema(name))
        yield name
    finally:
        with engine.begin() as connection:
            connection.execute(sa.schema.DropSchema(name, cascade=True))
        engine.dispose()
