#!/usr/bin/env python3
"""Builds and runs weft's benchmarks and writes bench/RESULTS.md from what they measured.

    python3 scripts/bench.py                      # configure + build the `bench` preset, run, write
    python3 scripts/bench.py --build-dir DIR      # use an existing build directory (built, not configured)
    python3 scripts/bench.py --tasks 200000 --reps 3 --output /tmp/RESULTS.md   # a quick look

Runs bench_tasks (required; its --json output is the source of every figure in the task tables), then
bench_channel and bench_trace when their binaries exist. A Google Benchmark binary is run with
--benchmark_out_format=json (5 repetitions, aggregates) and tabulated, its console output included as
well; any other binary's output is included verbatim. Any build or run
failure stops the script with a non-zero exit status, and RESULTS.md is then left untouched: it is only
ever written whole, from one complete run.

Python 3 standard library only.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REPRODUCE = "python3 scripts/bench.py"

# (workload id, contender name, required ratio weft/contender, description)
GOALS = [
    ("detached", "oneTBB", 1.0, "detached tasks: weft ≥ 1.0× oneTBB task_group"),
    ("detached", "Asio", 2.0, "detached tasks: weft ≥ 2× asio::thread_pool"),
    ("futures", "textbook pool + packaged_task", 2.0,
     "a future per task: weft ≥ 2× textbook pool with std::packaged_task"),
]
IDLE_GOAL_FRACTION = 0.01  # "≈ 0": at most 1% of one core while idle


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


def strip_ansi(text: str) -> str:
    """Drops terminal colour codes (a custom console reporter may colour regardless of --benchmark_color)."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def is_google_benchmark(binary: Path) -> bool:
    proc = subprocess.run([str(binary), "--help"], text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=60)
    return "benchmark_filter" in proc.stdout


def run_other(binary: Path) -> dict:
    """Runs bench_channel / bench_trace. A Google Benchmark binary writes JSON to a file
    (--benchmark_out, which works even when the binary installs its own console reporter) and its console
    output is kept too; any other binary's output is kept verbatim."""
    if not is_google_benchmark(binary):
        return {"kind": "text", "text": strip_ansi(run([str(binary)], capture=True))}
    with tempfile.TemporaryDirectory() as tmp:
        out_json = Path(tmp) / "out.json"
        text = run([str(binary), f"--benchmark_out={out_json}", "--benchmark_out_format=json",
                    "--benchmark_repetitions=5", "--benchmark_report_aggregates_only=true",
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


def goals_section(data: dict, ratios: dict, others: dict) -> list[str]:
    lines = ["## Goals", "", "| goal | measured | result |", "|---|---:|---|"]
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
    what = "median of 5 repetitions" if has_aggregates else "single runs"
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


def render(data: dict, tasks_text: str, others: dict, mach_before: dict, mach_after: dict, build_type: str) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_b = ", ".join(f"{x:.2f}" for x in mach_before["load"])
    load_a = ", ".join(f"{x:.2f}" for x in mach_after["load"])
    libs = data.get("libraries", {})
    lines = [
        "# weft benchmark results",
        "",
        "<!-- Generated by scripts/bench.py from one run of the benchmarks; do not edit by hand. -->",
        "",
        f"- Machine: {mach_before['cpu']}; {mach_before['cpus']} CPUs (os.cpu_count()), "
        f"{mach_before['affinity']} in this process's affinity mask; {mach_before['kernel']}",
        f"- Compiler: {data.get('compiler', 'unknown')}, {build_type} build",
        f"- Libraries: {', '.join(v for v in libs.values())}",
        f"- Load average (1, 5, 15 min) before the run: {load_b}; after: {load_a}",
        f"- Date: {now}; source: commit {git_commit()} (working tree)",
        f"- Reproduce: `{REPRODUCE}`",
        "",
        "## Task throughput (bench/tasks)",
        "",
        "\"weft ÷ this\" is weft's median tasks/s (default options, the headline row) over the row's median.",
        "",
    ]
    task_lines, ratios = tasks_section(data)
    lines += task_lines
    lines += idle_section(data)
    lines += goals_section(data, ratios, others)
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
    lines += [NOTES.format(cpus=mach_before["cpus"], tasks=data["tasks"], load_note=load_note)]
    lines += ["<details><summary>bench_tasks output</summary>", "", "```", tasks_text.rstrip(), "```", "",
              "</details>", ""]
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
    ap.add_argument("--output", default=str(REPO / "bench" / "RESULTS.md"), help="where to write the results")
    ap.add_argument("--tasks", type=int, help="tasks per run (bench_tasks default: 1000000)")
    ap.add_argument("--reps", type=int, help="recorded repetitions (default 7)")
    ap.add_argument("--warmup", type=int, help="warm-up rounds (default 1)")
    ap.add_argument("--threads", type=int, help="workers per pool (default 2)")
    ap.add_argument("--idle-seconds", type=float, help="idle-CPU window (default 2)")
    args = ap.parse_args()

    for tool in ("cmake",):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} not found")
    build_dir = build(args)
    build_type = build_type_of(build_dir)
    if build_type != "Release":
        log(f"warning: build type is {build_type}, not Release")

    tasks_bin = find_binary(build_dir, "bench_tasks")
    if tasks_bin is None:
        raise BenchError(f"bench_tasks not found under {build_dir}")
    mach_before = machine()
    data, tasks_text = run_tasks(tasks_bin, args)
    others = {}
    for name in ("bench_channel", "bench_trace"):
        binary = find_binary(build_dir, name)
        if binary is None:
            log(f"{name} not built; skipped")
            continue
        others[name] = run_other(binary)
    mach_after = machine()

    text = render(data, tasks_text, others, mach_before, mach_after, build_type)
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
