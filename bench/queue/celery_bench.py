#!/usr/bin/env python3
"""Celery on the workloads of bench/queue/bench_queue.cpp; prints one JSON object on stdout.

    /usr/bin/python3 bench/queue/celery_bench.py                        # prefork and threads pools
    /usr/bin/python3 bench/queue/celery_bench.py --quick                # small counts: a smoke run
    /usr/bin/python3 bench/queue/celery_bench.py --pools prefork --tasks 5000 --roundtrips 1000

Debian's python3-celery with python3-redis, broker and result backend on a redis-server started here on a
free loopback port (--bind 127.0.0.1 --save "" --appendonly no, in a temporary directory) and stopped at the
end. For each pool, a worker `python3 -m celery -A celery_bench worker --concurrency 2 --pool <pool>` (every
other setting Celery's default: prefetch multiplier 4, log level WARNING, JSON serializer, gossip, mingle
and events as Celery ships them) is started as a child process and is ready when a first task's result has
come back (bounded); then

  warm-up     200 calls, all results taken
  delay       N calls add.delay(i, i), then every result taken with .get(), in order: tasks/s =
              N / (first send -> last result); the median of `rounds` rounds. After each round (untimed) a
              gc.collect(), so that the round's AsyncResults, which sit in reference cycles, unsubscribe from
              their results then and not in the middle of the next measurement
  roundtrip   one call at a time: add.delay(i, 1).get(), `roundtrips` times after 20 untimed: p50 / p99 µs
  idle_cpu    the CPU time (every thread's /proc/<pid>/task/<tid>/schedstat, in ns) of the worker's processes
              (the main one and its pool's children) and, apart, of redis-server, over `idle_seconds` with no
              task sent: ms per s

The worker is then stopped with SIGTERM (Celery's warm shutdown), and SIGKILL to its process group if it has
not exited within 15 s; the keys are flushed before the next pool. The task, add(a, b) = a + b registered as
"bench.add", lives in this file, which the worker imports as the module celery_bench (PYTHONPATH is set to
this directory; no bytecode is written beside it). Any failure exits with status 1 and the worker's log.

JSON keys (scripts/bench_queue.py reads them): "versions" {python, celery, kombu, redis_py, redis_server},
"cpus", "concurrency", "pools": {"<pool>": {"ready_s", "delay": {"tasks", "tasks_per_s", "samples"},
"roundtrip": {"samples", "p50_us", "p99_us", "max_us"}, "idle_cpu": {"seconds", "worker_ms_per_s",
"redis_ms_per_s", "processes"}}}.
"""

from __future__ import annotations

import os
import sys

from celery import Celery

# The broker's URL comes from the environment, which this script sets for the worker it starts.
REDIS_URL_ENV = "WEFT_BENCH_REDIS_URL"
app = Celery("celery_bench", broker=os.environ.get(REDIS_URL_ENV, "redis://127.0.0.1:6379/0"),
             backend=os.environ.get(REDIS_URL_ENV, "redis://127.0.0.1:6379/0"))


@app.task(name="bench.add")
def add(a: int, b: int) -> int:
    return a + b


# --- the driver (run as a script) ---------------------------------------------------------------------------
import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
CONCURRENCY = 2
READY_TIMEOUT_S = 60    # a worker's first result, start-up included
RESULT_TIMEOUT_S = 120  # a safety net per result
STOP_TIMEOUT_S = 15     # SIGTERM to exit, then SIGKILL
REDIS_TIMEOUT_S = 10
WARMUP_ROUNDTRIPS = 20  # untimed, before the round trips that are


class BenchError(RuntimeError):
    pass


