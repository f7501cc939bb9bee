"""Batch benchmark: the naive per-department loop against ``kpi run monthly``, on demo data.

A monthly batch runs the same report notebook once per sales department. The obvious way to do
that is a shell loop of ``papermill`` then ``jupyter nbconvert --to html --no-input`` for each
department: every report starts a kernel, imports the libraries and reads and validates the whole
CRM extract again. ``kpi run monthly`` is meant to pay those costs once per batch, not once per
report, so that a batch costs little more than the charts and tables of its reports.

One run of this script:

1. generates demo CRM data (``kpilib.demo``) at each size it needs and prints the rows per table,
   the data's in-memory size (what ``kpilib.open_source`` returns) and the time to load and
   validate it;
2. times, in interleaved rounds at the headline number of departments (three by default),
   (a) the naive loop over a part of the departments, with the same notebook and the same
   parameters ``kpi run`` gives each report, then (b) ``kpi run monthly`` for all of them;
   every department is in one part, so the parts together are the whole naive loop;
3. times (b) for each other department count of the growth table (4, 12, 48 by default), each on
   data of that many departments with the same deals per manager and month, and checks that
   every report was written;
4. optionally (``--history``) times (b) at the headline size for several history lengths, to
   show whether the per-report time grows with the months of data;
5. prints the ratio (a)/(b) at the headline size; the last line states it.

The machine's speed drifts during a run (other work on the host, clock changes): timed one after
the other, minutes apart, (a) and (b) would see different machines. Each round therefore
compares (a) and (b) minutes apart at most: its ratio is the naive loop's wall time per report,
times the departments, over the kit's wall time in the same round. The headline ratio is the
median of the rounds' ratios; the totals (the whole naive loop against the kit's median run)
are printed beside it.

For every timed run it prints the wall time, the CPU time of the whole process tree (user +
system of every process the run started and waited for, kernels included, from
``getrusage(RUSAGE_CHILDREN)``), the peak memory of that tree (sampled; the benchmark's own
process is not counted) as bytes and as a multiple of the data's in-memory size, and the cost
per report. Runs are made one at a time, never side by side.

Run it as ``make bench`` or ``.venv/bin/python benchmarks/batch.py --help``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import multiprocessing
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
import psutil
import yaml

from kpilib import open_source, paths
from kpilib.demo import DemoConfig, generate
from kpilib.io import write_tables
from kpilib.periods import resolve_period
from kpilib.runner import monthly_jobs
from kpilib.schemas import MODELS

BIN = Path(sys.executable).parent  # the environment's executables: papermill, jupyter, kpi
GB = 1024**3


@dataclass(frozen=True)
class DataSet:
    """Demo data written to a folder, with what it holds and what it costs to load."""

    config: DemoConfig
    folder: Path
    departments: tuple[str, ...]  # the sales departments, one report each
    period: str  # the month the reports show (YYYY-MM), the latest complete one
    rows: dict[str, int]
    memory: int  # bytes of the validated tables in memory (deep)
    load_seconds: float  # kpilib.open_source: read and validate

    @property
    def deals(self) -> int:
        return self.rows["deals"]


@dataclass
class MemoryPeak:
    """The largest memory of a process tree seen while it ran."""

    rss: int = 0  # sum of resident set sizes; shared pages count once per process
    pss: int = 0  # sum of proportional set sizes; shared pages are split among their users
    pss_complete: bool = True  # whether every process of every PSS sample had a PSS
    samples: int = 0  # of the RSS sum
    pss_samples: int = 0
    sampling_seconds: float = 0.0  # CPU time the samples took in the benchmark's process
    sampled_cpu: dict[int, float] = field(default_factory=dict)  # pid: last seen user + system

    @property
    def reported(self) -> tuple[str, int]:
        """The figure to report: PSS when every sample of it was complete, otherwise RSS."""
        if self.pss_complete and self.pss_samples:
            return "PSS", self.pss
        return "RSS", self.rss


def resident(process: psutil.Process) -> tuple[int, int | None]:
    """RSS and PSS of a process in bytes; PSS is None where the system does not tell it.

    Reads ``/proc/PID/smaps_rollup`` (Linux 4.14 and later): several milliseconds for a process of
    a few hundred MB, as the kernel walks its page tables; psutil's ``memory_full_info`` parses
    the whole ``smaps`` and costs about three times as much.
    """
    try:
        with open(f"/proc/{process.pid}/smaps_rollup", "rb") as rollup:
            found = dict(line.split()[:2] for line in rollup if line[:4] in (b"Rss:", b"Pss:"))
    except (FileNotFoundError, ProcessLookupError):
        raise psutil.NoSuchProcess(process.pid) from None
    except OSError:  # no smaps_rollup here, or not ours to read
        return process.memory_info().rss, None
    if not found:  # a process that has ended but not been waited for maps nothing
        return 0, 0
    return int(found[b"Rss:"]) * 1024, int(found[b"Pss:"]) * 1024


class TreeSampler:
    """Samples the memory of every process this one started (children, recursively).

    The RSS sum is cheap and sampled every `interval` seconds. PSS costs more (see `resident`), so
    it is sampled as often as keeps it within about `pss_share` of one core: a few times a
    second for a handful of processes of a few hundred MB, less often for larger ones.
    """

    def __init__(self, interval: float = 0.2, pss_share: float = 0.05) -> None:
        self.interval, self.pss_share = interval, pss_share
        self.peak = MemoryPeak()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> MemoryPeak:
        self._thread.start()
        return self.peak

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        me = psutil.Process()
        next_pss = 0.0
        while not self._stop.is_set():
            begun, with_pss = time.thread_time(), time.monotonic() >= next_pss
            self._sample(me.children(recursive=True), with_pss)
            took = time.thread_time() - begun
            self.peak.sampling_seconds += took
            if with_pss:
                next_pss = time.monotonic() + took / self.pss_share
            self._stop.wait(self.interval)

    def _sample(self, processes: list[psutil.Process], with_pss: bool) -> None:
        rss = pss = 0
        complete = True
        for process in processes:
            try:
                times = process.cpu_times()
                self.peak.sampled_cpu[process.pid] = times.user + times.system
                if with_pss:
                    one_rss, one_pss = resident(process)
                else:
                    one_rss, one_pss = process.memory_info().rss, 0
            except psutil.Error:  # ended between listing and reading, or not ours to read
                continue
            rss += one_rss
            pss += one_pss or 0
            complete = complete and one_pss is not None
        self.peak.rss = max(self.peak.rss, rss)
        self.peak.samples += 1
        if with_pss:
            self.peak.pss = max(self.peak.pss, pss)
            self.peak.pss_complete = self.peak.pss_complete and complete
            self.peak.pss_samples += 1


@dataclass(frozen=True)
class Run:
    """One timed run: a batch of reports made by a command or a loop of commands."""

    label: str
    reports: int
    wall: float
    cpu: float  # user + system of the process tree
    memory: MemoryPeak
    ok: bool
    problem: str = ""
    steps: dict[str, list[float]] = field(default_factory=dict)  # wall seconds per step kind

    @property
    def wall_per_report(self) -> float:
        return self.wall / max(1, self.reports)

    @property
    def cpu_per_report(self) -> float:
        return self.cpu / max(1, self.reports)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(label: str, commands: Sequence[tuple[str, list[str]]], reports: int, log: Path) -> Run:
    """Run commands one after the other, as a shell script would, and measure the whole.

    Stops at the first command that fails; such a run is reported as failed, never as a time.

    Args:
        label: What the run is, for the printout.
        commands: (step kind, argv) pairs, run in order.
        reports: How many reports the commands make.
        log: File collecting every command's output.
    """
    steps: dict[str, list[float]] = {}
    problem = ""
    cpu_before, started = _children_cpu(), time.perf_counter()
    with TreeSampler() as peak, log.open("a", encoding="utf-8") as out:
        for kind, argv in commands:
            begun = time.perf_counter()
            done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False)
            steps.setdefault(kind, []).append(time.perf_counter() - begun)
            if done.returncode != 0:
                problem = f"{Path(argv[0]).name} exited with code {done.returncode} (see {log})"
                break
        wall, cpu = time.perf_counter() - started, _children_cpu() - cpu_before
    sampled = sum(peak.sampled_cpu.values())
    if cpu < 0.9 * sampled:  # a descendant ended without being waited for: its CPU is lost
        print(f"  note: CPU {cpu:.1f} s is below the {sampled:.1f} s sampled while running")
    return Run(label, reports, wall, cpu, peak, not problem, problem, steps)


def make_data(config: DemoConfig, folder: Path, fmt: str) -> DataSet:
    """Generate demo data, write it as a source folder, and load and validate it once."""
    started = time.perf_counter()
    tables = generate(config)
    generated = time.perf_counter() - started
    write_tables(tables, folder, fmt)
    written = time.perf_counter() - started - generated
    rows = {name: len(frame) for name, frame in tables.items()}
    del tables
    gc.collect()
    started = time.perf_counter()
    crm = open_source(folder)
    load = time.perf_counter() - started
    frames = [getattr(crm, table) for table in MODELS]
    memory = int(sum(f.memory_usage(deep=True).sum() for f in frames if f is not None))
    kinds = crm.departments.set_index("department_id")["kind"]
    departments = tuple(kinds.index[kinds.eq("sales")])
    period = f"{resolve_period(None, crm):%Y-%m}"
    del crm, frames
    gc.collect()
    print(
        f"data {folder.name}: {config.sales_departments} departments x "
        f"{config.managers_per_department} managers x {config.months} months, deal_rate "
        f"{config.deal_rate:.4g}: generated in {generated:.1f} s, written ({fmt}) in "
        f"{written:.1f} s"
    )
    print("  rows: " + ", ".join(f"{name} {count:,}" for name, count in rows.items()))
    print(f"  in memory {_size(memory)}; load + validate {load:.2f} s; report month {period}")
    return DataSet(config, folder, departments, period, rows, memory, load)


def natural_deals(departments: int, managers: int, months: int) -> int:
    """Deal rows of the demo at its natural rate (deal_rate 1) for a size."""
    config = DemoConfig(
        sales_departments=departments, managers_per_department=managers, months=months
    )
    return len(generate(config)["deals"])


class DataSets:
    """Demo data sets by config, each generated once per benchmark run.

    Each is generated, written and measured in a child process, which returns its memory to the
    system when it ends: at ten million deals that is several GB the timed runs then have.
    """

    def __init__(self, root: Path, fmt: str) -> None:
        self.root, self.fmt = root, fmt
        self._made: dict[DemoConfig, DataSet] = {}

    def get(self, config: DemoConfig) -> DataSet:
        if config not in self._made:
            name = (
                f"d{config.sales_departments}-m{config.managers_per_department}"
                f"-mo{config.months}-r{config.deal_rate:.4g}"
            )
            fork = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(1, mp_context=fork) as child:
                made = child.submit(make_data, config, self.root / name, self.fmt)
                self._made[config] = made.result()
        return self._made[config]


def naive_loop(data: DataSet, folder: Path, departments: Sequence[str], label: str) -> Run:
    """(a) papermill then nbconvert per department, one after the other.

    Each report gets the notebook and parameters ``kpi run monthly`` would give it.

    Args:
        data: The data set.
        folder: Where the executed notebooks and the HTML go (emptied first).
        departments: The departments to make reports for, in this order.
        label: What the run is, for the printout.
    """
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    jobs, failed = monthly_jobs(
        list(departments), _month(data.period), data.folder, paths.PARAMS, folder / "reports"
    )
    if failed:
        problems = "; ".join(f"{o.department_id}: {o.error}" for o in failed)
        return Run(label, len(departments), 0.0, 0.0, MemoryPeak(), False, problems)
    commands = []
    for job in jobs:
        executed = folder / f"{job.department_id}.ipynb"
        parameters = {**job.parameters, "results_path": str(folder / f"{job.department_id}.json")}
        commands += [
            (
                "papermill",
                [
                    str(BIN / "papermill"),
                    str(job.notebook),
                    str(executed),
                    "-y",
                    yaml.safe_dump(parameters),
                    "-k",
                    "python3",
                    "--cwd",
                    str(job.notebook.parent),
                ],
            ),
            (
                "nbconvert",
                [str(BIN / "jupyter"), "nbconvert", "--to", "html", "--no-input", str(executed)],
            ),
        ]
    run = timed(label, commands, len(jobs), folder / "commands.log")
    missing = [j.department_id for j in jobs if not (folder / f"{j.department_id}.html").is_file()]
    if run.ok and missing:
        return replace(run, ok=False, problem=f"no HTML for {', '.join(missing)}")
    return run


def parts(departments: Sequence[str], rounds: int) -> list[tuple[str, ...]]:
    """The departments in `rounds` consecutive parts, as equal in size as they can be."""
    size, extra = divmod(len(departments), rounds)
    cuts = [0]
    for number in range(rounds):
        cuts.append(cuts[-1] + size + (number < extra))
    return [tuple(departments[a:b]) for a, b in zip(cuts, cuts[1:], strict=False)]


def combined(label: str, runs: Sequence[Run]) -> Run:
    """Runs one after the other as one run: times and reports add up, memory is the highest."""
    peak = MemoryPeak()
    for run in runs:
        peak.rss = max(peak.rss, run.memory.rss)
        peak.pss = max(peak.pss, run.memory.pss)
        peak.pss_complete = peak.pss_complete and run.memory.pss_complete
        peak.samples += run.memory.samples
        peak.pss_samples += run.memory.pss_samples
        peak.sampling_seconds += run.memory.sampling_seconds
    steps: dict[str, list[float]] = {}
    for run in runs:
        for kind, seconds in run.steps.items():
            steps.setdefault(kind, []).extend(seconds)
    problems = "; ".join(run.problem for run in runs if not run.ok)
    return Run(
        label,
        sum(run.reports for run in runs),
        sum(run.wall for run in runs),
        sum(run.cpu for run in runs),
        peak,
        all(run.ok for run in runs),
        problems,
        steps,
    )


@dataclass(frozen=True)
class Round:
    """(a) over a part of the departments, then (b) over all of them, minutes apart at most."""

    naive: Run
    kit: Run

    @property
    def ratio(self) -> float | None:
        """(a)'s wall time per report times (b)'s reports, over (b)'s wall time."""
        if not (self.naive.ok and self.kit.ok):
            return None
        return self.naive.wall_per_report * self.kit.reports / self.kit.wall


