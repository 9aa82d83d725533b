#!/usr/bin/env python3
"""Builds and runs weft's benchmarks and writes bench/RESULTS.md from what they measured.

    python3 scripts/bench.py                      # configure + build the `bench` preset, run, write
    python3 scripts/bench.py --build-dir DIR      # use an existing build directory (built, not configured)
    python3 scripts/bench.py --tasks 200000 --reps 3 --output /tmp/RESULTS.md   # a quick look
    python3 scripts/bench.py --quick --output /tmp/RESULTS.md    # smoke run: small sizes, figures meaningless
    python3 scripts/bench.py --only fib,sum --output /tmp/RESULTS.md             # some benchmarks only
    python3 scripts/bench.py --only net --output /tmp/RESULTS.md    # network I/O: wrk, echo, idle connections
    python3 scripts/bench.py --only process --output /tmp/RESULTS.md  # processes: against multiprocessing
    python3 scripts/bench.py --only queue --output /tmp/RESULTS.md    # task queue: against Celery on redis

Runs bench_tasks (its --json output is the source of every figure in the task tables), bench_channel and
bench_trace when their binaries exist, and the fork/join benchmarks bench_fib, bench_sort, bench_sum,
bench_dgemm, bench_pipeline and bench_idle (each writes its samples with --json; see
bench/harness/harness.hpp for the format), and the network benchmarks of bench/net (`net`: HTTP with wrk,
echo and idle connections with bench/net's own clients, for weft's servers, Asio, libuv and asyncio; weft's
servers are skipped with a note while they are not built), and the process benchmarks (`process`,
scripts/bench_process.py: bench_process_weft against Debian's python3 multiprocessing, beside the raw baselines
of bench_process_raw, all in the same run), and the task queue benchmark (`queue`, scripts/bench_queue.py:
bench_queue_weft on memory:// and sqlite:// against Celery on a redis-server it starts, in the same run).
A Google Benchmark binary is run with
--benchmark_out_format=json (5 repetitions, aggregates; 2 with --quick) and tabulated, its console output included as
well; any other binary's output is included verbatim. Any build or run
failure stops the script with a non-zero exit status, and RESULTS.md is then left untouched: it is only
ever written whole, from one complete run (--only and --quick need an explicit --output).

Python 3 standard library only.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REPRODUCE = "python3 scripts/bench.py"

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_process  # noqa: E402  (scripts/bench_process.py: the process module's benchmarks)
import bench_queue  # noqa: E402  (scripts/bench_queue.py: the task queue against Celery)

# (workload id, contender name, required ratio weft/contender, description)
GOALS = [
    ("detached", "oneTBB", 1.0, "detached tasks: weft ≥ 1.0× oneTBB task_group"),
    ("detached", "Asio", 2.0, "detached tasks: weft ≥ 2× asio::thread_pool"),
    ("futures", "textbook pool + packaged_task", 2.0,
     "a future per task: weft ≥ 2× textbook pool with std::packaged_task"),
]
IDLE_GOAL_FRACTION = 0.01  # "≈ 0": at most 1% of one core while idle

# The fork/join benchmarks, in the order they run: (binary, section title, directory, --quick arguments).
FORKJOIN = [
    ("bench_fib", "Recursive fib, fork/join", "bench/fib", ["--n", "25", "--batch", "2"]),
    ("bench_sort", "Sort", "bench/sort", ["--n", "2000000"]),
    ("bench_sum", "Sum (parallel reduce)", "bench/sum", ["--n", "20000000"]),
    ("bench_dgemm", "Matrix multiplication", "bench/dgemm", ["--n", "512", "--settle-ms", "100"]),
    ("bench_pipeline", "Pipeline", "bench/pipeline", ["--items", "200000"]),
    ("bench_idle", "Idle CPU of a fork/join pool", "bench/idle", []),  # --quick sets --idle-seconds
]
ALL_BENCHMARKS = ["tasks", "channel", "trace"] + [b.removeprefix("bench_") for b, _, _, _ in FORKJOIN] + ["net",
                                                                                                  "process", "queue"]

# (benchmark, case, contender, required ratio weft/contender, description; {placeholders} from the program's
# parameters). The ratio is the contender's median time over weft's (the headline row's), from the same run.
FORKJOIN_GOALS = [
    ("fib", "nocutoff", "oneTBB", 1.5, "fib({n}), a task per call: weft ≥ 1.5× oneTBB task_group"),
    ("fib", "cutoff", "sequential", 1.9, "fib({n}), plain recursion below n < {cutoff}: weft ≥ 1.9× sequential"),
    ("sort", "sort", "__gnu_parallel::sort", 1.05,
     "sort {n} random uint32: weft::parallel_sort ≥ 1.05× __gnu_parallel::sort"),
    ("sum", "sum", "streaming read", 0.95,
     "sum of {n} doubles: weft::parallel_reduce ≥ 0.95× the streaming-read bandwidth of as many plain threads"),
    ("dgemm", "dgemm", "OpenBLAS", 0.5, "dgemm {n}×{n}: weft::matmul ≥ 0.5× OpenBLAS"),
    ("dgemm", "sgemm", "OpenBLAS", 0.5, "sgemm {n}×{n}: weft::matmul ≥ 0.5× OpenBLAS"),
    ("pipeline", "pipeline", "oneTBB", 1.0,
     "pipeline of {items} small items: weft::parallel_pipeline ≥ 1.0× tbb::parallel_pipeline"),
]


class BenchError(RuntimeError):
    pass


def log(msg: str) -> None:
    print(f"[bench.py] {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], *, capture: bool = False, cwd: Path = REPO) -> str:
    """Runs cmd; raises BenchError (with its output) on a non-zero exit status."""
    log("$ " + " ".join(cmd))
    proc = subprocess.run(cmd, cwd=cwd, text=True,
                          stdout=subprocess.PIPE if capture else None,
                          stderr=subprocess.PIPE if capture else None)
    if proc.returncode != 0:
        detail = ""
        if capture:
            detail = f"\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        raise BenchError(f"command failed with exit status {proc.returncode}: {' '.join(cmd)}{detail}")
    return proc.stdout if capture else ""


# --- machine ---------------------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Hardware", "cpu model"):
                return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> dict:
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    return {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "affinity": affinity,
        "kernel": f"{platform.system()} {platform.release()} {platform.machine()}",
        "load": os.getloadavg(),
    }


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except OSError:
        return "unknown"


# --- build ---------------------------------------------------------------------------------------------
def build(args) -> Path:
    if args.build_dir is None:
        run(["cmake", "--preset", "bench"])
        build_dir = REPO / "build" / "bench"
    else:
        build_dir = Path(args.build_dir).resolve()
        if not (build_dir / "CMakeCache.txt").exists():
            raise BenchError(f"{build_dir} is not a configured build directory (no CMakeCache.txt)")
    if not args.no_build:
        run(["cmake", "--build", str(build_dir)])
    return build_dir


def find_binary(build_dir: Path, name: str) -> Path | None:
    for candidate in (build_dir / "bench" / name.removeprefix("bench_") / name, build_dir / name):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    hits = [p for p in build_dir.rglob(name) if p.is_file() and os.access(p, os.X_OK)]
    return hits[0] if hits else None


# --- running --------------------------------------------------------------------------------------------
def run_tasks(binary: Path, args) -> tuple[dict, str]:
    with tempfile.TemporaryDirectory() as tmp:
        out_json = Path(tmp) / "tasks.json"
        cmd = [str(binary), "--json", str(out_json)]
        for flag, value in (("--tasks", args.tasks), ("--reps", args.reps), ("--warmup", args.warmup),
                            ("--threads", args.threads), ("--idle-seconds", args.idle_seconds)):
            if value is not None:
                cmd += [flag, str(value)]
        log("$ " + " ".join(cmd))
        proc = subprocess.run(cmd, text=True, stdout=subprocess.PIPE)  # progress goes to our stderr
        if proc.returncode != 0:
            raise BenchError(f"bench_tasks failed with exit status {proc.returncode}\n{proc.stdout}")
        print(proc.stdout, file=sys.stderr)
        try:
            data = json.loads(out_json.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise BenchError(f"bench_tasks wrote no readable JSON: {e}") from e
    return data, proc.stdout


def run_forkjoin(binary: Path, args) -> tuple[dict, str, list[str]]:
    """Runs one fork/join benchmark with --json; returns its data, its stdout and the command (without the
    JSON path) that reproduces it."""
    extra: list[str] = []
    if args.quick:
        extra += next(q for b, _, _, q in FORKJOIN if b == binary.name)
    for flag, value in (("--reps", args.reps), ("--threads", args.threads)):
        if value is not None:
            extra += [flag, str(value)]
    if binary.name == "bench_idle" and args.idle_seconds is not None:
        extra += ["--seconds", str(args.idle_seconds)]
    with tempfile.TemporaryDirectory() as tmp:
        out_json = Path(tmp) / "out.json"
        cmd = [str(binary), *extra, "--json", str(out_json)]
        log("$ " + " ".join(cmd))
        proc = subprocess.run(cmd, text=True, stdout=subprocess.PIPE)  # progress goes to our stderr
        if proc.returncode != 0:
            raise BenchError(f"{binary.name} failed with exit status {proc.returncode}\n{proc.stdout}")
        print(proc.stdout, file=sys.stderr)
        try:
            data = json.loads(out_json.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise BenchError(f"{binary.name} wrote no readable JSON: {e}") from e
    return data, proc.stdout, [binary.name, *extra]


def strip_ansi(text: str) -> str:
    """Drops terminal colour codes (a custom console reporter may colour regardless of --benchmark_color)."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def is_google_benchmark(binary: Path) -> bool:
    proc = subprocess.run([str(binary), "--help"], text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=60)
    return "benchmark_filter" in proc.stdout


