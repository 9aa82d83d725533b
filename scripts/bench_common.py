"""What the benchmark section modules (bench_process.py, bench_queue.py) share: running a benchmark program
for the JSON it prints, formatting figures and ratios, and the command line of a module run on its own.

Python 3 standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
TIMEOUT_S = 600  # per program: a safety net, each normally takes well under a minute


class SectionBenchError(RuntimeError):
    """A benchmark program that failed, timed out or printed no JSON."""


def make_log(program: str) -> Callable[[str], None]:
    def log(msg: str) -> None:
        print(f"[{program}] {msg}", file=sys.stderr, flush=True)
    return log


def find_binary(build_dir: Path, subdir: str, name: str) -> Path | None:
    """The built benchmark `name` under build_dir/bench/<subdir>, or directly in build_dir."""
    for candidate in (build_dir / "bench" / subdir / name, build_dir / name):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def run_json(cmd: list[str], log: Callable[[str], None], error: type[SectionBenchError],
             capture_stderr: bool) -> dict:
    """Runs cmd and returns the JSON object it printed on stdout; `error` on any failure. Its stderr is passed
    through (progress) unless capture_stderr, then it is part of the error's text."""
    log("$ " + " ".join(cmd))
    try:
        proc = subprocess.run(cmd, cwd=REPO, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE if capture_stderr else None, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise error(f"{cmd[0]} did not finish within {TIMEOUT_S} s: {' '.join(cmd)}") from None
    if proc.returncode != 0:
        text = f"exit status {proc.returncode}: {' '.join(cmd)}\n--- stdout ---\n{proc.stdout}"
        if capture_stderr:
            text += f"\n--- stderr ---\n{proc.stderr}"
        raise error(text)
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        raise error(f"{' '.join(cmd)} printed no JSON object ({e}):\n{proc.stdout}") from None


def fmt(v: float | None, unit: str = "") -> str:
    if v is None:
        return "—"
    if v >= 100:
        text = f"{v:,.0f}"
    elif v >= 10:
        text = f"{v:.1f}"
    else:
        text = f"{v:.2f}"
    return text + unit


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def fmt_ratio(r: float | None) -> str:
    return "—" if r is None else f"{r:.2f}×" if r < 100 else f"{r:,.0f}×"


def section_main(doc: str, weft_binary: str, run: Callable, run_weft: Callable, section: Callable,
                 error: type[SectionBenchError], program: str) -> int:
    """The command line of a section module run on its own: runs both sides and prints the section."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--build-dir", default=str(REPO / "build" / "bench"),
                        help="a built bench build directory (default build/bench)")
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run, figures meaningless")
    parser.add_argument("--no-weft", action="store_true", help=f"do not run {weft_binary} even if it is built")
    parser.add_argument("--json", help="also write every program's JSON to this file")
    args = parser.parse_args()
    build_dir = Path(args.build_dir).resolve()
    try:
        data = run(build_dir, args.quick)
        weft = None if args.no_weft else run_weft(build_dir, args.quick)
    except error as e:
        print(f"{program}: {e}", file=sys.stderr)
        return 1
    if args.json:
        Path(args.json).write_text(json.dumps({"data": data, "weft": weft}, indent=2) + "\n")
    print("\n".join(section(data, weft)))
    return 0
