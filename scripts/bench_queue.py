#!/usr/bin/env python3
"""The task queue's benchmark: weft::tasks (memory:// and sqlite://) against Celery 5 on a local redis-server.

    python3 scripts/bench_queue.py --build-dir build/bench            # run both sides, print the markdown section
    python3 scripts/bench_queue.py --build-dir build/bench --quick    # smoke run: small counts
    python3 scripts/bench_queue.py --build-dir build/bench --no-weft --json /tmp/queue.json

As a module (scripts/bench.py): run(build_dir, quick) runs bench/queue/celery_bench.py on Debian's
/usr/bin/python3 (it starts its own redis-server on a free loopback port and a Celery worker per pool, and stops
them) and returns {"celery": ..., ...} with its JSON; run_weft(build_dir, quick) runs bench_queue_weft from the
build directory (None when it is not built); section(data, weft) renders the markdown lines of RESULTS.md,
with the ratios and the goals, and goal_rows(data, weft) gives the same goals as rows of scripts/bench.py's
Goals table. bench_queue_weft's JSON keys: "memory" and "sqlite", each {"delay": {"tasks", "tasks_per_s"},
"group": {"tasks", "group_size", "tasks_per_s"}, "senders": {"tasks", "threads", "tasks_per_s"}, "roundtrip": {"samples", "p50_us", "p99_us"}, "idle_cpu":
{"ms_per_s"}, "rounds"}, "fsync" {"bytes", "samples", "p50_us", "p99_us"} and "max_group_size";
celery_bench.py's: "pools": {"prefork"|"threads": {"delay", "roundtrip", "idle_cpu":
{"worker_ms_per_s", "redis_ms_per_s"}}} (see the two programs' headers).

Both sides run in the same run of this script, one after the other, on the same machine under the same load.
Any failure raises QueueBenchError (exit status 1 from the command line). Python 3 standard library only.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_common  # noqa: E402
from bench_common import SectionBenchError, fmt, fmt_ratio, make_log, ratio, section_main  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
REPRODUCE = "python3 scripts/bench.py --only queue --output /tmp/queue_RESULTS.md"
# Celery is Debian's python3-celery: it runs on the system's Python, whichever Python runs this script.
PYTHON = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
CELERY_SCRIPT = REPO / "bench" / "queue" / "celery_bench.py"
CELERY_POOLS = ("prefork", "threads")

# (key, description, required, at_least): the goals of the task queue.
GOALS = {
    "memory": ("task queue, memory://: ≥ 500,000 tasks/s end to end (2 worker threads)", 500_000.0, True),
    "sqlite": ("task queue, sqlite:// with durable commits: ≥ 5,000 tasks/s end to end (2 worker threads)",
               5_000.0, True),
    "sqlite_p50": ("task queue, sqlite://: round trip (delay → get) p50 ≤ 2 ms", 2.0, False),
}


class QueueBenchError(SectionBenchError):
    pass


log = make_log("bench_queue.py")


def find_binary(build_dir: Path, name: str) -> Path | None:
    return bench_common.find_binary(build_dir, "queue", name)


def run_json(cmd: list[str]) -> dict:
    return bench_common.run_json(cmd, log, QueueBenchError, capture_stderr=False)


def run(build_dir: Path, quick: bool) -> dict:
    """Runs celery_bench.py (both pools) and returns its JSON, with this machine's load average around it."""
    cmd = [PYTHON, str(CELERY_SCRIPT), *(["--quick"] if quick else [])]
    load_before = os.getloadavg()
    celery = run_json(cmd)
    return {"celery": celery, "cpus": os.cpu_count(), "quick": quick, "commands": [" ".join(cmd)],
            "load": [load_before, os.getloadavg()]}


def run_weft(build_dir: Path, quick: bool) -> dict | None:
    """bench_queue_weft's JSON, or None when it is not built."""
    binary = find_binary(Path(build_dir), "bench_queue_weft")
    if binary is None:
        log(f"bench_queue_weft not found under {build_dir}: no weft column")
        return None
    return run_json([str(binary), *(["--quick"] if quick else [])])