def median_run(runs: Sequence[Run]) -> Run:
    """The run of median wall time (of an even number, the slower of the middle two); a failed
    run if any failed."""
    failed = [run for run in runs if not run.ok]
    if failed:
        return failed[0]
    return sorted(runs, key=lambda run: run.wall)[len(runs) // 2]


def kit_run(data: DataSet, folder: Path, jobs: int | None, label: str) -> Run:
    """(b) ``kpi run monthly`` for every department of the data, into a fresh folder."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    out = folder / "reports"
    argv = [str(BIN / "kpi"), "run", "monthly", "--data", str(data.folder), "--out", str(out)]
    argv += ["--period", data.period, *(["--jobs", str(jobs)] if jobs else [])]
    run = timed(label, [("kpi run", argv)], len(data.departments), folder / "kpi.log")
    reports = out / "monthly" / data.period
    missing = [d for d in data.departments if not (reports / f"{d}.html").is_file()]
    if run.ok and missing:
        problem = f"exit code 0 but no report for {', '.join(missing)}"
        return replace(run, ok=False, problem=problem)
    return run


def kit_workers(folder: Path, period: str) -> str:
    """How many reports the batch ran at once, as its manifest records it."""
    manifest = folder / "reports" / "monthly" / period / "manifest.json"
    try:
        return str(json.loads(manifest.read_text(encoding="utf-8"))["settings"]["jobs"])
    except (OSError, ValueError, KeyError):
        return "?"


def _month(period: str) -> pd.Period:
    return pd.Period(period, "M")


def _size(count: float) -> str:
    return f"{count / GB:.2f} GB" if count >= GB / 10 else f"{count / 1024**2:.0f} MB"


def show(run: Run, data: DataSet) -> None:
    """Print a run's figures."""
    if not run.ok:
        print(f"{run.label}: FAILED after {run.wall:.1f} s: {run.problem}")
        return
    kind, peak = run.memory.reported
    print(
        f"{run.label}: {run.reports} reports, wall {run.wall:.1f} s, CPU {run.cpu:.1f} s; "
        f"per report wall {run.wall_per_report:.2f} s, CPU {run.cpu_per_report:.2f} s"
    )
    print(
        f"  peak memory of the process tree: {_size(peak)} {kind} "
        f"({peak / data.memory:.1f}x the data's {_size(data.memory)} in memory; "
        f"RSS sum {_size(run.memory.rss)}; {run.memory.samples} samples, "
        f"{run.memory.pss_samples} with PSS, {run.memory.sampling_seconds:.1f} s CPU)"
    )
    for kind, seconds in run.steps.items():
        if len(seconds) > 1:
            print(f"  {kind}: {sum(seconds) / len(seconds):.2f} s wall each")


def growth_table(runs: Sequence[tuple[DataSet, Run]]) -> None:
    """Print batch time by department count and the marginal cost of one more report."""
    print("departments  deals        wall s   CPU s  wall/report  CPU/report  peak memory")
    for data, run in runs:
        if not run.ok:
            print(f"{len(data.departments):>11}  {data.deals:>11,}  FAILED: {run.problem}")
            continue
        kind, peak = run.memory.reported
        print(
            f"{len(data.departments):>11}  {data.deals:>11,}  {run.wall:>6.1f}  {run.cpu:>6.1f}"
            f"  {run.wall_per_report:>11.2f}  {run.cpu_per_report:>10.2f}  "
            f"{_size(peak)} {kind} ({peak / data.memory:.1f}x data)"
        )
    good = [(d, r) for d, r in runs if r.ok]
    if len(good) >= 2 and good[0][1].reports != good[-1][1].reports:
        (_, small), (_, large) = good[0], good[-1]
        extra = large.reports - small.reports
        print(
            f"marginal cost per additional report ({small.reports} -> {large.reports} "
            f"departments): wall {(large.wall - small.wall) / extra:.2f} s, "
            f"CPU {(large.cpu - small.cpu) / extra:.2f} s"
        )


def machine() -> str:
    """Cores, CPU model and memory of this machine."""
    model = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = psutil.virtual_memory().total
    return (
        f"{os.cpu_count()} cores ({model}), {memory / GB:.1f} GB RAM, Python "
        f"{platform.python_version()}; {load_average()}"
    )


def load_average() -> str:
    """The 1-minute load average before the benchmark; other work slows every figure down."""
    load = os.getloadavg()[0]
    busy = " (other work is running: figures will be slower)" if load > 0.5 else ""
    return f"load average {load:.2f}{busy}"


def headline(count: int, rounds: Sequence[Round], kit: Run) -> str:
    """The last line: the (a)/(b) ratio at the headline size, or why it is missing.

    Args:
        count: The headline number of departments.
        rounds: The interleaved rounds (none with ``--skip-naive``).
        kit: (b) at the headline size (with rounds, their median run).
    """
    if not kit.ok:
        return f"headline: {count} departments, kpi run monthly FAILED ({kit.problem})"
    if not rounds:
        return (
            f"headline: {count} departments, kpi run monthly {kit.wall:.1f} s "
            f"({kit.wall_per_report:.2f} s, CPU {kit.cpu_per_report:.2f} s per report); "
            "naive loop not measured (--skip-naive), no ratio"
        )
    naive = combined("naive loop", [r.naive for r in rounds])
    if not naive.ok:
        return (
            f"headline: {count} departments, naive loop FAILED, kpi run monthly {kit.wall:.1f} s;"
            " no ratio"
        )
    ratios = [r.ratio for r in rounds if r.ratio is not None]
    listed = ", ".join(f"{ratio:.1f}x" for ratio in ratios)
    return (
        f"headline: {count} departments, naive loop {naive.wall:.1f} s, kpi run monthly "
        f"{kit.wall:.1f} s (median of {len(rounds)}): {statistics.median(ratios):.1f}x faster "
        f"(median of the rounds' ratios {listed})"
    )


def _counts(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated whole numbers: {text}"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one number")
    return sorted(set(values))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line's options, checked against what the demo data can be."""
    parser = argparse.ArgumentParser(
        description="Time the naive papermill + nbconvert loop against `kpi run monthly`."
    )
    parser.add_argument(
        "--departments",
        type=_counts,
        default=[4, 12, 48],
        help="department counts of the growth table (default 4,12,48)",
    )
    parser.add_argument("--headline", type=int, default=12, help="departments of the ratio")
    parser.add_argument("--managers", type=int, default=7, help="managers per department")
    parser.add_argument("--months", type=int, default=30, help="months of history (>= 24)")
    parser.add_argument(
        "--deals",
        type=int,
        help="about this many deal rows at the headline size (default: the demo's natural rate)",
    )
    parser.add_argument("--format", choices=["csv", "parquet"], default="csv")
    parser.add_argument("--jobs", type=int, help="passed to kpi run (default: the kit's default)")
    parser.add_argument(
        "--history",
        type=_counts,
        help="also run the headline size with these months of history (e.g. 30,120)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="interleaved rounds of (a) and (b) at the headline size (default 3)",
    )
    parser.add_argument("--skip-naive", action="store_true", help="do not time the naive loop")
    parser.add_argument(
        "--work", type=Path, help="folder for data and reports (default: a temporary folder)"
    )
    args = parser.parse_args(argv)
    if min([*args.departments, args.headline]) < 4 or args.managers < 6 or args.months < 24:
        parser.error("the demo needs at least 4 departments, 6 managers and 24 months")
    if args.history and min(args.history) < 24:
        parser.error("--history: the demo needs at least 24 months")
    if args.deals is not None and args.deals <= 0:
        parser.error("--deals must be positive")
    if not 1 <= args.rounds <= args.headline:
        parser.error("--rounds must be between 1 and the headline number of departments")
    if args.jobs is not None and args.jobs < 1:
        parser.error("--jobs must be at least 1")
    return args


@contextlib.contextmanager
def work_folder(given: Path | None) -> Iterator[Path]:
    """The given folder (kept), or a temporary one removed at the end."""
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        yield given.resolve()
        return
    folder = Path(tempfile.mkdtemp(prefix="kpi-bench-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when every timed run succeeded, 1 otherwise."""
    args = parse_args(argv)
    started = time.perf_counter()
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # figures show as they come, also in a pipe
    print(f"machine: {machine()}")
    rate = 1.0
    if args.deals:
        natural = natural_deals(args.headline, args.managers, args.months)
        rate = args.deals / natural
    sizes = sorted({*args.departments, args.headline})
    print(
        f"sizes: {', '.join(map(str, sizes))} departments, {args.managers} managers, "
        f"{args.months} months, deal_rate {rate:.4g}, {args.format}"
    )

    def config(departments: int, months: int = args.months) -> DemoConfig:
        return DemoConfig(
            months=months,
            sales_departments=departments,
            managers_per_department=args.managers,
            deal_rate=rate,
        )

    with work_folder(args.work) as work:
        print(f"work folder: {work}")
        data = DataSets(work / "data", args.format)
        top = data.get(config(args.headline))
        rounds: list[Round] = []
        if not args.skip_naive:
            print(
                f"\n(a) naive loop (papermill + nbconvert per department) and (b) kpi run monthly,"
                f" {args.headline} departments, in {args.rounds} interleaved rounds"
            )
            for number, part in enumerate(parts(top.departments, args.rounds), start=1):
                label = f"round {number}: naive loop over {', '.join(part)}"
                naive = naive_loop(top, work / f"naive-{number}", part, label)
                show(naive, top)
                label = f"round {number}: kpi run monthly, {args.headline}"
                kit = kit_run(top, work / f"kit-{args.headline}-{number}", args.jobs, label)
                show(kit, top)
                rounds.append(Round(naive, kit))
                if rounds[-1].ratio is not None:
                    print(f"  round {number} ratio (a)/(b): {rounds[-1].ratio:.1f}x")
            print()
            show(combined("naive loop, all rounds", [r.naive for r in rounds]), top)

        print("\n(b) kpi run monthly, by number of departments")
        runs: list[tuple[DataSet, Run]] = []
        for count in sizes:
            ready = data.get(config(count))
            if rounds and ready.config == top.config:
                run = median_run([r.kit for r in rounds])
                print(f"{count} departments: the median of the rounds' runs above")
            else:
                folder = work / f"kit-{count}"
                run = kit_run(ready, folder, args.jobs, f"kpi run monthly, {count}")
                show(run, ready)
                print(f"  reports run at once: {kit_workers(folder, ready.period)}")
            runs.append((ready, run))
        print()
        growth_table(runs)
        kit = next(r for d, r in runs if d.config == top.config)

        history: list[tuple[DataSet, Run]] = []
        if args.history:
            print(f"\n(b) by months of history, {args.headline} departments")
            for months in args.history:
                ready = data.get(config(args.headline, months))
                run = kit_run(ready, work / f"history-{months}", args.jobs, f"{months} months")
                show(run, ready)
                history.append((ready, run))
            for ready, run in history:
                figures = (
                    f"wall {run.wall_per_report:.2f} s, CPU {run.cpu_per_report:.2f} s per report"
                    if run.ok
                    else "FAILED"
                )
                print(f"  {ready.config.months:>4} months, {ready.deals:,} deals: {figures}")

        print()
        naive = combined("naive loop", [r.naive for r in rounds])
        if rounds and naive.ok and kit.ok:
            print(
                f"ratio (a)/(b) of the totals at {args.headline} departments (the whole naive "
                f"loop against the median kpi run): wall {naive.wall / kit.wall:.1f}x, "
                f"CPU {naive.cpu / kit.cpu:.1f}x"
            )
        print(f"total time: {time.perf_counter() - started:.1f} s")
        print(headline(args.headline, rounds, kit))
        everything = [r for _, r in [*runs, *history]] + [r.kit for r in rounds]
        return 0 if all(r.ok for r in everything) and naive.ok else 1


if __name__ == "__main__":
    sys.exit(main())
