#!/usr/bin/env python3
"""The process benchmarks' competitor and baseline side: Python's multiprocessing and the raw IPC figures.

    python3 scripts/bench_process.py --build-dir build/bench            # run, print the markdown section
    python3 scripts/bench_process.py --build-dir build/bench --quick    # smoke run: small counts
    python3 scripts/bench_process.py --build-dir build/bench --no-weft --json /tmp/process.json

As a module (scripts/bench.py): run(build_dir, quick) runs bench/process/python_mp.py on Debian's
/usr/bin/python3 and bench_process_raw from the build directory, one after the other, and returns
{"python": ..., "raw": ..., ...} with their JSON; section(data, weft) renders the markdown lines of RESULTS.md
from that and, when given, the JSON of bench_process_weft (its keys: submit {tasks_per_s}, map {items_per_s},
primes {limit, serial_s, parallel_s, speedup}, roundtrip {p50_us, p99_us}, queue_64 {messages_per_s},
queue_1mib {gb_per_s}; a bare number is accepted for any rate), with the ratios and the goals; goal_rows(data,
weft) gives the same goals as rows of scripts/bench.py's Goals table. run_weft(build_dir, quick) runs
bench_process_weft when it is built (this script's command line does, so that it shows the ratios alone).

Each program takes its own medians over rounds (3; 1 with --quick), and all of them are measured in the same
run of this script, so the ratios compare figures taken minutes apart on the same machine under the same load.
Any failure raises ProcessBenchError (exit status 1 from the command line). Python 3 standard library only.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_common  # noqa: E402
from bench_common import SectionBenchError, fmt, fmt_ratio, make_log, ratio, section_main  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
REPRODUCE = "python3 scripts/bench_process.py --build-dir build/bench"
# The multiprocessing side runs on the system's Python (Debian's python3), whichever Python runs this script.
PYTHON = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
PYTHON_SCRIPT = REPO / "bench" / "process" / "python_mp.py"

# (key, description, required, at_least): the goals of the process module; `required` is a ratio or a figure.
GOALS = {
    "submit_ppe": ("ProcessPool::submit ≥ 20× concurrent.futures.ProcessPoolExecutor.submit (tasks/s)", 20.0, True),
    "submit_pool": ("ProcessPool::submit ≥ 10× multiprocessing.Pool.apply_async (tasks/s)", 10.0, True),
    "map": ("ProcessPool::map ≥ 1.0× multiprocessing.Pool.map (items/s, 100,000 tiny items)", 1.0, True),
    "primes": ("CPU-bound primes: 2 worker processes ≥ 1.9× one process", 1.9, True),
    "queue_64": ("Queue ≥ 10M 64-byte messages/s between two processes", 10e6, True),
    "queue_1mib": ("Queue, 1 MiB messages ≥ 0.5× memcpy of 1 MiB (GB/s)", 0.5, True),
    "roundtrip": ("submit → result round trip on a warm pool: p50 ≤ 5 µs", 5.0, False),
    "idle_roundtrip": ("round trip on an idle pool ≤ one blocking hand-off each way (p50 of a blocking futex "
                       "ping-pong round trip after the same 50 ms idle gap)", 1.0, False),
    "idle_cpu": ("idle pool CPU ≈ 0: ≤ 10 ms per s (1% of a core), all of its processes", 10.0, False),
}


class ProcessBenchError(SectionBenchError):
    pass


log = make_log("bench_process.py")


def find_binary(build_dir: Path, name: str) -> Path | None:
    return bench_common.find_binary(build_dir, "process", name)


def run_json(cmd: list[str]) -> dict:
    return bench_common.run_json(cmd, log, ProcessBenchError, capture_stderr=True)


def run(build_dir: Path, quick: bool) -> dict:
    """Runs python_mp.py and bench_process_raw (built under build_dir) and returns their JSON."""
    build_dir = Path(build_dir)
    raw_binary = find_binary(build_dir, "bench_process_raw")
    if raw_binary is None:
        raise ProcessBenchError(f"bench_process_raw not found under {build_dir} (build target bench_process_raw)")
    extra = ["--quick"] if quick else []
    python_cmd = [PYTHON, str(PYTHON_SCRIPT), *extra]
    raw_cmd = [str(raw_binary), *extra]
    return {"python": run_json(python_cmd), "raw": run_json(raw_cmd), "cpus": os.cpu_count(), "quick": quick,
            "commands": [" ".join(python_cmd), " ".join(raw_cmd)]}


def run_weft(build_dir: Path, quick: bool) -> dict | None:
    """bench_process_weft's JSON, or None when it is not built."""
    binary = find_binary(Path(build_dir), "bench_process_weft")
    if binary is None:
        log(f"bench_process_weft not found under {build_dir}: no weft column")
        return None
    return run_json([str(binary), *(["--quick"] if quick else [])])