# --- rendering ---------------------------------------------------------------------------------------------
def get(d: dict | None, *path: str) -> float | None:
    """d[path[0]][path[1]]..., or None where any step is missing."""
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return None if d is None else float(d)


def fmt_ms(us: float | None) -> str:
    return "—" if us is None else f"{us / 1e3:.3f}" if us < 1e3 else f"{us / 1e3:.2f}"


def celery_pools(data: dict) -> dict:
    return data.get("celery", {}).get("pools", {})


def best_celery(data: dict, key: str, lowest: bool = False) -> tuple[str | None, float | None]:
    """The Celery pool with the best figure `key` ("delay" rate, "p50_us"/"p99_us" time) and that figure."""
    best = (None, None)
    for name, pool in celery_pools(data).items():
        v = get(pool, "delay", "tasks_per_s") if key == "delay" else get(pool, "roundtrip", key)
        if v is not None and (best[1] is None or (v < best[1] if lowest else v > best[1])):
            best = (name, v)
    return best


def measured_goals(data: dict, weft: dict | None) -> dict:
    """{goal key: (measured value or None, the text shown for it)}."""
    out = {}
    pool, c_rate = best_celery(data, "delay")
    for key, broker in (("memory", "memory://"), ("sqlite", "sqlite://")):
        # Judged on the best of the three ways of sending, each named with its figure.
        forms = [("delay() from one thread", get(weft, key, "delay", "tasks_per_s")),
                 ("sent as groups", get(weft, key, "group", "tasks_per_s")),
                 (f"delay() from {int(get(weft, key, 'senders', 'threads') or 0)} threads",
                  get(weft, key, "senders", "tasks_per_s"))]
        forms = [(name, v) for name, v in forms if v is not None]
        if not forms:
            out[key] = (None, "—")
            continue
        best_name, best = max(forms, key=lambda f: f[1])
        text = (f"best: {fmt(best)} tasks/s, {best_name}; " + "; ".join(f"{name}: {fmt(v)}" for name, v in forms) +
                f" (Celery {pool} on redis, delay(): {fmt(c_rate)})")
        out[key] = (best, text)
    p50 = get(weft, "sqlite", "roundtrip", "p50_us")
    pool, c_p50 = best_celery(data, "p50_us", lowest=True)
    r = ratio(c_p50, p50)
    out["sqlite_p50"] = (None if p50 is None else p50 / 1e3,
                         f"{fmt_ms(p50)} ms (Celery {pool} on redis {fmt_ms(c_p50)} ms: weft "
                         f"{'—' if r is None else f'{r:.2f}×'} as fast)" if p50 is not None else "—")
    return out


def goal_rows(data: dict, weft: dict | None) -> list[str]:
    """Rows `| goal | measured | result |` for scripts/bench.py's Goals table."""
    rows = []
    for key, (value, text) in measured_goals(data, weft).items():
        goal, required, at_least = GOALS[key]
        if value is None:
            rows.append(f"| {goal} | not measured | not measured |")
            continue
        off = (required - value) / required if at_least else (value - required) / required
        if off <= 0:
            verdict = "met"
        elif at_least:
            verdict = f"missed by {100 * off:.0f}% ({100 * value / required:.1f}% of the goal)"
        else:
            verdict = f"missed by {100 * off:.0f}%"
        rows.append(f"| {goal} | {text} | {verdict} |")
    return rows


