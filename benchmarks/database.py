"""Database benchmark: should reports on a cluster read PostgreSQL themselves, or the batch's copy?

A batch over a database reads it once and hands its reports a copy (a DuckDB snapshot store in the
reports folder, `kpilib.sources.read_once`); reports on a Dask cluster read that copy whole. The
alternative is to push the reports' reads down to the database: each report reads only its
department's rows (`kpilib.database.read_database` with ``department``, the filter running in
the database, as ``kpi score`` does). That filter keeps what the department's scores need: its
deals, every deal of its clients (a client's first won deal decides new business) and the rows
that date the source. A whole monthly report needs more (the service departments' company-wide
values pool every delivery and request), so (b) below is the least a pushed-down read could cost.

One run of this script:

1. generates demo CRM data (``kpilib.demo``) of ``--departments`` sales departments and
   ``--deal-rate`` times the usual deals, loads it into a new schema of the PostgreSQL server at
   ``--url`` (dropped at the end) and into a DuckDB snapshot store in a temporary folder;
2. in ``--rounds`` interleaved rounds, times for every department (a) reading the whole database
   and validating it, (b) reading and validating the department's rows only, and (c) reading the
   batch's copy whole, as a report on a Dask worker does, and counts the rows each read fetched;
3. prints per report the median wall and CPU time of (a), (b) and (c) and the rows, and the ratios
   of the wall times (a)/(b) and (b)/(c) (each round's, and their median); the last line states
   (b)/(c): how many times longer a report would spend reading with the filter pushed down than
   reading the copy.

The reads run one at a time in this process; CPU time is the process's own (the database server's
work is in the wall time only).

Run it as ``.venv/bin/python benchmarks/database.py --help``; it needs a PostgreSQL server
(default ``postgresql://postgres@127.0.0.1:5432/test``) and says so when none answers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import sqlalchemy as sa

from kpilib import snapshots
from kpilib.database import read_database, write_database
from kpilib.demo import DemoConfig, generate
from kpilib.errors import KpiError
from kpilib.metrics import sales_departments
from kpilib.schemas import CRM
from kpilib.testing import scratch_schema
from kpilib.validation import validate_tables

TABLES = ("deals", "leads", "requests", "deliveries", "plans")


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--departments", type=int, default=12, help="sales departments")
    parser.add_argument("--deal-rate", type=float, default=1.0, help="factor on the deals")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    return parser.parse_args(argv)


def _timed(read: Callable[[], CRM]) -> tuple[float, float, CRM]:
    wall, cpu = time.perf_counter(), time.process_time()
    crm = read()
    return time.perf_counter() - wall, time.process_time() - cpu, crm


def _rows(crm: CRM) -> int:
    return sum(len(getattr(crm, name)) for name in TABLES if crm.has(name))


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    config = DemoConfig(sales_departments=args.departments, deal_rate=args.deal_rate)
    crm = validate_tables(generate(config), source="demo")
    tables = crm.tables()
    print(
        f"demo data: {args.departments} sales departments, deal rate {args.deal_rate:g}: "
        + ", ".join(f"{name} {len(tables[name]):,}" for name in TABLES if name in tables)
    )
    with ExitStack() as stack:
        try:
            schema = stack.enter_context(scratch_schema(args.url, "kpi_bench"))
        except (sa.exc.OperationalError, KpiError) as error:
            print(f"no PostgreSQL server answers at {args.url}: {error}", file=sys.stderr)
            return 2
        started = time.perf_counter()
        write_database(tables, args.url, schema=schema)
        print(f"loaded into {args.url} schema {schema} in {time.perf_counter() - started:.1f} s")
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        store = folder / "copy.duckdb"
        copy = snapshots.snapshot_ref(store, snapshots.ingest(store, crm, "batch").snapshot)
        joined = "&" if "?" in args.url else "?"
        return _compare(args, f"{args.url}{joined}options=-csearch_path%3D{schema}", copy)


def _compare(args: argparse.Namespace, url: str, copy: str) -> int:
    store, ref = snapshots.parse_ref(copy)
    departments = list(sales_departments(read_database(url))["department_id"])
    reads: dict[str, Callable[[str], Callable[[], CRM]]] = {
        "(a) the whole database, read and validated": lambda _d: lambda: read_database(url),
        "(b) its department's rows, read and validated": lambda d: (
            lambda: read_database(url, department=d)
        ),
        "(c) the batch's copy, read whole": lambda _d: (
            lambda: snapshots.read_snapshot(Path(store), ref)
        ),
    }
    times: dict[str, list[tuple[float, float]]] = {label: [] for label in reads}
    rows: dict[str, list[int]] = {label: [] for label in reads}
    rounds: list[dict[str, float]] = []
    for _ in range(args.rounds):
        spent = dict.fromkeys(reads, 0.0)
        for department in departments:
            for label, read in reads.items():
                wall, cpu, crm = _timed(read(department))
                times[label].append((wall, cpu))
                rows[label].append(_rows(crm))
                spent[label] += wall
        rounds.append(spent)
    print(f"per report, median of {args.rounds} rounds x {len(departments)} departments:")
    for label in reads:
        wall = statistics.median(t[0] for t in times[label])
        cpu = statistics.median(t[1] for t in times[label])
        fetched = statistics.median(rows[label])
        print(f"  {label}: {wall:.3f} s wall, {cpu:.3f} s CPU, {fetched:,.0f} rows")
    whole, own, copied = list(reads)
    filtering = [spent[whole] / spent[own] for spent in rounds]
    pushed = [spent[own] / spent[copied] for spent in rounds]
    print(
        "the whole database (a) against the department's rows (b): "
        f"{statistics.median(filtering):.2f}x the time (rounds "
        + ", ".join(f"{ratio:.2f}x" for ratio in filtering)
        + ")"
    )
    print(
        "headline: a report's read pushed down to the database (b) takes "
        f"{statistics.median(pushed):.1f}x as long as reading the batch's copy (c) (rounds "
        + ", ".join(f"{ratio:.1f}x" for ratio in pushed)
        + ")"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
