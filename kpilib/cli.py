"""The ``kpi`` command line: demo data, validation, scoring, report batches, what-ifs and snapshots.

Errors in input or parameters end the command with a one-paragraph message and exit code 2; a
batch in which some reports failed finishes the others and exits with 1.
"""

from __future__ import annotations

import argparse
import atexit
import json
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from dask.system import cpu_count

from kpilib import kernels, paths, snapshots
from kpilib.database import is_database_url
from kpilib.demo import DemoConfig, generate
from kpilib.display import fmt_diff
from kpilib.errors import KpiError, ParamsError
from kpilib.io import write_csv, write_tables
from kpilib.metrics import first_month, sales_departments
from kpilib.params import effective_scheme, load_run_params, load_scheme, parse_overrides
from kpilib.pdf import find_chromium
from kpilib.periods import latest_complete_month, parse_month, resolve_period, resolve_quarter
from kpilib.progress import BatchProgress
from kpilib.runner import (
    DEFAULT_CELL_TIMEOUT,
    DEFAULT_TIMEOUT,
    batch_lock,
    batch_manifest,
    finish_batch,
    monthly_jobs,
    quarterly_jobs,
    run_jobs,
)
from kpilib.schemas import CRM, MODELS
from kpilib.scoring import score_period, scorecard_json
from kpilib.sources import open_source, pinned, read_once
from kpilib.tuning import whatif, whatif_table

log = logging.getLogger("kpi")
SCORE_COLUMNS = [
    "manager_id",
    "name",
    "department_id",
    "tier",
    "score",
    "coverage",
    "kpis_met",
    "kpis_with_data",
]
SCORE_METRICS = ["revenue", "cost_price", "extra_costs", "net_profit", "deals_won"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kpi", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="generate the demo CRM data")
    demo.add_argument("--out", type=Path, default=paths.DEMO_DATA, help="folder to write")
    demo.add_argument("--seed", type=int, default=DemoConfig.seed)
    demo.add_argument("--months", type=int, default=DemoConfig.months)
    demo.add_argument("--format", choices=["csv", "parquet"], default="csv")

    validate = commands.add_parser("validate", help="check a data source against the contract")
    validate.add_argument("data", help=SOURCE_HELP)
    _mapping(validate)

    score = commands.add_parser("score", help="score managers for a month")
    score.add_argument("data", help=SOURCE_HELP)
    _mapping(score)
    _common(score)
    score.add_argument("--department", help="one department id (default: all)")
    score.add_argument("--format", choices=["table", "csv", "json"], default="table")

    run = commands.add_parser("run", help="run a batch of reports")
    run.add_argument("kind", choices=["monthly", "quarterly"])
    run.add_argument("--data", default=str(paths.DEMO_DATA), help=SOURCE_HELP)
    _mapping(run)
    _common(run, "YYYY-MM for monthly, YYYYQn for quarterly (default: the latest complete one)")
    run.add_argument("--department", action="append", help="department id (repeatable)")
    run.add_argument("--out", type=Path, default=paths.REPORTS)
    run.add_argument(
        "--jobs",
        type=int,
        default=cores(),
        help=f"reports run at once (default: the cores this process may use, here {cores()})",
    )
    run.add_argument(
        "--timeout",
        type=positive_seconds,
        default=DEFAULT_TIMEOUT,
        help=f"seconds one report may take before it is stopped (default {DEFAULT_TIMEOUT})",
    )
    run.add_argument(
        "--cell-timeout",
        type=positive_seconds,
        default=DEFAULT_CELL_TIMEOUT,
        help=f"seconds one notebook cell may run (default {DEFAULT_CELL_TIMEOUT})",
    )
    run.add_argument(
        "--pdf", action="store_true", help="also print each report to PDF with Chromium"
    )
    run.add_argument(
        "--executor",
        type=dask_address,
        metavar="dask://HOST:PORT",
        help="run the reports on the Dask cluster whose scheduler is there (default: here)",
    )

    whatif = commands.add_parser(
        "whatif", help="re-score past months under a proposed scheme and compare"
    )
    whatif.add_argument("--scheme", type=Path, required=True, help="the proposed scheme file")
    whatif.add_argument("--from", dest="first", required=True, help="first month, YYYY-MM")
    whatif.add_argument("--to", dest="last", required=True, help="last month, YYYY-MM")
    whatif.add_argument("--data", default=str(paths.DEMO_DATA), help=SOURCE_HELP)
    _mapping(whatif)
    whatif.add_argument("--department", help="one department id (default: all)")
    whatif.add_argument("--params", type=Path, default=paths.PARAMS, help="parameters folder")
    whatif.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a parameter"
    )
    whatif.add_argument("--format", choices=["table", "json"], default="table")

    ingest = commands.add_parser(
        "ingest", help="validate a data source and keep it as a new snapshot in the store"
    )
    ingest.add_argument("data", help=SOURCE_HELP)
    _mapping(ingest)
    _store(ingest)
    ingest.add_argument(
        "--label", help="the snapshot's name (default: the data's latest complete month)"
    )

    listing = commands.add_parser("snapshots", help="list the snapshots in the store")
    _store(listing)

    diff = commands.add_parser("diff", help="what changed in the CRM between two snapshots")
    diff.add_argument("old", nargs="?", help="id or label (default: the one before NEW)")
    diff.add_argument("new", nargs="?", help="id or label (default: the latest)")
    _store(diff)
    diff.add_argument("--limit", type=int, default=10, help="deals listed per kind of change")
    return parser