def log(msg: str) -> None:
    print(f"[celery_bench.py] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_ns_of(pid: int) -> int:
    """The CPU time of every thread of a process, in ns (0 once it has gone): the first field of each
    /proc/<pid>/task/<tid>/schedstat, the time spent running, which /proc/<pid>/stat gives only in clock ticks."""
    total = 0
    try:
        tids = [t.name for t in Path(f"/proc/{pid}/task").iterdir()]
    except OSError:
        return 0
    for tid in tids:
        try:
            total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # the thread ended meanwhile
    return total


def descendants(pid: int) -> list[int]:
    """pid and every process below it, from the parent ids in /proc/*/stat."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(text[text.rindex(")") + 2:].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += parents.get(p, [])
    return out


def stop_process(proc: subprocess.Popen, name: str, group: bool) -> None:
    """SIGTERM, then SIGKILL (to its process group when it leads one) after STOP_TIMEOUT_S."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log(f"{name} did not exit within {STOP_TIMEOUT_S} s of SIGTERM: SIGKILL")
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)
    if group:  # the pool's children, if any outlived their parent
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class RedisServer:
    def __init__(self, workdir: Path):
        self.port = free_port()
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", str(workdir), "--logfile", str(workdir / "redis.log")]
        log("$ " + " ".join(repr(c) if c == "" else c for c in cmd))
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        import redis
        self.client = redis.Redis(host="127.0.0.1", port=self.port)
        deadline = time.monotonic() + REDIS_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise BenchError(f"redis-server exited with status {self.proc.returncode}: {self.log_tail()}")
            try:
                if self.client.ping():
                    break
            except redis.exceptions.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise BenchError(f"redis-server did not answer PING within {REDIS_TIMEOUT_S} s: {self.log_tail()}")
            time.sleep(0.02)
        self.version = self.client.info("server").get("redis_version", "?")

    def log_tail(self) -> str:
        try:
            return (self.workdir / "redis.log").read_text()[-2000:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        self.client.close()
        stop_process(self.proc, "redis-server", group=True)


class CeleryWorker:
    def __init__(self, pool: str, url: str, workdir: Path):
        self.log_path = workdir / f"worker-{pool}.log"
        env = dict(os.environ, PYTHONPATH=str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                   PYTHONDONTWRITEBYTECODE="1", **{REDIS_URL_ENV: url})
        cmd = [sys.executable, "-m", "celery", "-A", "celery_bench", "worker", "--concurrency", str(CONCURRENCY),
               "--pool", pool, "--hostname", f"bench-{pool}@%h"]
        self.command = " ".join(cmd)
        log("$ " + self.command)
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(f"the Celery worker exited with status {self.proc.returncode}:\n{self.log_tail()}")

    def stop(self) -> None:
        t0 = time.perf_counter()
        stop_process(self.proc, "the Celery worker", group=True)
        log(f"the Celery worker stopped in {time.perf_counter() - t0:.2f} s (status {self.proc.returncode})")


def get_all(results: list, what: str) -> int:
    total = 0
    for r in results:
        total += r.get(timeout=RESULT_TIMEOUT_S)
    return total


def delay_round(n: int) -> float:
    t0 = time.perf_counter()
    results = [add.delay(i, i) for i in range(n)]
    total = get_all(results, "delay")
    elapsed = time.perf_counter() - t0
    if total != n * (n - 1):
        raise BenchError(f"delay: results sum to {total}, expected {n * (n - 1)}")
    return n / elapsed


def measure_pool(pool: str, redis_server: RedisServer, workdir: Path, args) -> dict:
    worker = CeleryWorker(pool, redis_server.url, workdir)
    try:
        t0 = time.perf_counter()
        first = add.delay(1, 1)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not first.ready():  # the worker's first result: it is up, connected and consuming
            worker.check_alive()
            if time.monotonic() > deadline:
                raise BenchError(f"no result from the Celery worker within {READY_TIMEOUT_S} s:\n{worker.log_tail()}")
            time.sleep(0.01)
        if first.get(timeout=RESULT_TIMEOUT_S) != 2:
            raise BenchError("the first task's result is not 2")
        ready_s = time.perf_counter() - t0
        log(f"{pool}: ready after {ready_s:.2f} s")
        delay_round(min(200, args.tasks))  # warm-up
        rates = []
        for _ in range(args.rounds):
            worker.check_alive()
            rates.append(delay_round(args.tasks))
            log(f"{pool}: delay, {args.tasks} tasks: {rates[-1]:.0f} tasks/s")
            gc.collect()  # the round's AsyncResults unsubscribe now, not inside the next measurement
        for i in range(WARMUP_ROUNDTRIPS):
            add.delay(i, 1).get(timeout=RESULT_TIMEOUT_S)
        lat = []
        for i in range(args.roundtrips):
            t = time.perf_counter()
            v = add.delay(i, 1).get(timeout=RESULT_TIMEOUT_S)
            lat.append((time.perf_counter() - t) * 1e6)
            if v != i + 1:
                raise BenchError(f"roundtrip: add({i}, 1) returned {v}")
        slowest = sorted(range(len(lat)), key=lat.__getitem__)[-3:]
        log(f"{pool}: slowest round trips: " + ", ".join(f"#{i} {lat[i]:.0f} µs" for i in reversed(slowest)))
        lat.sort()
        out = {"ready_s": ready_s, "command": worker.command,
               "delay": {"tasks": args.tasks, "tasks_per_s": statistics.median(rates), "samples": rates},
               "roundtrip": {"samples": len(lat), "p50_us": lat[len(lat) // 2], "p99_us": lat[len(lat) * 99 // 100],
                             "max_us": lat[-1]}}
        log(f"{pool}: round trip p50 {out['roundtrip']['p50_us']:.0f} µs, p99 {out['roundtrip']['p99_us']:.0f} µs")
        if args.idle_seconds > 0:
            time.sleep(0.2)
            worker.check_alive()
            pids = descendants(worker.proc.pid)
            w0 = sum(cpu_ns_of(p) for p in pids)
            r0 = cpu_ns_of(redis_server.proc.pid)
            t = time.perf_counter()
            time.sleep(args.idle_seconds)
            w1 = sum(cpu_ns_of(p) for p in pids)
            r1 = cpu_ns_of(redis_server.proc.pid)
            s = time.perf_counter() - t
            out["idle_cpu"] = {"seconds": s, "processes": len(pids), "worker_ms_per_s": (w1 - w0) / 1e6 / s,
                               "redis_ms_per_s": (r1 - r0) / 1e6 / s}
        worker.check_alive()
        return out
    except BaseException:
        log(f"the Celery worker's log:\n{worker.log_tail()}")
        raise
    finally:
        worker.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run, figures meaningless")
    parser.add_argument("--pools", default="prefork,threads", help="comma-separated Celery pools (prefork,threads)")
    parser.add_argument("--tasks", type=int, help="tasks per throughput round (default 3000; 300 with --quick)")
    parser.add_argument("--roundtrips", type=int, help="sequential round trips (default 500; 50 with --quick)")
    parser.add_argument("--rounds", type=int, help="throughput rounds, median reported (default 1)")
    parser.add_argument("--idle-seconds", type=float, help="idle CPU window, 0: none (default 2; 0.5 with --quick)")
    args = parser.parse_args()
    args.tasks = args.tasks or (300 if args.quick else 3000)
    args.roundtrips = args.roundtrips or (50 if args.quick else 500)
    args.rounds = args.rounds or 1
    if args.idle_seconds is None:
        args.idle_seconds = 0.5 if args.quick else 2.0
    pools = [p.strip() for p in args.pools.split(",") if p.strip()]
    for p in pools:
        if p not in ("prefork", "threads", "solo", "eventlet", "gevent"):
            parser.error(f"unknown pool {p}")

    import celery
    import kombu
    import redis
    result = {"versions": {"python": platform.python_version(), "celery": celery.__version__,
                           "kombu": kombu.__version__, "redis_py": redis.__version__},
              "cpus": os.cpu_count(), "concurrency": CONCURRENCY, "quick": args.quick, "pools": {}}
    try:
        with tempfile.TemporaryDirectory(prefix="weft-bench-celery-") as tmp:
            workdir = Path(tmp)
            server = RedisServer(workdir)
            try:
                result["versions"]["redis_server"] = server.version
                app.conf.update(broker_url=server.url, result_backend=server.url)
                for pool in pools:
                    result["pools"][pool] = measure_pool(pool, server, workdir, args)
                    # AsyncResults in reference cycles unsubscribe from their results when collected: while
                    # redis-server still runs (after it, Celery would retry the connection for many seconds).
                    gc.collect()
                    server.client.flushall()
                app.close()
            finally:
                gc.collect()
                server.stop()
    except BenchError as e:
        print(f"celery_bench.py: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
