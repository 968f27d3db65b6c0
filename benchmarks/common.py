"""Shared pieces of the benchmark suites: machine facts, JSON results, markdown tables, isolated runs.

Every suite is a module ``benchmarks/<suite>.py`` with ``main(argv=None)``; it prints a
markdown table and writes ``benchmarks/results/<suite>.json`` (machine, versions, date, rows).
Each suite has ``--quick`` (under 2 minutes, run in CI) and a full size.
"""

from __future__ import annotations

import datetime as _dt
import json
import multiprocessing as mp
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def machine_info() -> dict:
    """Machine, library versions and date, for the JSON files."""
    import cvxpy
    import scipy

    info = {
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "cvxpy": cvxpy.__version__,
    }
    try:
        import lipsdp

        info["lipsdp"] = lipsdp.__version__
        info["solvers"] = lipsdp.available_solvers()
    except Exception:  # pragma: no cover
        pass
    try:
        with open("/proc/meminfo") as fh:
            info["memory_gib"] = round(int(fh.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    return info


def _jsonable(v):
    from lipsdp.result import _jsonable as j

    return j(v)


def save_results(suite: str, rows: list[dict], meta: dict | None = None, out_dir: Path | None = None) -> Path:
    """Write ``{"suite", "machine", "meta", "rows"}`` as JSON; returns the path.

    The folder is ``out_dir``, else ``$LIPSDP_BENCH_RESULTS``, else ``benchmarks/results`` (the tests
    point the variable at a temporary folder so that CI never rewrites the committed results).
    """
    out_dir = Path(out_dir or os.environ.get("LIPSDP_BENCH_RESULTS") or RESULTS)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{suite}.json"
    payload = {"suite": suite, "machine": machine_info(), "meta": meta or {}, "rows": rows}
    path.write_text(json.dumps(_jsonable(payload), indent=1))
    return path


def fmt(v, spec: str = ".6g") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if not np.isfinite(v):
            return "-"
        return format(v, spec)
    return str(v)


def markdown_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """columns: (key, header, format spec)."""
    head = "| " + " | ".join(h for _, h, _ in columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(fmt(r.get(k), f) for k, _, f in columns) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def _child(conn, fn, args, kwargs):
    t0 = time.perf_counter()
    try:
        out = fn(*args, **kwargs)
        err = None
    except Exception as exc:  # reported to the parent
        out, err = None, f"{type(exc).__name__}: {exc}"
    wall = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    conn.send((out, err, wall, peak_mb))
    conn.close()


def run_isolated(fn, *args, timeout: float | None = None, **kwargs) -> dict:
    """Run ``fn(*args, **kwargs)`` in a fresh process: its result, error, wall time and peak RSS (MB).

    ``fn`` must be importable (module level) and return something picklable. On timeout the
    child is killed and ``error`` says so; a child that dies (e.g. killed for memory) is an error
    row too, never a crash of the suite.
    """
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, fn, args, kwargs))
    t0 = time.perf_counter()
    proc.start()
    child.close()
    if parent.poll(timeout):
        try:
            out, err, wall, peak = parent.recv()
        except EOFError:  # the child died without answering (killed for memory, crashed)
            proc.join()
            out, err, wall, peak = (None, f"the process died (exit code {proc.exitcode}; killed for memory?)",
                                    time.perf_counter() - t0, None)
        proc.join()
    else:
        proc.kill()
        proc.join()
        out, err, wall, peak = None, f"timeout after {timeout:.0f} s", time.perf_counter() - t0, None
    return {"result": out, "error": err, "wall": wall, "peak_mb": peak}