SOURCE_HELP = (
    "data source: a folder of CSV/Parquet/Excel tables, a workbook, a database URL "
    "(postgresql://user@host/db) or a snapshot store (data/kpi.duckdb, data/kpi.duckdb#ID)"
)


def _mapping(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mapping",
        type=Path,
        help="YAML mapping from the CRM export's tables and columns to the contract",
    )


def _store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        type=Path,
        default=snapshots.DEFAULT_STORE,
        help="the snapshot store (default: data/kpi.duckdb in the kit's folder)",
    )


def _open(args: argparse.Namespace, **filters: object) -> tuple[str, CRM]:
    """The command's data source, named exactly, and its validated tables."""
    data = pinned(args.data)
    return data, open_source(data, _mapping_file(args), **filters)


def _mapping_file(args: argparse.Namespace) -> Path | None:
    return args.mapping.expanduser().resolve() if args.mapping else None


def _common(
    parser: argparse.ArgumentParser,
    period_help: str = "YYYY-MM (default: latest complete month in the data)",
) -> None:
    parser.add_argument("--period", help=period_help)
    parser.add_argument("--params", type=Path, default=paths.PARAMS, help="parameters folder")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a parameter (repeatable)",
    )


def _demo(args: argparse.Namespace) -> int:
    config = DemoConfig(seed=args.seed, months=args.months)
    written = write_tables(generate(config), args.out, args.format)
    log.info(
        "Demo data (seed %s, %s months) written to %s: %s",
        args.seed,
        args.months,
        args.out,
        ", ".join(p.name for p in written),
    )
    return 0