# --- rendering ---------------------------------------------------------------------------------------------
def figure(entry, *keys: str) -> float | None:
    """A rate from a case entry: the entry itself if it is a number, else its first present key of `keys`."""
    if entry is None:
        return None
    if isinstance(entry, (int, float)):
        return float(entry)
    for key in keys:
        if key in entry:
            return float(entry[key])
    return None


def rate_of(d: dict | None, case: str) -> float | None:
    if d is None:
        return None
    return figure(d.get(case), "tasks_per_s", "items_per_s", "messages_per_s", "gb_per_s")


def measured_goals(data: dict, weft: dict | None) -> dict:
    """{goal key: (measured value or None, the text shown for it)}."""
    py, raw = data["python"], data["raw"]
    w_submit = rate_of(weft, "submit")
    w_primes = weft.get("primes") if weft else None
    w_rt = weft.get("roundtrip") if weft else None
    memcpy = figure(raw.get("memcpy_1mib"), "gb_per_s")
    out = {}
    for key, case, name in (("submit_ppe", "submit", "ProcessPoolExecutor.submit"),
                            ("submit_pool", "apply_async", "Pool.apply_async")):
        w = rate_of(weft, "apply_async") if key == "submit_pool" and weft and "apply_async" in weft else w_submit
        r = ratio(w, rate_of(py, case))
        out[key] = (r, f"{fmt_ratio(r)} ({fmt(w)} vs {fmt(rate_of(py, case))} tasks/s, {name})")
    r = ratio(rate_of(weft, "map"), rate_of(py, "map"))
    out["map"] = (r, f"{fmt_ratio(r)} ({fmt(rate_of(weft, 'map'))} vs {fmt(rate_of(py, 'map'))} items/s)")
    s = figure(w_primes, "speedup")
    out["primes"] = (s, f"{fmt_ratio(s)} ({w_primes['serial_s']:.2f} s → {w_primes['parallel_s']:.2f} s below "
                        f"{w_primes.get('limit', 0):,}; multiprocessing {py['primes']['speedup']:.2f}× below "
                        f"{py['primes']['limit']:,})" if s is not None and "primes" in py else fmt_ratio(s))
    q = rate_of(weft, "queue_64")
    out["queue_64"] = (q, f"{fmt(q)} messages/s ({fmt_ratio(ratio(q, rate_of(py, 'queue_64')))} "
                          f"multiprocessing.Queue)" if q is not None else "—")
    g = rate_of(weft, "queue_1mib")
    r = ratio(g, memcpy)
    out["queue_1mib"] = (r, f"{fmt_ratio(r)} ({fmt(g)} vs {fmt(memcpy)} GB/s)" if r is not None else "—")
    p50 = figure(w_rt, "p50_us")
    out["roundtrip"] = (p50, f"{p50:.2f} µs (multiprocessing Pool {py['roundtrip']['p50_us']:.0f} µs)"
                        if p50 is not None and "roundtrip" in py else fmt(p50, " µs"))
    idle = figure(w_rt, "idle_p50_us")
    block = figure(raw.get("futex_pingpong_idle"), "p50_us")
    r = ratio(idle, block)
    out["idle_roundtrip"] = (r, f"{fmt_ratio(r)} ({fmt(idle)} vs {fmt(block)} µs)" if r is not None else "—")
    cpu = figure(weft.get("idle_cpu") if weft else None, "ms_per_s")
    out["idle_cpu"] = (cpu, fmt(cpu, " ms per s"))
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
        rows.append(f"| {goal} | {text} | {'met' if off <= 0 else f'missed by {100 * off:.0f}%'} |")
    return rows


METHOD = """Two worker processes for every contender on this {cpus}-CPU machine. multiprocessing:
{python} ({start} start method), bench/process/python_mp.py; weft: bench_process_weft (bench/process/weft.cpp);
the raw baselines: bench_process_raw (bench/process/raw_ipc.cpp: plain C++20 and Linux calls, no weft; its two
processes {pinned}, the others not pinned). Each
program warms up (pools started and given work) and reports the median of {rounds} rounds; all three ran in this
same run, one after the other. Throughput clocks start once the first message has arrived, so process start-up
is not counted; GB/s are 10^9 bytes/s. Primes: the same trial division everywhere (odd divisors d with d·d ≤ n,
chunks of 50,000 numbers, one task per chunk); pure Python counts below {py_limit:,} and the C++ below
{weft_limit}, so the speedups compare and the seconds do not. Reproduce: `{reproduce}`."""