METHOD = """Both sides on this {cpus}-CPU machine, in the same run, one after the other, with concurrency 2 and the
same task, add(a, b) = a + b. weft: bench_queue_weft (bench/queue/bench_queue.cpp), one process holding an App
and a Worker{{concurrency 2}} (thread pool), once on memory:// and once on sqlite:// (broker and result backend
in one file of a fresh temporary directory; a message sent and a result stored are durable commits — the WAL is
synced before the call returns, and commits of several threads share one sync — while taking, renewing and
acknowledging a message commit without a sync of their own, as a power loss undoing them only runs a task again).
Celery: {celery} (Debian python3-celery; kombu {kombu}, redis-py {redis_py}, Python {python}) on redis-server
{redis} started by bench/queue/celery_bench.py on a free loopback port (`--bind 127.0.0.1 --save "" --appendonly
no`) as broker and result backend, worker `python3 -m celery -A celery_bench worker --concurrency 2 --pool
prefork` (Celery's default pool) and `--pool threads` in a process of its own, everything else as Celery ships it
(prefetch multiplier 4, log level WARNING, JSON); it counts as started once its first result has come back.
Celery has no in-memory transport between processes, so memory:// is compared with Celery's lightest real
setup, redis on loopback.

- Throughput: N calls `add.delay(i, i)`, then every result taken with `get()`, in order; tasks/s = N ÷ (first
  send → last result), after a warm-up batch; the median of the rounds (N × rounds below). weft also sends the
  same N calls as `group(add.s(i, i), …)` of at most {group_max} members (the most a group may have), every
  group built and sent (both timed) before any result is taken ("sent as groups"), and the same N calls with
  delay() from 4 threads at once (N/4 each) before any result is taken. One thread calling delay() on sqlite://
  waits for one durable commit per call, so the disk's sync time (below) bounds it; concurrent senders and
  groups share syncs. The goals are judged on the best of the three, named with its figure.
- Round trip: one call at a time, `add.delay(i, 1).get()`, after 20 untimed: p50 / p99 of {rt} calls.
- Idle CPU: the CPU time used over {idle} s with the worker started and no task sent — weft: its whole
  process (getrusage, user + system; the worker's heartbeat every 2 s falls inside); Celery: the worker's
  processes (main process and pool children; the sum of their threads' /proc/<pid>/task/<tid>/schedstat) and,
  apart, redis-server's.

{load}Reproduce: `{reproduce}` (or `python3 scripts/bench_queue.py --build-dir DIR` for this section alone)."""