def _validate(args: argparse.Namespace) -> int:
    _, crm = _open(args)
    lines = [f"Data source {crm.source} is valid (fingerprint {crm.fingerprint})."]
    for table in MODELS:
        frame = getattr(crm, table)
        lines.append(
            f"  {table:<12} {'absent: no data' if frame is None else f'{len(frame):,} rows'}"
        )
    lines += [f"  note: {note}" for note in crm.notes]
    lines.append(f"Latest complete month: {latest_complete_month(crm):%Y-%m}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _score(args: argparse.Namespace) -> int:
    run = load_run_params(args.params, args.department, parse_overrides(args.set))
    scheme = effective_scheme(args.params, run)
    # A database sends only what this month and department need.
    until = parse_month(args.period) if args.period else None
    data, crm = _open(args, until=until, department=args.department)
    if is_database_url(data) and (until or args.department) and not args.mapping:
        log.info(
            "Read from the database only what this month and department need; those rows "
            "were validated. `kpi validate` checks the whole database."
        )
    if args.department and args.department not in set(sales_departments(crm)["department_id"]):
        raise ParamsError(
            f"Department {args.department!r} is not a sales department of {crm.source}."
        )
    card = score_period(crm, scheme, resolve_period(args.period, crm), args.department)
    if args.format == "json":
        sys.stdout.write(json.dumps(scorecard_json(card), indent=2, ensure_ascii=False) + "\n")
        return 0
    table = (
        card.managers[SCORE_COLUMNS]
        .merge(card.manager_metrics[SCORE_METRICS], left_on="manager_id", right_index=True)
        .astype({"kpis_met": "Int64", "kpis_with_data": "Int64", "deals_won": "Int64"})
    )
    if args.format == "csv":
        write_csv(table, sys.stdout)
    else:
        with pd.option_context(
            "display.width",
            200,
            "display.max_columns",
            20,
            "display.float_format",
            "{:,.2f}".format,
        ):
            sys.stdout.write(f"Period {card.period:%Y-%m}, scheme {scheme.name!r}\n")
            sys.stdout.write(table.to_string(index=False) + "\n")
    return 0


def dask_address(text: str) -> str:
    """A command-line Dask scheduler address, checked before any data is read."""
    from kpilib.cluster import scheduler_address

    try:
        scheduler_address(text)
    except ParamsError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def cores() -> int:
    """The CPU cores this process may use, as Dask counts them: the machine's, its CPU affinity
    and its container's CPU quota, whichever is least (a Kubernetes CPU limit of 2 on a 64-core
    node is 2 cores, not 64 reports at once)."""
    return cpu_count()


def positive_seconds(text: str) -> int:
    """A command-line number of seconds, at least 1."""
    try:
        seconds = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds") from None
    if seconds < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give at least 1 second")
    return seconds


def _run(args: argparse.Namespace) -> int:
    if args.pdf:
        find_chromium()  # no PDF printer: say so before any report runs
    # A scheduler stopping the batch (SIGTERM) stops its workers and releases the lock too.
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        # What is in memory now (the kit and the libraries) lives as long as the batch: while
        # the batch reads and prepares the data, the garbage collector need not walk it again.
        with batch_lock(args.out), kernels.frozen_heap():
            return _run_batch(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _run_batch(args: argparse.Namespace) -> int:
    started = datetime.now(UTC)
    data, crm = _open(args)
    quarterly = args.kind == "quarterly"
    period = resolve_quarter(args.period, crm) if quarterly else resolve_period(args.period, crm)
    label = str(period) if quarterly else f"{period:%Y-%m}"
    known = list(sales_departments(crm)["department_id"])
    chosen = list(dict.fromkeys(args.department or known))  # each department once
    unknown = [d for d in chosen if d not in known]
    if unknown:
        raise ParamsError(
            f"Unknown department(s) {', '.join(unknown)}; sales departments in "
            f"{crm.source}: {', '.join(known)}."
        )
    with read_once(data, crm, args.out, _mapping_file(args)) as (reports_data, mapping):
        return _run_reports(args, started, crm, period, label, chosen, reports_data, mapping)


def _run_reports(
    args: argparse.Namespace,
    started: datetime,
    crm: CRM,
    period: pd.Period,
    label: str,
    chosen: list[str],
    data: str,
    mapping: Path | None,
) -> int:
    quarterly = args.kind == "quarterly"
    overrides = parse_overrides(args.set)
    plan = quarterly_jobs if quarterly else monthly_jobs
    jobs, outcomes = plan(chosen, period, data, args.params, args.out, overrides, mapping=mapping)
    what = "Quarterly verification" if quarterly else "Monthly reports"
    log.info("%s for %s: %d report(s)", what, label, len(jobs) + len(outcomes))
    with BatchProgress(len(jobs)) as progress:
        if args.executor:
            from kpilib.cluster import run_on_dask  # needs `distributed`, only here

            outcomes += run_on_dask(
                args.executor,
                jobs,
                on_done=progress.done,
                timeout=args.timeout,
                cell_timeout=args.cell_timeout,
                pdf=args.pdf,
            )
        else:
            _prepare(args, open_source(data, mapping), period, overrides)
            outcomes += run_jobs(
                jobs,
                max(1, args.jobs),
                on_done=progress.done,
                on_start=progress.started,
                timeout=args.timeout,
                cell_timeout=args.cell_timeout,
                pdf=args.pdf,
            )
    manifest = batch_manifest(
        kind=args.kind,
        period=label,
        started=started,
        finished=datetime.now(UTC),
        data={
            "source": crm.source,
            "fingerprint": crm.fingerprint,
            "mapping": str(_mapping_file(args) or ""),
        },
        jobs=jobs,
        outcomes=outcomes,
        settings={
            "departments": chosen,
            "params": str(args.params),
            "overrides": overrides,
            "jobs": max(1, args.jobs),
            "timeout": args.timeout,
            "cell_timeout": args.cell_timeout,
            "pdf": args.pdf,
            "executor": args.executor or "local",
        },
    )
    index = finish_batch(args.out, outcomes, label, args.kind, manifest)
    failed = [o for o in outcomes if not o.ok]
    for outcome in sorted(outcomes, key=lambda o: o.department_id):
        if outcome.ok:
            log.info(
                "ok      %s (%.1f s): %s", outcome.department_id, outcome.seconds, outcome.html
            )
        else:
            log.error("FAILED  %s at %s: %s", outcome.department_id, outcome.step, outcome.error)
    log.info("Index: %s", index)
    if failed:
        log.error(
            "%d of %d report(s) failed: %s",
            len(failed),
            len(outcomes),
            ", ".join(o.department_id for o in failed),
        )
        return 1
    return 0


def _prepare(
    args: argparse.Namespace, crm: CRM, period: pd.Period, overrides: dict[str, str]
) -> None:
    """Derive from the kept data, once, what each report's kernel would derive again."""
    month = period.asfreq("M", "end") if period.freqstr.startswith("Q") else period
    started = time.monotonic()
    try:
        run = load_run_params(args.params, None, overrides)
        scheme = effective_scheme(args.params, run)
        monthly = args.kind == "monthly"
        kernels.warm_data(crm, scheme, month, run.trend_months if monthly else None)
    except KpiError as error:  # each report then derives it itself, and says what is wrong
        log.warning("The data could not be prepared once for all reports: %s", error)
        return
    log.debug("Data prepared for the reports in %.1f s", time.monotonic() - started)


def _months(crm: CRM, first: str, last: str) -> list[pd.Period]:
    start, end = parse_month(first), parse_month(last)
    if start > end:
        raise ParamsError(f"--from {first} is after --to {last}.")
    resolve_period(last, crm)  # refuses months the data does not reach
    if start < first_month(crm):
        raise ParamsError(
            f"--from {first} lies before the data, which begins in {first_month(crm):%Y-%m}."
        )
    return list(pd.period_range(start, end, freq="M"))


def _whatif(args: argparse.Namespace) -> int:
    _, crm = _open(args)
    if args.department and args.department not in set(sales_departments(crm)["department_id"]):
        raise ParamsError(
            f"Department {args.department!r} is not a sales department of {crm.source}."
        )
    run = load_run_params(args.params, args.department, parse_overrides(args.set))
    current = effective_scheme(args.params, run)
    proposed = load_scheme(args.scheme).with_hour_cost(run.technical_hour_cost)
    months = _months(crm, args.first, args.last)
    result = whatif(crm, current, proposed, months, args.department)
    if args.format == "json":
        data = {
            "months": [f"{m:%Y-%m}" for m in result.months],
            "current_scheme": current.name,
            "proposed_scheme": proposed.name,
            "total": {k: None if math.isnan(v) else v for k, v in result.total.items()},
            "managers": json.loads(result.managers.to_json(orient="records")),
            "kpis": json.loads(result.kpis.to_json(orient="records")),
        }
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
        return 0
    span = f"{months[0]:%Y-%m} to {months[-1]:%Y-%m}"
    shares = {"Score now": "{:.1%}", "Score proposed": "{:.1%}"}
    table = whatif_table(result)
    table["Change"] = [fmt_diff(v, "share", signed=True) for v in table["Change"]]
    kpis = result.kpis.set_index("label")[["share_met_current", "share_met_proposed"]]
    sys.stdout.write(
        f"What-if over {span} ({len(months)} months): {current.name!r} now, "
        f"{proposed.name!r} proposed ({args.scheme})\n\n"
        + table.to_string(index=False, formatters={k: v.format for k, v in shares.items()})
        + "\n\nShare of manager-months meeting each KPI\n"
        + kpis.rename(
            columns={"share_met_current": "now", "share_met_proposed": "proposed"}
        ).to_string(float_format="{:.1%}".format, na_rep="not in scheme")
        + "\n"
    )
    return 0


def _ingest(args: argparse.Namespace) -> int:
    _, crm = _open(args)  # a source that breaks the contract never reaches the store
    result = snapshots.ingest(args.store.expanduser().resolve(), crm, args.label)
    snap = result.snapshot
    if result.created:
        log.info(
            "Snapshot %s (%s) stored in %s from %s.", snap.id, snap.label, args.store, crm.source
        )
    else:
        unused = f" (the label {args.label!r} is not used)" if args.label else ""
        log.info(
            "The store %s already holds this data as snapshot %s (%s); nothing added%s.",
            args.store,
            snap.id,
            snap.label,
            unused,
        )
    return 0


def _snapshots(args: argparse.Namespace) -> int:
    found = snapshots.list_snapshots(args.store.expanduser().resolve())
    if not found:
        sys.stdout.write(f"The store {args.store} holds no snapshot yet (kpi ingest adds one).\n")
        return 0
    table = pd.DataFrame(
        {
            "id": [s.id for s in found],
            "label": [s.label for s in found],
            "taken (UTC)": [f"{s.taken_at:%Y-%m-%d %H:%M}" for s in found],
            "deals": [s.rows.get("deals") for s in found],
            "fingerprint": [s.fingerprint[:16] for s in found],
            "source": [s.source for s in found],
        }
    )
    sys.stdout.write(table.to_string(index=False) + "\n")
    return 0


def _diff(args: argparse.Namespace) -> int:
    diff = snapshots.diff_snapshots(args.store.expanduser().resolve(), args.old, args.new)
    sys.stdout.write(snapshots.describe_diff(diff, max(1, args.limit)) + "\n")
    return 0


COMMANDS = {
    "demo": _demo,
    "validate": _validate,
    "score": _score,
    "run": _run,
    "whatif": _whatif,
    "ingest": _ingest,
    "snapshots": _snapshots,
    "diff": _diff,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``kpi`` and ``python -m kpilib``."""
    logging.basicConfig(
        level=os.environ.get("KPI_LOG_LEVEL", "INFO"), format="%(message)s", stream=sys.stderr
    )
    logging.getLogger("papermill").setLevel(logging.WARNING)  # per-cell chatter, not news
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except KpiError as error:
        log.error("%s", error)
        return 2


def entry() -> None:
    """The ``kpi`` command and ``python -m kpilib``: `main`, then the process ends at once.

    As Python ends it tears down every module it imported and frees every object, which for a
    process holding pandas, matplotlib, statsmodels, Jupyter and a batch's data takes about a
    second (measured: 0.9 s after importing the kit, 1.3 s after a 12-department batch) and
    serves nothing. So once `main` has returned, the exit handlers run as at any exit (logs
    flushed, temporary files removed, child processes joined), the standard streams are
    flushed, and the process ends with `main`'s status without that teardown. An exception out
    of `main` ends the process the usual way, with its traceback.
    """
    code = main()
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)  # CPython's, since 3.0
    if run_exit_handlers is None:  # another interpreter: the usual exit
        sys.exit(code)
    run_exit_handlers()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # a reader that went away: Python's own exit would say 120 too
        code = code or 120
    os._exit(code)


if __name__ == "__main__":
    entry()
