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

With ``--whole`` the run compares whole reads instead, as a batch, ``kpi validate`` and ``kpi
ingest`` make them: it also writes the data as a Parquet folder, and in interleaved rounds reads
and validates (``open_source``) (a) PostgreSQL as columns (`kpilib.database._read_columns`), (b)
PostgreSQL row by row (the columnar read switched off), (c) the Parquet folder and (d) the
snapshot store, each read in a new process so that its peak memory (its ``VmHWM``) is its own; it
prints the median wall time, CPU time and peak memory of each, and on the last line the ratio of
the wall times (b)/(a). ``--deal-rate 32`` gives about a million deals at 12 departments.

Run it as ``.venv/bin/python benchmarks/database.py --help``; it needs a PostgreSQL server
(default ``postgresql://postgres@127.0.0.1:5432/test``) and says so when none answers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
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
from kpilib.io import write_tables
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
    parser.add_argument(
        "--whole", action="store_true", help="compare whole reads: columns, rows, files"
    )
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
        url = f"{args.url}{joined}options=-csearch_path%3D{schema}"
        if args.whole:
            write_tables(tables, folder / "parquet", "parquet")
            return _compare_whole(args, url, str(folder / "parquet"), copy)
        return _compare(args, url, copy)


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


# One whole read, in a process of its own; "rows" switches the columnar read off.
WHOLE_READ = """
import contextlib, json, sys, time
from unittest import mock
from kpilib import database
from kpilib.sources import open_source
def peak():  # this program's own high-water mark (getrusage's survives exec from the parent)
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
data, row_by_row = sys.argv[1], sys.argv[2] == "rows"
started, cpu = time.monotonic(), time.process_time()
off = mock.patch.object(database, "_columnar", return_value=False)
with off if row_by_row else contextlib.nullcontext():
    crm = open_source(data)
print(json.dumps({
    "wall": time.monotonic() - started,
    "cpu": time.process_time() - cpu,
    "peak": peak(),
    "data": int(sum(f.memory_usage(deep=True).sum() for f in crm.tables().values())),
    "rows": sum(len(f) for f in crm.tables().values()),
}))
"""


def _read_whole(data: str, row_by_row: bool = False) -> dict[str, float]:
    mode = "rows" if row_by_row else "columns"
    done = subprocess.run(
        [sys.executable, "-c", WHOLE_READ, data, mode], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _compare_whole(args: argparse.Namespace, url: str, parquet: str, copy: str) -> int:
    reads = {
        "(a) PostgreSQL, as columns": lambda: _read_whole(url),
        "(b) PostgreSQL, row by row": lambda: _read_whole(url, row_by_row=True),
        "(c) the Parquet folder": lambda: _read_whole(parquet),
        "(d) the snapshot store": lambda: _read_whole(copy),
    }
    results: dict[str, list[dict[str, float]]] = {label: [] for label in reads}
    for round_ in range(1, args.rounds + 1):
        for label, read in reads.items():
            results[label].append(read())
            done = results[label][-1]
            print(
                f"round {round_}: {label}: {done['wall']:.1f} s wall, {done['cpu']:.1f} s CPU, "
                f"peak {done['peak'] / 1e9:.2f} GB"
            )
    print(f"median of {args.rounds} rounds, each read in a process of its own:")
    for label, runs in results.items():
        wall, cpu, peak = (
            statistics.median(run[key] for run in runs) for key in ("wall", "cpu", "peak")
        )
        data = runs[0]["data"]
        print(
            f"  {label}: {wall:.1f} s wall, {cpu:.1f} s CPU, peak {peak / 1e9:.2f} GB "
            f"({peak / data:.1f}x the validated data's {data / 1e9:.2f} GB, "
            f"{runs[0]['rows']:,.0f} rows)"
        )
    columns, rows = results["(a) PostgreSQL, as columns"], results["(b) PostgreSQL, row by row"]
    ratios = [slow["wall"] / fast["wall"] for slow, fast in zip(rows, columns, strict=True)]
    print(
        f"headline: reading PostgreSQL as columns (a) is {statistics.median(ratios):.1f}x as "
        "fast as row by row (b) (rounds " + ", ".join(f"{r:.1f}x" for r in ratios) + ")"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