def section(data: dict, weft: dict | None) -> list[str]:
    """The markdown lines of the process benchmarks' part of RESULTS.md."""
    py, raw = data["python"], data["raw"]
    w = weft or {}
    lines = ["## Processes: weft::process against multiprocessing", ""]
    lines += [METHOD.format(cpus=data.get("cpus") or py.get("cpus"), python=py.get("python", "Python"),
                            start=py.get("start_method", "default"), rounds=py.get("rounds"),
                            pinned="not pinned" if raw.get("pinned", "no") == "no" else
                            f"pinned to CPUs {raw['pinned']}",
                            py_limit=py.get("primes", {}).get("limit", 0),
                            weft_limit=f"{w['primes']['limit']:,}" if "primes" in w else "its --primes-limit",
                            reproduce=REPRODUCE + (" --quick" if data.get("quick") else "")), ""]
    if data.get("quick"):
        lines += ["**--quick run: small counts, the figures are not meaningful.**", ""]
    if weft is None:
        lines += ["weft: not measured (bench_process_weft was not run).", ""]

    # Headline comparison.
    lines += ["| workload | weft | multiprocessing | weft ÷ multiprocessing |", "|---|---:|---:|---:|"]
    for label, case, py_case, unit in (
            ("submit, tasks/s (vs ProcessPoolExecutor.submit)", "submit", "submit", ""),
            ("submit, tasks/s (vs Pool.apply_async)", "apply_async" if "apply_async" in w else "submit",
             "apply_async", ""),
            ("map over 100,000 tiny items, items/s (Pool.map)", "map", "map", ""),
            (f"Queue, 64-byte messages/s, pinned to CPUs {w.get('queue_pinned', '?')} (multiprocessing.Queue)",
             "queue_64", "queue_64", ""),
            ("Queue, 64-byte messages/s, both processes unpinned (multiprocessing.Queue)", "queue_64_unpinned",
             "queue_64", ""),
            ("Queue, 1 MiB messages, GB/s (multiprocessing.Queue)", "queue_1mib", "queue_1mib", "")):
        a, b = rate_of(weft, case), rate_of(py, py_case)
        lines.append(f"| {label} | {fmt(a, unit)} | {fmt(b, unit)} | {fmt_ratio(ratio(a, b))} |")
    wp, pp = w.get("primes"), py.get("primes")
    if pp:
        wtext = f"{wp['speedup']:.2f}× ({wp['serial_s']:.2f} → {wp['parallel_s']:.2f} s)" if wp else "—"
        lines.append(f"| primes, 2 processes ÷ one process | {wtext} | {pp['speedup']:.2f}× "
                     f"({pp['serial_s']:.2f} → {pp['parallel_s']:.2f} s) | — |")
    wr, pr = w.get("roundtrip"), py.get("roundtrip")
    if pr:
        for pct in ("p50_us", "p99_us"):
            a = figure(wr, pct)
            r = ratio(pr[pct], a)
            lines.append(f"| round trip of one task, {pct[:3]} µs (lower is better) | {fmt(a)} | {fmt(pr[pct])} "
                         f"| {'—' if r is None else f'{r:.2f}× faster'} |")
    if wr and "idle_p50_us" in wr:
        lines.append(f"| round trip on an idle pool (after 50 ms without work), p50 µs | {fmt(wr['idle_p50_us'])} "
                     f"| — | — |")
    if "idle_cpu" in w:
        lines.append(f"| idle pool CPU, ms per s | {fmt(figure(w['idle_cpu'], 'ms_per_s'))} | — | — |")
    lines.append("")

    # multiprocessing in full.
    lines += ["### multiprocessing in full", "", "| case | figure |", "|---|---:|"]
    for case, text in (("submit", "ProcessPoolExecutor(2).submit, tasks/s"),
                       ("apply_async", "Pool(2).apply_async, tasks/s"),
                       ("map", "Pool(2).map, items/s"),
                       ("queue_64", "Queue, 64-byte messages/s"), ("queue_1mib", "Queue, 1 MiB messages, GB/s"),
                       ("pipe_64", "Pipe (socketpair), 64-byte send_bytes/recv_bytes, messages/s"),
                       ("pipe_1mib", "Pipe (socketpair), 1 MiB messages, GB/s")):
        if case in py:
            lines.append(f"| {text} | {fmt(rate_of(py, case))} |")
    if pp:
        lines.append(f"| primes below {pp['limit']:,} ({pp['count']:,} primes): one process / Pool(2).map | "
                     f"{pp['serial_s']:.2f} s / {pp['parallel_s']:.2f} s = {pp['speedup']:.2f}× |")
    if pr:
        lines.append(f"| apply_async(...).get() round trip, p50 / p99 µs ({pr['samples']:,} samples) | "
                     f"{pr['p50_us']:.0f} / {pr['p99_us']:.0f} |")
    lines.append("")

    # Raw baselines, with weft beside the one it is built on.
    memcpy = raw.get("memcpy_1mib", {})
    ring, spin, block = raw.get("shm_ring_spin", {}), raw.get("futex_pingpong_spin", {}), \
        raw.get("futex_pingpong_block", {})
    p1m = raw.get("pipe_1mib", {})
    lines += ["### Raw baselines (bench_process_raw, two processes, no weft)", ""]
    lines += ["| baseline | figure | weft's counterpart | weft ÷ baseline |", "|---|---:|---:|---:|"] if weft else \
        ["| baseline | figure |", "|---|---:|"]
    q64, q1m = rate_of(weft, "queue_64"), rate_of(weft, "queue_1mib")
    rows = [
        (f"SPSC ring of 64-byte slots in shared memory, both sides spinning, messages/s ({ring.get('slots', '?')} "
         "slots)", ring.get("messages_per_s"), q64, "Queue 64 B"),
        ("pipe, 64-byte write/read, messages/s", raw.get("pipe_64", {}).get("messages_per_s"), q64, "Queue 64 B"),
        (f"pipe, 1 MiB writes, GB/s (default capacity, {p1m.get('pipe_capacity', 0) // 1024} KiB)",
         p1m.get("gb_per_s"), q1m, "Queue 1 MiB"),
        (f"pipe, 1 MiB writes, GB/s (capacity raised to {p1m.get('big_pipe_capacity', 0) // 1024} KiB)",
         p1m.get("big_pipe_gb_per_s"), q1m, "Queue 1 MiB"),
        ("memcpy 1 MiB → 1 MiB, one thread, in cache, GB/s", memcpy.get("gb_per_s"), q1m, "Queue 1 MiB"),
        (f"memcpy 1 MiB at a time through {memcpy.get('cold_mib', '?')} MiB of buffers, GB/s",
         memcpy.get("cold_gb_per_s"), q1m, "Queue 1 MiB"),
    ]
    for text, value, counterpart, name in rows:
        tail = f" {fmt(counterpart)} ({name}) | {fmt_ratio(ratio(counterpart, value))} |" if weft else ""
        lines.append(f"| {text} | {fmt(value)} |{tail}")
    rt = figure(wr, "p50_us")
    idle_rt, idle_pp = figure(wr, "idle_p50_us"), raw.get("futex_pingpong_idle", {})
    for text, d, mine, what in (
            (f"futex ping-pong round trip, spin {spin.get('spin_us', '?')} µs then FUTEX_WAIT", spin, rt,
             "submit → result p50"),
            ("futex ping-pong round trip, FUTEX_WAIT at once (blocking hand-off), back to back", block, rt,
             "submit → result p50"),
            (f"the same after {idle_pp.get('gap_ms', '?')} ms asleep before each round trip "
             f"({idle_pp.get('samples', '?')} samples)", idle_pp, idle_rt, "idle pool round trip p50")):
        if d:
            r = ratio(mine, d["p50_us"])
            tail = f" {fmt(mine)} ({what}) | {'—' if r is None else f'{r:.2f}× the time'} |" if weft else ""
            lines.append(f"| {text}, p50 / p99 µs | {d['p50_us']:.2f} / {d['p99_us']:.2f} |{tail}")
    lines += ["", "The ring publishes every message as it is written (as a Queue must) and its consumer reads the "
              "shared index only when it has caught up, so each message costs about one cache-line transfer "
              "between the cores; the spin ping-pong round trip is two. Both spin without sleeping (the ring "
              "yields its core after 4,096 empty polls), so they lose more than a sleeping design on a loaded "
              "machine. A pool task's round trip is at least two hand-offs and some work, so it cannot beat one "
              "spinning ping-pong round trip; the blocking ping-pong is what a hand-off to a sleeping process "
              "costs on this machine. A vCPU of this VM that has been idle for a while is slower to wake than one that "
              "halted a moment ago, so a hand-off to an idle pool is compared with the ping-pong after the same "
              "idle gap.", ""]

    lines += ["### Goals of the process module", "", "| goal | measured | result |", "|---|---|---|"]
    lines += goal_rows(data, weft) + [""]
    return lines


def main() -> int:
    return section_main(__doc__, "bench_process_weft", run, run_weft, section, ProcessBenchError, "bench_process.py")


if __name__ == "__main__":
    sys.exit(main())
