#!/usr/bin/env python3
"""Python's multiprocessing on the workloads of bench/process/weft.cpp; prints one JSON object on stdout.

    /usr/bin/python3 bench/process/python_mp.py                  # every case (about 40 s on 2 cores)
    /usr/bin/python3 bench/process/python_mp.py --quick          # smaller counts: a smoke run
    /usr/bin/python3 bench/process/python_mp.py --cases map,roundtrip --primes-limit 1000000

Two worker processes everywhere, started with the platform's default start method (fork on Linux). Every case
warms up first (pools started and given a batch of work), then times `rounds` rounds with time.perf_counter
and reports the median. Cases and JSON keys (scripts/bench_process.py reads them):

  submit       concurrent.futures.ProcessPoolExecutor(2).submit of tiny(x) = x + 1, N submitted, then every
               result awaited: "submit": {"tasks", "tasks_per_s"}
  apply_async  multiprocessing.Pool(2).apply_async, the same: "apply_async": {"tasks", "tasks_per_s"}
  map          Pool(2).map(tiny, range(100_000)), default chunk size: "map": {"items", "items_per_s"}
  primes       primes below --primes-limit (default 2_000_000) in chunks of 50_000, one process against
               Pool(2).map(chunksize=1) over the chunks: "primes": {"limit", "chunk", "count", "serial_s",
               "parallel_s", "speedup"}. The C++ contenders count below 2*10**7 with the same algorithm
               (count_primes below); pure Python would take minutes there, so the speedups compare and the
               seconds do not.
  roundtrip    apply_async(tiny, (i,)).get() one at a time on a warm Pool(2): "roundtrip": {"samples",
               "p50_us", "p99_us"}
  queue        multiprocessing.Queue, bytes objects put by a producer process and got by this one:
               "queue_64": {"messages", "messages_per_s"} and "queue_1mib": {"messages", "gb_per_s"}
  pipe         multiprocessing.Pipe() (duplex: a socketpair), send_bytes in a producer process, recv_bytes here:
               "pipe_64": {"messages", "messages_per_s"} and "pipe_1mib": {"messages", "gb_per_s"}

GB/s are 10**9 bytes per second. Throughput clocks start when the first message has arrived (the producer is
running) and stop at the last, so process start-up is not counted. Standard library only.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import multiprocessing
import os
import platform
import statistics
import sys
import time

WORKERS = 2
CASES = ["submit", "apply_async", "map", "primes", "roundtrip", "queue", "pipe"]
PRIMES_CHUNK = 50_000
MAP_ITEMS = 100_000


def tiny(x: int) -> int:
    return x + 1


# The primes algorithm every contender uses (bench/process/weft.cpp matches it):
#   count the primes n in [lo, hi) by trial division: n < 2 is not prime; an even n is prime only if it is 2;
#   an odd n >= 3 is prime if no odd d with 3 <= d and d*d <= n divides it.
# The range [0, limit) is cut into chunks of 50,000 numbers, [k*50000, min(limit, (k+1)*50000)); the serial run
# counts them in order in one process, the parallel run hands one chunk per task to the two workers. Chunks
# higher up cost more (longer trial division), so one task per chunk balances the load as it goes.
# (d <= isqrt(n) is the same bound as d*d <= n, written so that Python loops in C.)
def count_primes(lo: int, hi: int) -> int:
    count = 0
    for n in range(lo, hi):
        if n < 2:
            continue
        if n % 2 == 0:
            count += n == 2
            continue
        for d in range(3, math.isqrt(n) + 1, 2):
            if n % d == 0:
                break
        else:
            count += 1
    return count


def count_chunk(bounds: tuple[int, int]) -> int:
    return count_primes(*bounds)


def produce_queue(q, count: int, size: int) -> None:
    message = b"m" * size
    for _ in range(count):
        q.put(message)


def produce_pipe(conn, count: int, size: int) -> None:
    message = b"m" * size
    for _ in range(count):
        conn.send_bytes(message)
    conn.close()


def rate_rounds(rounds: int, once) -> float:
    """The median over `rounds` calls of once(), each returning a rate."""
    return statistics.median(once() for _ in range(rounds))


def bench_submit(n: int, rounds: int) -> dict:
    with concurrent.futures.ProcessPoolExecutor(WORKERS) as ex:
        for f in [ex.submit(tiny, i) for i in range(min(n, 2000))]:  # warm-up: workers started and busy once
            f.result()

        def once() -> float:
            t0 = time.perf_counter()
            futures = [ex.submit(tiny, i) for i in range(n)]
            total = sum(f.result() for f in futures)
            elapsed = time.perf_counter() - t0
            assert total == n * (n + 1) // 2
            return n / elapsed

        return {"tasks": n, "tasks_per_s": rate_rounds(rounds, once)}


def bench_apply_async(pool, n: int, rounds: int) -> dict:
    for r in [pool.apply_async(tiny, (i,)) for i in range(min(n, 2000))]:  # warm-up
        r.get()

    def once() -> float:
        t0 = time.perf_counter()
        results = [pool.apply_async(tiny, (i,)) for i in range(n)]
        total = sum(r.get() for r in results)
        elapsed = time.perf_counter() - t0
        assert total == n * (n + 1) // 2
        return n / elapsed

    return {"tasks": n, "tasks_per_s": rate_rounds(rounds, once)}


def bench_map(pool, rounds: int) -> dict:
    pool.map(tiny, range(MAP_ITEMS))  # warm-up

    def once() -> float:
        t0 = time.perf_counter()
        out = pool.map(tiny, range(MAP_ITEMS))
        elapsed = time.perf_counter() - t0
        assert out[-1] == MAP_ITEMS
        return MAP_ITEMS / elapsed

    return {"items": MAP_ITEMS, "items_per_s": rate_rounds(rounds, once)}


def bench_primes(pool, limit: int, rounds: int) -> dict:
    chunks = [(lo, min(limit, lo + PRIMES_CHUNK)) for lo in range(0, limit, PRIMES_CHUNK)]
    pool.map(count_chunk, chunks[:WORKERS], chunksize=1)  # warm-up: both workers have run the function
    serial, parallel, count = [], [], None
    for _ in range(rounds):
        t0 = time.perf_counter()
        a = sum(count_chunk(c) for c in chunks)
        serial.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        b = sum(pool.map(count_chunk, chunks, chunksize=1))
        parallel.append(time.perf_counter() - t0)
        if a != b or (count is not None and a != count):
            raise RuntimeError(f"primes: serial counted {a}, parallel {b}")
        count = a
    s, p = statistics.median(serial), statistics.median(parallel)
    return {"limit": limit, "chunk": PRIMES_CHUNK, "count": count, "serial_s": s, "parallel_s": p,
            "speedup": s / p}


def bench_roundtrip(pool, samples: int) -> dict:
    for i in range(200):  # warm-up
        pool.apply_async(tiny, (i,)).get()
    lat = []
    for i in range(samples):
        t0 = time.perf_counter()
        r = pool.apply_async(tiny, (i,)).get()
        lat.append((time.perf_counter() - t0) * 1e6)
        assert r == i + 1
    lat.sort()
    return {"samples": samples, "p50_us": lat[len(lat) // 2], "p99_us": lat[len(lat) * 99 // 100]}


def transfer(kind: str, count: int, size: int, rounds: int) -> float:
    """Median rate of `count` messages of `size` bytes from a producer process: messages/s, or GB/s if large."""
    def once() -> float:
        if kind == "queue":
            q = multiprocessing.Queue()
            producer = multiprocessing.Process(target=produce_queue, args=(q, count, size))
            receive = q.get
        else:
            receive_end, send_end = multiprocessing.Pipe()
            producer = multiprocessing.Process(target=produce_pipe, args=(send_end, count, size))
            receive = receive_end.recv_bytes
        producer.start()
        if kind == "pipe":
            send_end.close()  # the child's copy is the only one left
        first = receive()  # the producer is running: start the clock
        t0 = time.perf_counter()
        for _ in range(count - 1):
            m = receive()
        elapsed = time.perf_counter() - t0
        producer.join()
        if producer.exitcode != 0 or len(first) != size or len(m) != size:
            raise RuntimeError(f"{kind}: producer exit code {producer.exitcode}")
        if kind == "pipe":
            receive_end.close()
        return (count - 1) / elapsed if size < 4096 else (count - 1) * size / elapsed / 1e9

    once()  # warm-up
    return rate_rounds(rounds, once)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run, figures meaningless")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of " + ",".join(CASES))
    parser.add_argument("--primes-limit", type=int, default=None,
                        help="count primes below this (default 2000000; 400000 with --quick)")
    args = parser.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {','.join(unknown)}; known: {','.join(CASES)}")
    quick = args.quick
    rounds = 1 if quick else 3
    limit = args.primes_limit or (400_000 if quick else 2_000_000)

    out = {"python": f"{platform.python_implementation()} {platform.python_version()}",
           "executable": sys.executable, "start_method": multiprocessing.get_start_method(),
           "workers": WORKERS, "cpus": os.cpu_count(), "rounds": rounds, "quick": quick}
    t_start = time.perf_counter()
    if "submit" in cases:
        out["submit"] = bench_submit(2_000 if quick else 20_000, rounds)
    pool_cases = [c for c in cases if c in ("apply_async", "map", "primes", "roundtrip")]
    if pool_cases:
        with multiprocessing.Pool(WORKERS) as pool:
            if "apply_async" in cases:
                out["apply_async"] = bench_apply_async(pool, 5_000 if quick else 50_000, rounds)
            if "map" in cases:
                out["map"] = bench_map(pool, rounds + 2)
            if "primes" in cases:
                out["primes"] = bench_primes(pool, limit, 1 if quick else 2)
            if "roundtrip" in cases:
                out["roundtrip"] = bench_roundtrip(pool, 500 if quick else 2_000)
    for kind in ("queue", "pipe"):
        if kind in cases:
            small = transfer(kind, 20_000 if quick else 200_000, 64, rounds)
            big_count = 50 if quick else 1_000
            big = transfer(kind, big_count, 1 << 20, rounds)
            out[f"{kind}_64"] = {"messages": 20_000 if quick else 200_000, "messages_per_s": small}
            out[f"{kind}_1mib"] = {"messages": big_count, "gb_per_s": big}
    out["total_s"] = time.perf_counter() - t_start
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