def run_other(binary: Path, repetitions: int = 5) -> dict:
    """Runs bench_channel / bench_trace. A Google Benchmark binary writes JSON to a file
    (--benchmark_out, which works even when the binary installs its own console reporter) and its console
    output is kept too; any other binary's output is kept verbatim."""
    if not is_google_benchmark(binary):
        return {"kind": "text", "text": strip_ansi(run([str(binary)], capture=True))}
    with tempfile.TemporaryDirectory() as tmp:
        out_json = Path(tmp) / "out.json"
        text = run([str(binary), f"--benchmark_out={out_json}", "--benchmark_out_format=json",
                    f"--benchmark_repetitions={repetitions}", "--benchmark_report_aggregates_only=true",
                    "--benchmark_color=false"], capture=True)
        try:
            data = json.loads(out_json.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise BenchError(f"{binary.name} wrote no readable JSON: {e}") from e
    return {"kind": "gbench", "data": data, "text": strip_ansi(text)}


# --- statistics -----------------------------------------------------------------------------------------
def summarize(contender: dict, tasks: int) -> dict:
    rates = [tasks / s["wall_s"] for s in contender["samples"]]
    return {
        "median": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
        "cpu": statistics.median(s["cpu_s"] for s in contender["samples"]),
        "wall": statistics.median(s["wall_s"] for s in contender["samples"]),
        "vcsw": statistics.median(s["vcsw"] for s in contender["samples"]),
    }


def mtasks(rate: float) -> str:
    return f"{rate / 1e6:.2f} M"


# --- markdown -------------------------------------------------------------------------------------------
def md_escape(s: str) -> str:
    return s.replace("|", "\\|")


def tasks_section(data: dict) -> tuple[list[str], dict]:
    """The per-workload tables; returns the lines and {(workload, contender): ratio weft/contender}."""
    lines: list[str] = []
    ratios: dict = {}
    tasks = data["tasks"]
    for w in data["workloads"]:
        stats = {c["name"]: summarize(c, tasks) for c in w["contenders"]}
        heads = [c["name"] for c in w["contenders"] if c["headline"]]
        if len(heads) != 1:
            raise BenchError(f"workload {w['id']}: expected one headline contender, found {heads}")
        weft = stats[heads[0]]["median"]
        lines += [f"### {w['id']}: {w['title']}", "",
                  f"{tasks:,} tasks per run, {data['threads']} workers; median of {data['repetitions']} "
                  f"repetitions after {data['warmup']} warm-up, contenders in alternation.", "",
                  "| contender | median tasks/s | min – max tasks/s | CPU s (median) | wall s (median) "
                  "| voluntary ctx switches | weft ÷ this |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for c in w["contenders"]:
            s = stats[c["name"]]
            ratio = weft / s["median"]
            ratios[(w["id"], c["name"])] = ratio
            name = f"**{c['name']}** (headline)" if c["headline"] else c["name"]
            lines.append(f"| {md_escape(name)} | {mtasks(s['median'])} | {mtasks(s['min'])} – {mtasks(s['max'])} "
                         f"| {s['cpu']:.3f} | {s['wall']:.3f} | {s['vcsw']:.0f} | {ratio:.2f}× |")
        lines += ["", "Configurations:", ""]
        lines += [f"- {md_escape(c['name'])}: {md_escape(c['config'])}" for c in w["contenders"]]
        lines.append("")
    return lines, ratios


def fj_stats(contender: dict) -> dict:
    walls = [x["wall_s"] for x in contender["samples"]]
    return {
        "wall": statistics.median(walls),
        "min": min(walls),
        "max": max(walls),
        "cpu": statistics.median(x["cpu_s"] for x in contender["samples"]),
        "fraction": statistics.median(x["cpu_s"] / x["wall_s"] for x in contender["samples"]),
        "vcsw": statistics.median(x["vcsw"] for x in contender["samples"]),
    }


def fj_headline(case: dict, bench: str) -> dict:
    heads = [c for c in case["contenders"] if c["headline"]]
    if len(heads) != 1:
        raise BenchError(f"{bench}/{case['id']}: expected one headline contender, found "
                         f"{[c['name'] for c in heads]}")
    return heads[0]


def fj_ratios(results: dict) -> dict:
    """{(benchmark, case, contender): the contender's median time over the headline's} for timed cases."""
    ratios = {}
    for bench, (data, _, _) in results.items():
        for case in data["cases"]:
            if case["kind"] != "time" or not case["contenders"]:
                continue
            weft = fj_stats(fj_headline(case, bench))["wall"]
            for c in case["contenders"]:
                ratios[(bench, case["id"], c["name"])] = fj_stats(c)["wall"] / weft
    return ratios


def ms(seconds: float) -> str:
    v = seconds * 1e3
    return f"{v:,.1f}" if v >= 100 else f"{v:.2f}" if v >= 1 else f"{v:.3f}"


def forkjoin_section(results: dict) -> list[str]:
    if not results:
        return []
    lines = ["## Fork/join and parallel algorithms (bench/fib, sort, sum, dgemm, pipeline, idle)", "",
             "Each program runs every contender in one process, in alternation (a round runs each contender once, "
             "starting one further along the list each round), after a pause that lets the previous library's "
             "threads go to sleep; inputs are prepared and results checked outside the timed region, and a wrong "
             "result fails the run. \"weft ÷ this\" is the row's median time over weft's (the headline row): "
             "above 1, weft is faster. CPU s is the whole process's user + system time per run (getrusage).", ""]
    for binary, title, directory, _ in FORKJOIN:
        bench = binary.removeprefix("bench_")
        if bench not in results:
            continue
        data, _, cmd = results[bench]
        params = ", ".join(f"{k} = {int(v):,}" if str(v).isdigit() else f"{k} = {v}"
                           for k, v in data.get("parameters", {}).items())
        lines += [f"### {title} ({directory})", "",
                  f"{data['threads']} threads per library; median of {data['repetitions']} repetitions after "
                  f"{data['warmup']} warm-up round(s); {params}. Command: `{' '.join(cmd)}`.", ""]
        for case in data["cases"]:
            if not case["contenders"]:
                continue
            batch = case.get("batch", 1)
            each = f" Each sample is the mean of {batch} back-to-back runs." if batch > 1 else ""
            lines += [f"#### {case['id']}: {md_escape(case['title'])}", ""]
            if case["kind"] == "idle":
                lines += ["Process CPU time of a child process that holds the idle pool, over the window.", "",
                          "| pool | window s | CPU ms (median) | % of one core | voluntary ctx switches |",
                          "|---|---:|---:|---:|---:|"]
                for c in case["contenders"]:
                    st = fj_stats(c)
                    name = f"**{c['name']}** (headline)" if c["headline"] else c["name"]
                    lines.append(f"| {md_escape(name)} | {st['wall']:.2f} | {st['cpu'] * 1e3:.2f} "
                                 f"| {100 * st['fraction']:.3f}% | {st['vcsw']:.0f} |")
            else:
                rate = case["work"] > 0
                if each:
                    lines += [each.strip(), ""]
                lines += ["| contender | median ms | min – max ms | " + (f"{case['rate_unit']} | " if rate else "")
                          + "CPU s (median) | weft ÷ this |",
                          "|---|---:|---:|" + ("---:|" if rate else "") + "---:|---:|"]
                weft = fj_stats(fj_headline(case, bench))["wall"]
                for c in case["contenders"]:
                    st = fj_stats(c)
                    name = f"**{c['name']}** (headline)" if c["headline"] else c["name"]
                    rate_cell = f"{case['work'] / st['wall']:.2f} | " if rate else ""
                    lines.append(f"| {md_escape(name)} | {ms(st['wall'])} | {ms(st['min'])} – {ms(st['max'])} | "
                                 f"{rate_cell}{st['cpu']:.3f} | {st['wall'] / weft:.2f}× |")
            lines += ["", "Configurations:", ""]
            lines += [f"- {md_escape(c['name'])}: {md_escape(c['config'])}" for c in case["contenders"]]
            lines.append("")
    return lines


def forkjoin_goals(results: dict) -> list[str]:
    rows = []
    ratios = fj_ratios(results)
    for bench, case, contender, required, text in FORKJOIN_GOALS:
        if bench not in results:
            continue
        params = results[bench][0].get("parameters", {})
        goal = text.format(**{k: (f"{int(v):,}" if str(v).isdigit() and int(v) >= 10000 else v)
                              for k, v in params.items()})
        key = (bench, case, contender)
        if key not in ratios:
            raise BenchError(f"no result for {contender} in {bench}/{case}: cannot check '{goal}'")
        rows.append(goal_row(goal, ratios[key], required, f"{ratios[key]:.2f}×"))
    if "idle" in results:
        data = results["idle"][0]
        for case in data["cases"]:
            for c in case["contenders"]:
                if not c["headline"]:
                    continue
                st = fj_stats(c)
                goal = (f"idle fork/join pool uses ≈ 0 CPU ({md_escape(c['name'])}, {st['wall']:.1f} s after a "
                        f"burst, ≤ {100 * IDLE_GOAL_FRACTION:.0f}% of one core)")
                text = f"{st['cpu'] * 1e3:.2f} ms CPU = {100 * st['fraction']:.3f}% of one core"
                verdict = "met" if st["fraction"] <= IDLE_GOAL_FRACTION else \
                    f"missed ({100 * st['fraction']:.2f}% of one core)"
                rows.append(f"| {goal} | {text} | {verdict} |")
    return rows


def goal_row(goal: str, measured: float, required: float, text: str) -> str:
    if measured >= required:
        verdict = "met"
    else:
        verdict = f"missed by {100 * (required - measured) / required:.0f}%"
    return f"| {goal} | {text} | {verdict} |"


def gbench_medians(result: dict) -> dict:
    """{run_name: benchmark entry} for the median aggregates of a Google Benchmark JSON result."""
    out = {}
    for b in result["data"].get("benchmarks", []):
        if b.get("aggregate_name") == "median":
            out[b["run_name"]] = b
    return out


def ns(entry: dict, key: str) -> float:
    """A Google Benchmark time field in nanoseconds."""
    scale = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}[entry.get("time_unit", "ns")]
    return entry[key] * scale


def extra_goals(others: dict) -> list[str]:
    """Goal rows for the Channel and tracing benchmarks, from their median aggregates."""
    rows = []
    channel = others.get("bench_channel")
    if channel is not None and channel["kind"] == "gbench":
        med = gbench_medians(channel)
        for p in (1, 2):
            case = f"producers:{p}/consumers:{p}/iterations:1/real_time"
            ours, theirs = med.get(f"weft/{case}"), med.get(f"moodycamel/{case}")
            if ours is None or theirs is None:
                raise BenchError(f"bench_channel has no median for {case}")
            r = ours["items_per_second"] / theirs["items_per_second"]
            rows.append(goal_row(f"Channel {p}→{p} messages/s ≥ 0.8× moodycamel::BlockingConcurrentQueue",
                                 r, 0.8, f"{r:.2f}×"))
    trace = others.get("bench_trace")
    if trace is not None and trace["kind"] == "gbench":
        med = gbench_medians(trace)
        on = med.get("BM_TaskTracedOn/real_time/threads:1")
        off, empty = med.get("BM_TaskTracedOff"), med.get("BM_EmptyLoop")
        if on is None or off is None or empty is None:
            raise BenchError("bench_trace lacks BM_TaskTracedOn, BM_TaskTracedOff or BM_EmptyLoop")
        ns_on = ns(on, "cpu_time")
        verdict = "met" if ns_on <= 50 else f"missed by {100 * (ns_on - 50) / 50:.0f}%"
        rows.append(f"| tracing on: ≤ 50 ns per task (3 tick reads + record, one thread) | {ns_on:.1f} ns | {verdict} |")
        extra = ns(off, "cpu_time") - ns(empty, "cpu_time")
        verdict = "met" if extra <= 1.0 else f"missed ({extra:.2f} ns per task)"
        rows.append(f"| tracing off: nothing measurable (enabled() check vs an empty loop, ≤ 1 ns) | "
                    f"{extra:+.2f} ns | {verdict} |")
    return rows


def goals_section(data: dict | None, ratios: dict, others: dict, forkjoin: dict, net: dict | None,
                  process: tuple | None, queue: tuple | None = None) -> list[str]:
    lines = ["## Goals", "",
             "Ratios are weft's speed over the contender's (medians of the same run); see the sections below.", "",
             "| goal | measured | result |", "|---|---:|---|"]
    if data is not None:
        for workload, contender, required, goal in GOALS:
            if (workload, contender) not in ratios:
                raise BenchError(f"no result for {contender} in workload {workload}: cannot check '{goal}'")
            r = ratios[(workload, contender)]
            lines.append(goal_row(goal, r, required, f"{r:.2f}×"))
        for idle in data.get("idle", []):
            fraction = idle["cpu_s"] / idle["seconds"]
            goal = (f"idle pool uses ≈ 0 CPU ({md_escape(idle['name'])}, {idle['seconds']:.1f} s, "
                    f"≤ {100 * IDLE_GOAL_FRACTION:.0f}% of one core)")
            text = f"{idle['cpu_s'] * 1e3:.2f} ms CPU = {100 * fraction:.3f}% of one core"
            verdict = "met" if fraction <= IDLE_GOAL_FRACTION else \
                f"missed ({100 * fraction:.2f}% of one core)"
            lines.append(f"| {goal} | {text} | {verdict} |")
    lines += extra_goals(others)
    lines += forkjoin_goals(forkjoin)
    lines += net_goals(net)
    if process is not None:
        lines += bench_process.goal_rows(*process)
    if queue is not None:
        lines += bench_queue.goal_rows(*queue)
    lines.append("")
    return lines


def idle_section(data: dict) -> list[str]:
    idle = data.get("idle", [])
    if not idle:
        return []
    lines = ["### idle CPU", "",
             "A pool with no work, watched while the main thread sleeps; process CPU time from getrusage.", "",
             "| pool | window s | CPU ms | % of one core | voluntary ctx switches |",
             "|---|---:|---:|---:|---:|"]
    for s in idle:
        lines.append(f"| {md_escape(s['name'])} | {s['seconds']:.2f} | {s['cpu_s'] * 1e3:.2f} "
                     f"| {100 * s['cpu_s'] / s['seconds']:.3f}% | {s['vcsw']} |")
    lines += ["", *[f"- {md_escape(s['name'])}: {md_escape(s['config'])}" for s in idle], ""]
    return lines


def gbench_section(name: str, data: dict) -> list[str]:
    benches = data.get("benchmarks", [])
    ctx = data.get("context", {})
    has_aggregates = any(b.get("run_type") == "aggregate" for b in benches)
    rows = [b for b in benches if (b.get("aggregate_name") == "median" if has_aggregates else True)]
    cv = {b["run_name"]: b for b in benches if b.get("aggregate_name") == "cv"}
    std_keys = {"name", "family_index", "per_family_instance_index", "run_name", "run_type", "repetitions",
                "repetition_index", "threads", "iterations", "real_time", "cpu_time", "time_unit",
                "aggregate_name", "aggregate_unit", "items_per_second", "bytes_per_second", "label", "error_occurred",
                "error_message"}
    counters = sorted({k for b in rows for k in b if k not in std_keys})
    errors = [b for b in benches if b.get("error_occurred")]
    if errors:
        raise BenchError(f"{name}: benchmark errors: " + "; ".join(f"{b['name']}: {b.get('error_message')}"
                                                                for b in errors))
    rows.sort(key=lambda b: (b.get("family_index", 0), b.get("per_family_instance_index", 0)))
    reps = next((b.get("repetitions") for b in rows if b.get("repetitions")), "?")
    what = f"median of {reps} repetitions" if has_aggregates else "single runs"
    header = ["benchmark", "real time", "CPU time", "items/s", *counters] + (["CV of real time"] if cv else [])
    lines = [f"### {name}", "",
             f"Google Benchmark, {what}, as the binary reports them ({ctx.get('num_cpus', '?')} CPUs). "
             "CPU time is the benchmark thread's.", "",
             "| " + " | ".join(md_escape(h) for h in header) + " |",
             "|---|" + "---:|" * (len(header) - 1)]
    for b in rows:
        unit = b.get("time_unit", "ns")
        ips = b.get("items_per_second")
        cells = [md_escape(b.get("run_name", b["name"])), f"{b['real_time']:.2f} {unit}",
                 f"{b['cpu_time']:.2f} {unit}", f"{ips / 1e6:.2f} M" if ips else "–"]
        cells += [f"{b[k]:.4g}" if isinstance(b.get(k), (int, float)) else "–" for k in counters]
        if cv:
            c = cv.get(b.get("run_name"))
            cells.append(f"{100 * c['real_time']:.1f}%" if c else "–")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def text_section(name: str, text: str) -> list[str]:
    return [f"### {name}", "", "Output of the binary, verbatim:", "", "```", text.rstrip(), "```", ""]


NOTES = """## Notes

- This machine has {cpus} CPUs, so these figures show the cost per task and the contention between two
  workers and a producer; they cannot show how any pool scales beyond two cores. What the design does for
  many cores: weft::ThreadPool keeps one bounded lock-free ring per priority level (Vyukov's MPMC queue, a
  cache line per slot) and takes no lock on the task path; a producer pays one fence and a load or two when
  no worker sleeps, and makes a futex wake-up only when one does (at most one in flight); idle workers spin
  for 50 µs, then sleep on a futex, so an idle pool costs no CPU. All workers still pop from the same ring
  head, one CAS each, so that head is where many cores would contend; work-stealing is ForkJoinPool's job.
- The producer is a third thread on two cores for weft, Asio and the textbook pool (2 workers + the thread
  that posts); oneTBB's arena of 2 slots is the posting thread plus one worker, which helps in
  task_group::wait(). Every contender runs the same tiny task: a relaxed load + store on a counter of the
  running thread; every run checks that exactly {tasks:,} tasks ran (and, with futures, the sum of the
  values got).
- Timed region: from the first post to the moment the last task is known done (wait_idle(), wait(), join(),
  or the last get()); making and destroying the pool are outside it. CPU s is the whole process's user +
  system time over that region (getrusage), so it includes spinning and sleeping/waking overhead.
- The second weft row uses a capacity that holds the whole burst, so the producer never waits for space.
  A ring slot is 64 bytes whether used or not: capacity 16,384 is 1 MiB per priority level in use.
- {load_note} Ratios come from medians of the same run with the contenders alternating, which spreads
  machine noise over all of them; the min – max columns show how large it was.
"""


FORKJOIN_NOTES = """## Notes on the fork/join benchmarks

### What a 2-core machine cannot show

- Scaling beyond two cores. ForkJoinPool is designed for many cores: every worker owns a Chase–Lev deque (it
  pushes and pops its own end with no read-modify-write on the common path; thieves take the other end with
  one CAS), an idle worker steals from a randomly chosen victim, and nothing on the fork/join path — join(),
  TaskGroup, the algorithms' recursive splitting — goes through a shared queue or a lock; only work that
  enters from outside the pool passes the injection queue. So a fork costs the same with 64 workers as with
  2, and stealing spreads over all the victims instead of contending on one queue head. This machine has
  {cpus} CPUs, so none of that is measured here: no speedup curve, no run with more workers than two (where
  random victim selection matters — with two workers each has exactly one possible victim), no NUMA effects.
- Memory bandwidth: two cores stream well below what the memory system can deliver, so the sum and sort
  figures say nothing about the many-core regime where the memory system, not the scheduler, is the limit.

### Method

- Every file of a benchmark gets the same flags: the project's Release flags (baseline x86-64, no `-march`)
  plus OpenMP's, which only the OpenMP and `__gnu_parallel` contenders use. OpenBLAS picks its kernels at run
  time for this CPU (the kernel is named in the libraries line) and weft::matmul picks its micro-kernel at run
  time as well; the OpenMP blocked loop is built for the baseline instruction set and is there for context.
- Every contender computes with {threads} threads: weft::ForkJoinPool({threads}) (the calling thread waits
  while the workers run), a oneTBB task_arena({threads}) (the calling thread takes one slot), OpenMP teams of
  {threads} (the calling thread included), openblas_set_num_threads({threads}).
- Taskflow, the other work-stealing library one would compare with, is not a contender: Debian 12 has no
  package of it, and the benchmarks use packaged libraries only (nothing vendored or downloaded).
- fib: the serial leaf is one function compiled once, called by every contender below the cutoff and by
  the sequential one; the compiler turns its plain recursion into partly iterative code, so serial fib(32)
  takes only a few milliseconds, and the cutoff case's samples are means of several back-to-back runs.
- sort: the same std::mt19937 input for everyone, copied into the work array before each run (untimed).
  Sorting plain integers cannot show stability; the stable-sort case measures cost, the unit tests check
  stability.
- sum: the array is filled by as many threads as the contenders use, each writing the part it then reads
  (first touch), and every partial sum is a whole number below 2^53, so every result is exact and checked.
  The streaming-read row is the reference: plain threads summing the array's 64-bit words as integers.
- idle: each pool is measured in a child process of its own, right after a burst of fork/join work, so the
  window includes each library's spinning before its threads sleep.
- {load_note}
"""


# --- network I/O (bench/net) ---------------------------------------------------------------------------
# Every server runs on CPU 0 and its load on CPU 1, one measurement per fresh server process, the contenders
# in alternation. The servers follow the protocol in bench/net/common.hpp: --port, a `port N` line, SIGTERM.
NET_CONTENDERS = ["weft-uring", "weft-epoll", "asio", "libuv", "asyncio"]
NET_COMPETITORS = ["asio", "libuv"]  # the goals compare weft with the best of these
NET_CONNECTIONS = 50
NET_IDLE_CONNECTIONS = 10000
NET_MESSAGE = 64
NET_SERVER_CPU, NET_LOAD_CPU = "0", "1"
NET_START_TIMEOUT = 15.0  # seconds for a server to print its port line
NET_IDLE_SETTLE = 0.5  # seconds between the idle client's `ready` and the second RSS reading
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# The asyncio servers run on the system's Python (Debian's python3), whichever Python runs this script.
NET_PYTHON = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable


def net_binary(build_dir: Path, name: str) -> Path | None:
    candidate = build_dir / "bench" / "net" / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    return find_binary(build_dir, name)


def net_server_command(build_dir: Path, kind: str, contender: str) -> list[str] | None:
    """The command that starts `contender`'s `kind` (http or echo) server, or None when it is not built."""
    if contender == "asyncio":
        return [NET_PYTHON, str(REPO / "bench" / "net" / f"{kind}_asyncio.py")]
    name, extra = contender, []
    if contender.startswith("weft-"):
        name, extra = "weft", ["--backend", contender.removeprefix("weft-")]
    binary = net_binary(build_dir, f"net_{kind}_{name}")
    return None if binary is None else [str(binary), *extra]


def read_line(stream, timeout: float, what: str) -> str:
    """One line from a child's stdout pipe, or BenchError after `timeout` seconds or at its end."""
    ready, _, _ = select.select([stream], [], [], timeout)
    line = stream.readline() if ready else None
    if not line:
        raise BenchError(f"{what}: " + (f"no output within {timeout:.0f} s" if line is None else "ended early"))
    return line.strip()


class NetServer:
    """A benchmark server on CPU 0, listening once constructed; a context manager that kills it on errors."""

    def __init__(self, command: list[str], name: str):
        self.name = name
        cmd = ["taskset", "-c", NET_SERVER_CPU, *command, "--port", "0"]
        log("$ " + " ".join(cmd))
        # taskset execs the server, so this pid is the server's own.
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
        try:
            self.port = self.wait_for_port()
            # One connection opened and closed before any load, as wrk does before its run, so that every server
            # has seen a connection end: until its first end-of-file, CPython's recv() maps and unmaps a fresh
            # 256 KiB buffer on every read (malloc raises its mmap threshold only when one is freed whole).
            socket.create_connection(("127.0.0.1", self.port), timeout=10).close()
        except BaseException:
            self.__exit__()
            raise

    def wait_for_port(self) -> int:
        line = read_line(self.proc.stdout, NET_START_TIMEOUT, f"{self.name} server start")
        if not re.fullmatch(r"port [1-9]\d*", line):
            raise BenchError(f"{self.name} server printed {line!r} instead of `port N`")
        return int(line.split()[1])

    def cpu_seconds(self) -> float:
        """utime + stime of the server so far (fields 14 and 15 of /proc/<pid>/stat, after the command name)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def rss_bytes(self) -> int:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1)) * 1024

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            status = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise BenchError(f"{self.name} server did not exit within 10 s of SIGTERM") from None
        if status != 0:
            raise BenchError(f"{self.name} server exited with status {status} after SIGTERM")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def wrk_seconds(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[unit]


def parse_wrk(out: str) -> dict:
    """Requests, requests/s and the p50/p99 latencies (µs) from `wrk --latency`; BenchError on bad responses."""
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    requests = re.search(r"^\s*(\d+) requests in", out, re.M)
    rate = re.search(r"^Requests/sec:\s*([\d.]+)", out, re.M)
    p50 = re.search(r"^\s*50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s*99%\s+(\S+)", out, re.M)
    if bad or not (requests and rate and p50 and p99):
        raise BenchError(f"wrk reported errors or could not be read:\n{out}")
    return {"requests": int(requests.group(1)), "rate": float(rate.group(1)),
            "p50_us": wrk_seconds(p50.group(1)) * 1e6, "p99_us": wrk_seconds(p99.group(1)) * 1e6}


def wrk_command(port: int, seconds: int) -> list[str]:
    return ["taskset", "-c", NET_LOAD_CPU, "wrk", "-t1", f"-c{NET_CONNECTIONS}", f"-d{seconds}s", "--latency",
            f"http://127.0.0.1:{port}/"]


def net_http_once(command: list[str], name: str, seconds: int) -> dict:
    with NetServer(command, name) as server:
        run(wrk_command(server.port, 1), capture=True)  # warm-up, not measured
        cpu, wall = server.cpu_seconds(), time.monotonic()
        sample = parse_wrk(run(wrk_command(server.port, seconds), capture=True))
        cpu, wall = server.cpu_seconds() - cpu, time.monotonic() - wall
        server.stop()
    sample.update(cpu_us=cpu / sample["requests"] * 1e6, busy=cpu / wall)
    return sample


def net_echo_once(command: list[str], name: str, seconds: int, client: Path) -> dict:
    with NetServer(command, name) as server:
        cpu, wall = server.cpu_seconds(), time.monotonic()
        out = run(["taskset", "-c", NET_LOAD_CPU, str(client), "--port", str(server.port), "--connections",
                   str(NET_CONNECTIONS), "--size", str(NET_MESSAGE), "--seconds", str(seconds), "--warmup", "1"],
                  capture=True)
        cpu, wall = server.cpu_seconds() - cpu, time.monotonic() - wall
        server.stop()
    result = json.loads(out.strip().splitlines()[-1])
    return {"rate": result["round_trips_per_s"], "p50_us": result["p50_us"], "p99_us": result["p99_us"],
            "busy": cpu / wall}


def net_idle_once(command: list[str], name: str, client: Path) -> dict:
    with NetServer(command, name) as server:
        before = server.rss_bytes()
        cmd = ["taskset", "-c", NET_LOAD_CPU, str(client), "--port", str(server.port), "--connections",
               str(NET_IDLE_CONNECTIONS)]
        log("$ " + " ".join(cmd))
        with subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as idle:
            try:
                line = read_line(idle.stdout, 120, "net_idle_client")
                if line != f"ready {NET_IDLE_CONNECTIONS}":
                    raise BenchError(f"net_idle_client printed {line!r}")
                time.sleep(NET_IDLE_SETTLE)  # a measurement pause: let the server finish its last reads
                after = server.rss_bytes()
            finally:
                idle.stdin.close()
            if idle.wait(timeout=60) != 0:
                raise BenchError(f"net_idle_client exited with status {idle.returncode}")
        server.stop()
    return {"rss_per_conn": (after - before) / NET_IDLE_CONNECTIONS, "rss_before": before, "rss_after": after}


def net_contenders(build_dir: Path, kind: str) -> tuple[list[str], list[str]]:
    """The contenders whose `kind` (http or echo) server is built, and notes on those that are not."""
    present, notes = [], []
    for name in NET_CONTENDERS:
        if net_server_command(build_dir, kind, name) is not None:
            present.append(name)
        else:
            notes.append(f"{name}: no {kind} figures (net_{kind}_{name.split('-')[0]} is not built)")
            log(notes[-1])
    return present, notes


def run_net(build_dir: Path, args, reps: int) -> dict:
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        raise BenchError("the net benchmark needs wrk and taskset (scripts/install-deps.sh installs wrk)")
    if (os.cpu_count() or 1) < 2:
        raise BenchError("the net benchmark pins the server and its load to CPUs 0 and 1: it needs 2 CPUs")
    seconds = args.net_seconds or (2 if args.quick else 5)
    echo_client, idle_client = (net_binary(build_dir, n) for n in ("net_echo_client", "net_idle_client"))
    if echo_client is None or idle_client is None:
        raise BenchError(f"net_echo_client or net_idle_client not found under {build_dir}")
    tests = {"http": lambda cmd, name: net_http_once(cmd, name, seconds),
             "echo": lambda cmd, name: net_echo_once(cmd, name, seconds, echo_client),
             "idle": lambda cmd, name: net_idle_once(cmd, name, idle_client)}
    results, notes = {}, []
    for test, once in tests.items():
        kind = "http" if test == "http" else "echo"
        present, missing = net_contenders(build_dir, kind)
        notes += [n for n in missing if n not in notes]
        results[test] = {name: [] for name in present}
        for rep in range(reps):
            for name in present[rep % len(present):] + present[:rep % len(present)]:
                results[test][name].append(once(net_server_command(build_dir, kind, name), name))
                log(f"net {test} {name} rep {rep + 1}/{reps}: {results[test][name][-1]}")
    return {"seconds": seconds, "reps": reps, "notes": notes, "results": results,
            "libraries": net_libraries(build_dir), "compiler": compiler_of(build_dir)}


def cache_value(build_dir: Path, key: str) -> str | None:
    try:
        for line in (build_dir / "CMakeCache.txt").read_text().splitlines():
            if line.startswith(key + ":"):
                return line.partition("=")[2]
    except OSError:
        pass
    return None


def compiler_of(build_dir: Path) -> str:
    cxx = cache_value(build_dir, "CMAKE_CXX_COMPILER")
    try:
        return subprocess.run([cxx, "--version"], text=True, stdout=subprocess.PIPE).stdout.splitlines()[0]
    except (OSError, TypeError, IndexError):
        return "unknown"


def net_libraries(build_dir: Path) -> dict:
    python = subprocess.run([NET_PYTHON, "--version"], text=True, stdout=subprocess.PIPE).stdout.strip()
    libs = {"python": f"{python} (asyncio)"}
    asio = Path(cache_value(build_dir, "WEFT_ASIO_INCLUDE") or "/usr/include") / "asio" / "version.hpp"
    found = re.search(r"#define ASIO_VERSION (\d+)", asio.read_text()) if asio.is_file() else None
    if found:
        v = int(found.group(1))
        libs["asio"] = f"Asio {v // 100000}.{v // 100 % 1000}.{v % 100}"
    libuv = cache_value(build_dir, "WEFT_LIBUV_VERSION")
    if libuv:
        libs["libuv"] = f"libuv {libuv}"
    wrk = subprocess.run(["wrk", "-v"], text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT).stdout
    libs["wrk"] = " ".join(wrk.split()[:2]) if wrk else "wrk"
    return libs


def net_stats(samples: list[dict]) -> dict:
    """The median of every field, and the min and max of the headline one (`rate` or `rss_per_conn`)."""
    out = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
    head = "rate" if "rate" in samples[0] else "rss_per_conn"
    out["min"], out["max"] = min(s[head] for s in samples), max(s[head] for s in samples)
    return out


def net_best(stats: dict, names: list[str], key: str, lowest: bool = False) -> str | None:
    """The name among `names` with the best median `key` (highest, or lowest), or None if none was measured."""
    names = [n for n in names if n in stats]
    if not names:
        return None
    return (min if lowest else max)(names, key=lambda n: stats[n][key])


def net_comparison(net: dict) -> dict:
    """{test: (best weft backend or None, best of Asio/libuv or None, stats)} for http, echo and idle."""
    out = {}
    for test, key, lowest in (("http", "rate", False), ("echo", "rate", False), ("idle", "rss_per_conn", True)):
        stats = {name: net_stats(samples) for name, samples in net["results"][test].items()}
        weft = [n for n in stats if n.startswith("weft-")]
        out[test] = (net_best(stats, weft, key, lowest), net_best(stats, NET_COMPETITORS, key, lowest), stats)
    return out


def net_ratio_line(comparison: tuple, key: str, unit: str) -> str:
    weft, rival, stats = comparison
    if weft is None or rival is None:
        missing = "weft's server" if weft is None else "Asio's and libuv's servers"
        return f"Best weft backend ÷ best of Asio/libuv: not measured ({missing} not built)."
    ratio = stats[weft][key] / stats[rival][key]
    return f"Best weft backend ({weft}) ÷ best of Asio/libuv ({rival}), {unit}: {ratio:.2f}×."


def num(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def net_tables(net: dict, cmp: dict) -> list[str]:
    http, echo, idle = (cmp[t][2] for t in ("http", "echo", "idle"))
    lines = ["### HTTP/1.1 hello world (wrk)", "",
             "| server | median req/s | min – max req/s | server CPU µs/req | p50 µs | p99 µs "
             "| server core busy |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {n} | {num(s['rate'])} | {num(s['min'])} – {num(s['max'])} | {s['cpu_us']:.2f} "
              f"| {num(s['p50_us'])} | {num(s['p99_us'])} | {100 * s['busy']:.0f}% |" for n, s in http.items()]
    lines += ["", net_ratio_line(cmp["http"], "rate", "req/s"), "",
              "### TCP echo (net_echo_client)", "",
              "| server | median round trips/s | min – max | p50 µs | p99 µs | server core busy |",
              "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {n} | {num(s['rate'])} | {num(s['min'])} – {num(s['max'])} | {num(s['p50_us'])} "
              f"| {num(s['p99_us'])} | {100 * s['busy']:.0f}% |" for n, s in echo.items()]
    lines += ["", net_ratio_line(cmp["echo"], "rate", "round trips/s"), "",
              f"### {NET_IDLE_CONNECTIONS:,} idle connections (net_idle_client against the echo servers)", "",
              "| server | median RSS bytes per connection | min – max | RSS before → after (median) |",
              "|---|---:|---:|---:|"]
    lines += [f"| {n} | {num(s['rss_per_conn'])} | {num(s['min'])} – {num(s['max'])} "
              f"| {s['rss_before'] / 2**20:.1f} → {s['rss_after'] / 2**20:.1f} MiB |" for n, s in idle.items()]
    lines += ["", net_ratio_line(cmp["idle"], "rss_per_conn", "RSS per connection (lower is better)"),
              ""]
    return lines


NET_METHOD = """Method: every server runs on one thread pinned to CPU 0 (`taskset -c 0`) and its load to CPU 1, on
loopback, each measurement against a freshly started server, the contenders in alternation (a round runs each
once, starting one further along the list each round); medians of {reps} rounds, min – max beside them. This is
a {cpus}-CPU virtual machine: a one-thread wrk ({conns} connections, one request in flight on each, a 1 s
warm-up run first, then {seconds} s measured) saturates its core at about the rate the faster servers reach, so
the req/s column is bounded by the load generator as well as by the server; server CPU µs per request
(utime + stime from /proc/<pid>/stat over the measured run ÷ requests completed) and "server core busy"
(that CPU time ÷ the run's wall time) show the server's own cost. Echo: {conns} connections with one
{size}-byte message in flight each, 1 s warm-up, {seconds} s measured; latency per round trip. Idle: VmRSS of
the echo server before the connections and {settle} s after all {idle:,} have echoed one 16-byte message
(so each sits in the server's next read), the difference ÷ {idle:,}. Servers: bench/net/ (one file per
contender; asyncio with asyncio.Protocol on {python}, Asio with a coroutine per connection, libuv with
callbacks), all answering with the same 13-byte body and setting TCP_NODELAY. Before any load the driver opens
and closes one connection to the fresh server, as wrk does before its run, so every server is measured after
it has seen a connection end (CPython's asyncio maps and unmaps a 256 KiB read buffer on every read until
then, which costs it two thirds of its echo rate). Reproduce: `python3 scripts/bench.py --only net`."""


def net_section(net: dict | None, cpus: int, load_note: str) -> list[str]:
    if net is None:
        return []
    cmp = net_comparison(net)
    lines = ["## Network I/O (loopback, one server thread)", "",
             NET_METHOD.format(reps=net["reps"], cpus=cpus, conns=NET_CONNECTIONS, seconds=net["seconds"],
                               size=NET_MESSAGE, settle=NET_IDLE_SETTLE, idle=NET_IDLE_CONNECTIONS,
                               python=net["libraries"]["python"].partition(" (")[0]), "",
             f"{load_note} A server core busy well below 100% in the echo table means the server was not "
             "the bottleneck: its CPU went to other work on the machine, or its load generator was too slow.", ""]
    lines += [f"- {note}" for note in net["notes"]] + ([""] if net["notes"] else [])
    return lines + net_tables(net, cmp)


def net_goal(goal: str, measured: float | None, limit: float, at_least: bool, text: str) -> str:
    """A Goals row: `measured` must be ≥ `limit` (at_least) or ≤ it; None means weft was not measured."""
    if measured is None:
        return f"| {goal} | not measured | not measured |"
    off = (limit - measured) / limit if at_least else (measured - limit) / limit
    return f"| {goal} | {text} | {'met' if off <= 0 else f'missed by {100 * off:.1f}%'} |"


def net_goals(net: dict | None) -> list[str]:
    if net is None:
        return []
    cmp = net_comparison(net)
    rows = []
    for test, what in (("http", "HTTP hello world req/s"), ("echo", "echo round trips/s")):
        weft, rival, st = cmp[test]
        r = st[weft]["rate"] / st[rival]["rate"] if weft and rival else None
        rows.append(net_goal(f"{what}: best weft backend ≥ 1.0× best of Asio/libuv", r, 1.0, True,
                             f"{r:.2f}× ({weft} vs {rival})" if r is not None else ""))
        if test == "http":
            c = st[weft]["cpu_us"] / st[rival]["cpu_us"] if weft and rival else None
            rows.append(net_goal("HTTP server CPU per request: ≤ 0.9× that of the faster of Asio/libuv", c, 0.9,
                                 False, f"{c:.2f}× ({st[weft]['cpu_us']:.2f} vs {st[rival]['cpu_us']:.2f} µs, "
                                 f"{weft} vs {rival})" if c is not None else ""))
    weft, _, st = cmp["idle"]
    rss = st[weft]["rss_per_conn"] if weft else None
    rows.append(net_goal(f"idle connection RSS: ≤ 200 bytes per connection ({NET_IDLE_CONNECTIONS:,} connections)",
                         rss, 200, False, f"{rss:,.0f} bytes ({weft})" if rss is not None else ""))
    return rows


def render(data: dict | None, tasks_text: str, others: dict, forkjoin: dict, net: dict | None,
           process: tuple | None, mach_before: dict, mach_after: dict, build_type: str,
           queue: tuple | None = None) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_b = ", ".join(f"{x:.2f}" for x in mach_before["load"])
    load_a = ", ".join(f"{x:.2f}" for x in mach_after["load"])
    sources = ([data] if data is not None else []) + [d for d, _, _ in forkjoin.values()] + ([net] if net else [])
    libs: dict = {}
    for source in sources:
        for key, version in source.get("libraries", {}).items():
            libs.setdefault(key, version)
    compiler = next((d["compiler"] for d in sources if "compiler" in d), "unknown")
    lines = [
        "# weft benchmark results",
        "",
        "<!-- Generated by scripts/bench.py from one run of the benchmarks; do not edit by hand. -->",
        "",
        f"- Machine: {mach_before['cpu']}; {mach_before['cpus']} CPUs (os.cpu_count()), "
        f"{mach_before['affinity']} in this process's affinity mask; {mach_before['kernel']}",
        f"- Compiler: {compiler}, {build_type} build",
        f"- Libraries: {', '.join(v for v in libs.values())}",
        f"- Load average (1, 5, 15 min) before the run: {load_b}; after: {load_a}",
        f"- Date: {now}; source: commit {git_commit()} (working tree)",
        f"- Reproduce: `{REPRODUCE}`",
        "",
    ]
    ratios: dict = {}
    task_lines: list[str] = []
    if data is not None:
        task_lines = ["## Task throughput (bench/tasks)", "",
                      "\"weft ÷ this\" is weft's median tasks/s (default options, the headline row) over the row's "
                      "median.", ""]
        more, ratios = tasks_section(data)
        task_lines += more
        task_lines += idle_section(data)
    lines += goals_section(data, ratios, others, forkjoin, net, process, queue)
    lines += task_lines
    for name, result in others.items():
        if name == "bench_channel":
            lines += ["## Channel (bench/channel)", ""]
        else:
            lines += ["## Tracing cost (bench/trace)", ""]
        if result["kind"] == "gbench":
            lines += gbench_section(name, result["data"])
            lines += ["Console output of the same run, verbatim:", "", "```", result["text"].rstrip(), "```", ""]
        else:
            lines += text_section(name, result["text"])
    busiest = max(mach_before["load"][0], mach_after["load"][0])
    if busiest > 0.5 * (mach_before["cpus"] or 1):
        load_note = (f"Other work shared the machine during this run (1-minute load average up to {busiest:.1f} "
                     f"on {mach_before['cpus']} CPUs), so absolute rates are noisy.")
    else:
        load_note = f"The machine was quiet during this run (1-minute load average at most {busiest:.1f})."
    lines += forkjoin_section(forkjoin)
    lines += net_section(net, mach_before["cpus"], load_note)
    if process is not None:
        lines += bench_process.section(*process)
    if queue is not None:
        lines += bench_queue.section(*queue)
    if data is not None:
        lines += [NOTES.format(cpus=mach_before["cpus"], tasks=data["tasks"], load_note=load_note)]
    if forkjoin:
        threads = next(iter(forkjoin.values()))[0]["threads"]
        lines += [FORKJOIN_NOTES.format(cpus=mach_before["cpus"], threads=threads,
                                        load_note=load_note + " Ratios come from medians of the same run, the "
                                        "contenders alternating; the min – max columns show the spread.")]
    if data is not None:
        lines += ["<details><summary>bench_tasks output</summary>", "", "```", tasks_text.rstrip(), "```", "",
                  "</details>", ""]
    for binary, _, _, _ in FORKJOIN:
        bench = binary.removeprefix("bench_")
        if bench in forkjoin:
            lines += [f"<details><summary>{binary} output</summary>", "", "```", forkjoin[bench][1].rstrip(), "```",
                      "", "</details>", ""]
    return "\n".join(lines)


def build_type_of(build_dir: Path) -> str:
    try:
        for line in (build_dir / "CMakeCache.txt").read_text().splitlines():
            if line.startswith("CMAKE_BUILD_TYPE:"):
                return line.partition("=")[2] or "default"
    except OSError:
        pass
    return "unknown"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build-dir", help="existing configured build directory (default: configure the bench preset)")
    ap.add_argument("--no-build", action="store_true", help="do not build; run what is in the build directory")
    ap.add_argument("--output", help="where to write the results (default: bench/RESULTS.md)")
    ap.add_argument("--only", help="comma-separated benchmarks to run, of: " + ", ".join(ALL_BENCHMARKS))
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: small sizes and few repetitions (checks the pipeline, not the figures)")
    ap.add_argument("--tasks", type=int, help="tasks per run (bench_tasks default: 1000000)")
    ap.add_argument("--reps", type=int, help="recorded repetitions of every program (default: each program's own)")
    ap.add_argument("--warmup", type=int, help="bench_tasks warm-up rounds (default 1)")
    ap.add_argument("--threads", type=int, help="workers per pool, for every program (default 2)")
    ap.add_argument("--net-seconds", type=int, help="measured seconds of every net run (default 5; 2 with --quick)")
    ap.add_argument("--idle-seconds", type=float,
                    help="idle-CPU windows of bench_tasks (default 2) and bench_idle (default 5)")
    args = ap.parse_args()

    selected = ALL_BENCHMARKS if not args.only else [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = [b for b in selected if b not in ALL_BENCHMARKS]
    if unknown:
        raise BenchError(f"unknown benchmark(s) {unknown}; choose from {ALL_BENCHMARKS}")
    if args.output is None:
        if args.only or args.quick:
            raise BenchError("--only and --quick make a partial or meaningless report: give --output")
        args.output = str(REPO / "bench" / "RESULTS.md")
    net_reps = args.reps or 3  # before --quick lowers the other programs' default
    if args.quick:
        args.tasks = args.tasks or 100000
        args.reps = args.reps or 2
        args.warmup = 0 if args.warmup is None else args.warmup
        args.idle_seconds = args.idle_seconds or 0.5

    for tool in ("cmake",):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} not found")
    build_dir = build(args)
    build_type = build_type_of(build_dir)
    if build_type != "Release":
        log(f"warning: build type is {build_type}, not Release")

    def required(name: str) -> Path:
        binary = find_binary(build_dir, name)
        if binary is None:
            raise BenchError(f"{name} not found under {build_dir}")
        return binary

    mach_before = machine()
    data, tasks_text = None, ""
    if "tasks" in selected:
        data, tasks_text = run_tasks(required("bench_tasks"), args)
    others = {}
    for name in ("bench_channel", "bench_trace"):
        if name.removeprefix("bench_") not in selected:
            continue
        binary = find_binary(build_dir, name)
        if binary is None:
            log(f"{name} not built; skipped")
            continue
        others[name] = run_other(binary, 2 if args.quick else 5)
    forkjoin = {}
    for binary_name, _, _, _ in FORKJOIN:
        bench = binary_name.removeprefix("bench_")
        if bench in selected:
            forkjoin[bench] = run_forkjoin(required(binary_name), args)
    net = run_net(build_dir, args, net_reps) if "net" in selected else None
    process = None
    if "process" in selected:
        required("bench_process_weft")
        try:
            process = (bench_process.run(build_dir, args.quick), bench_process.run_weft(build_dir, args.quick))
        except bench_process.ProcessBenchError as e:
            raise BenchError(str(e)) from e
    queue = None
    if "queue" in selected:
        required("bench_queue_weft")
        try:
            queue = (bench_queue.run(build_dir, args.quick), bench_queue.run_weft(build_dir, args.quick))
        except bench_queue.QueueBenchError as e:
            raise BenchError(str(e)) from e
    mach_after = machine()

    text = render(data, tasks_text, others, forkjoin, net, process, mach_before, mach_after, build_type, queue)
    out = Path(args.output)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(out)
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        print(f"bench.py: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    except subprocess.TimeoutExpired as e:
        print(f"bench.py: FAILED: timed out: {e}", file=sys.stderr)
        sys.exit(1)