def section(data: dict, weft: dict | None) -> list[str]:
    """The markdown lines of the task queue's part of RESULTS.md."""
    c = data.get("celery", {})
    versions = c.get("versions", {})
    pools = celery_pools(data)
    w = weft or {}
    lines = ["## Task queue: weft::tasks against Celery", ""]
    rt_counts = [str(int(get(w, k, "roundtrip", "samples") or 0)) + f" ({k}://)" for k in ("memory", "sqlite")
                 if k in w] + [str(int(get(p, "roundtrip", "samples") or 0)) + f" (Celery {n})"
                               for n, p in pools.items()]
    idle_s = [get(w, k, "idle_cpu", "seconds") for k in ("memory", "sqlite")] + \
             [get(p, "idle_cpu", "seconds") for p in pools.values()]
    idle_s = [s for s in idle_s if s is not None]
    load = data.get("load")
    load_text = (f"Load average (1 min) of this machine before the Celery side: {load[0][0]:.2f}, after it: "
                 f"{load[1][0]:.2f}. ") if load else ""
    lines += [METHOD.format(cpus=data.get("cpus") or c.get("cpus"), celery=versions.get("celery", "?"),
                            kombu=versions.get("kombu", "?"), redis_py=versions.get("redis_py", "?"),
                            python=versions.get("python", "?"), redis=versions.get("redis_server", "?"),
                            group_max=f"{int(get(w, 'max_group_size')):,}" if get(w, "max_group_size")
                            else "kMaxGroupSize",
                            rt=", ".join(rt_counts) or "—", idle=f"{max(idle_s):.1f}" if idle_s else "—",
                            load=load_text,
                            reproduce=REPRODUCE + (" --quick" if data.get("quick") else "")), ""]
    if data.get("quick"):
        lines += ["**--quick run: small counts, the figures are not meaningful.**", ""]
    if weft is None:
        lines += ["weft: not measured (bench_queue_weft was not run).", ""]

    # One column per contender.
    cols = [("weft memory://", w.get("memory")), ("weft sqlite://", w.get("sqlite"))] + \
           [(f"Celery {name} (redis)", p) for name, p in pools.items()]
    lines += ["| | " + " | ".join(name for name, _ in cols) + " |", "|---|" + "---:|" * len(cols)]

    def row(label: str, cells: list[str]) -> None:
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    row("N per throughput round × rounds",
        [f"{int(get(d, 'delay', 'tasks') or 0):,} × {len(d.get('delay', {}).get('samples', [])) or '?'}"
         if d else "—" for _, d in cols])
    row("delay() then get() each, tasks/s", [fmt(get(d, "delay", "tasks_per_s")) for _, d in cols])
    row("sent as groups, tasks/s", [fmt(get(d, "group", "tasks_per_s")) for _, d in cols])
    row("delay() from 4 threads, tasks/s", [fmt(get(d, "senders", "tasks_per_s")) for _, d in cols])
    row("round trip p50, ms", [fmt_ms(get(d, "roundtrip", "p50_us")) for _, d in cols])
    row("round trip p99, ms", [fmt_ms(get(d, "roundtrip", "p99_us")) for _, d in cols])
    row("idle CPU, ms per s (weft: its process; Celery: the worker's processes)",
        [fmt(get(d, "idle_cpu", "ms_per_s") if get(d, "idle_cpu", "ms_per_s") is not None
             else get(d, "idle_cpu", "worker_ms_per_s")) for _, d in cols])
    row("idle CPU of redis-server, ms per s", [fmt(get(d, "idle_cpu", "redis_ms_per_s")) for _, d in cols])
    row("worker ready after (first result), s", [fmt(get(d, "ready_s")) for _, d in cols])
    lines.append("")
    fs = w.get("fsync")
    if fs:
        lines += [f"sqlite://'s floor on this disk, measured just before it in the same temporary directory: "
                  f"{int(fs['bytes']):,} bytes appended and fdatasync()ed, p50 {fmt_ms(fs['p50_us'])} ms, p99 "
                  f"{fmt_ms(fs['p99_us'])} ms ({int(fs['samples'])} samples): one thread waiting for one durable commit "
                  f"per call can make at most {fmt(1e6 / fs['p50_us'])} calls/s here.", ""]

    # Ratios against each Celery pool.
    if weft is not None and pools:
        lines += ["weft ÷ Celery, same run (tasks/s: weft's over Celery's; round trips: Celery's time over "
                  "weft's, so above 1 weft is faster everywhere):", ""]
        lines += ["| | " + " | ".join(f"vs Celery {n}" for n in pools) + " |", "|---|" + "---:|" * len(pools)]
        for broker in ("memory", "sqlite"):
            if broker not in w:
                continue
            row(f"{broker}:// tasks/s, delay()", [fmt_ratio(ratio(get(w, broker, "delay", "tasks_per_s"),
                                                                  get(p, "delay", "tasks_per_s")))
                                                  for p in pools.values()])
            row(f"{broker}:// tasks/s, sent as groups", [fmt_ratio(ratio(get(w, broker, "group", "tasks_per_s"),
                                                                         get(p, "delay", "tasks_per_s")))
                                                         for p in pools.values()])
            row(f"{broker}:// tasks/s, delay() from 4 threads",
                [fmt_ratio(ratio(get(w, broker, "senders", "tasks_per_s"), get(p, "delay", "tasks_per_s")))
                 for p in pools.values()])
            for pct in ("p50", "p99"):
                row(f"{broker}:// round trip {pct}", [fmt_ratio(ratio(get(p, "roundtrip", f"{pct}_us"),
                                                                      get(w, broker, "roundtrip", f"{pct}_us")))
                                                      for p in pools.values()])
        lines.append("")

    lines += ["### Goals of the task queue", "", "| goal | measured | result |", "|---|---|---|"]
    lines += goal_rows(data, weft) + [""]
    return lines


def main() -> int:
    return section_main(__doc__, "bench_queue_weft", run, run_weft, section, QueueBenchError, "bench_queue.py")


if __name__ == "__main__":
    sys.exit(main())
