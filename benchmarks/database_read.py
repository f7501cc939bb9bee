"""Reading a whole database at scale: PostgreSQL as columns, PostgreSQL row by row, and files.

A batch on a database reads it whole, once (`kpilib.sources.read_once`), and so do ``kpi validate``
and ``kpi ingest``. On PostgreSQL the contract's tables arrive as columns (Arrow's ADBC driver,
`kpilib.database._read_columns`) where every column has a type that allows it, and row by row
through psycopg otherwise. One run of this script:

1. generates demo CRM data (``kpilib.demo``) of ``--departments`` sales departments and
   ``--deal-rate`` times the usual deals (32 gives about a million deals at 12 departments), and
   writes it as a Parquet folder, as a snapshot store and into a new schema of the PostgreSQL
   server at ``--url`` (dropped at the end);
2. in ``--rounds`` interleaved rounds, reads and validates the data from each (``open_source``),
   every read in a new process so that its peak memory is its own: (a) PostgreSQL as columns,
   (b) PostgreSQL row by row (the columnar read switched off), (c) the Parquet folder, (d) the
   snapshot store;
3. prints for each the median wall time, CPU time and peak resident memory, the validated data's
   size in memory, and the ratio of the wall times (b)/(a) (each round's and their median) on the
   last line.

Run it as ``.venv/bin/python benchmarks/database_read.py --help``; it needs a PostgreSQL server
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
from contextlib import ExitStack
from pathlib import Path

import sqlalchemy as sa

from kpilib import snapshots
from kpilib.database import write_database
from kpilib.demo import DemoConfig, generate
from kpilib.io import write_tables
from kpilib.sources import open_source
from kpilib.testing import scratch_schema

# One read, in a process of its own; `row_by_row` switches the columnar read off.
READ = """
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


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--departments", type=int, default=12, help="sales departments")
    parser.add_argument("--deal-rate", type=float, default=8.0, help="factor on the deals")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
    return parser.parse_args(argv)


def _read(data: str, row_by_row: bool = False) -> dict[str, float]:
    mode = "rows" if row_by_row else "columns"
    done = subprocess.run(
        [sys.executable, "-c", READ, data, mode], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    try:
        with sa.create_engine(args.url.replace("postgresql://", "postgresql+psycopg://")).connect():
            pass
    except sa.exc.OperationalError as error:
        print(f"No PostgreSQL server at {args.url}: {' '.join(str(error.orig).split())}")
        return 2
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kpi-dbread-")))
        schema = stack.enter_context(scratch_schema(args.url, "kpi_bench"))
        started = time.monotonic()
        tables = generate(DemoConfig(sales_departments=args.departments, deal_rate=args.deal_rate))
        counts = ", ".join(f"{name} {len(frame):,}" for name, frame in tables.items())
        print(f"data: {args.departments} departments, deal rate {args.deal_rate:g}: {counts}")
        write_tables(tables, folder / "parquet", "parquet")
        store = folder / "store.duckdb"
        snapshots.ingest(store, open_source(str(folder / "parquet")), "bench")
        write_database(tables, args.url, schema=schema)
        print(
            f"written as Parquet, a snapshot store and schema {schema} in "
            f"{time.monotonic() - started:.1f} s"
        )
        url = f"{args.url}?options=-csearch_path%3D{schema}"
        reads = {
            "(a) PostgreSQL, as columns": lambda: _read(url),
            "(b) PostgreSQL, row by row": lambda: _read(url, row_by_row=True),
            "(c) the Parquet folder": lambda: _read(str(folder / "parquet")),
            "(d) the snapshot store": lambda: _read(str(store)),
        }
        results: dict[str, list[dict[str, float]]] = {name: [] for name in reads}
        for round_ in range(1, args.rounds + 1):
            for name, read in reads.items():
                results[name].append(read())
                figures = results[name][-1]
                print(
                    f"round {round_}: {name}: {figures['wall']:.1f} s wall, "
                    f"{figures['cpu']:.1f} s CPU, peak {figures['peak'] / 1e9:.2f} GB"
                )
        print()
        for name, runs in results.items():
            wall, cpu = (statistics.median(run[key] for run in runs) for key in ("wall", "cpu"))
            peak = statistics.median(run["peak"] for run in runs)
            print(
                f"{name}: {wall:.1f} s wall, {cpu:.1f} s CPU, peak {peak / 1e9:.2f} GB "
                f"({peak / runs[0]['data']:.1f}x the validated data's "
                f"{runs[0]['data'] / 1e9:.2f} GB, {runs[0]['rows']:,.0f} rows)"
            )
        ratios = [
            rows["wall"] / columns["wall"]
            for rows, columns in zip(
                results["(b) PostgreSQL, row by row"],
                results["(a) PostgreSQL, as columns"],
                strict=True,
            )
        ]
        shown = ", ".join(f"{ratio:.1f}x" for ratio in ratios)
        print(
            f"headline: reading PostgreSQL as columns (a) is {statistics.median(ratios):.1f}x "
            f"as fast as row by row (b) (rounds {shown})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
