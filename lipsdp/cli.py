"""The ``lipsdp`` command line (also ``python -m lipsdp``).

Subcommands::

    lipsdp estimate MODEL [--norm l2|linf] [--method neuron|layer|...] [--solver auto|ipm|cvxopt|...]
                          [--output ROWS] [--input-shape C,H,W] [--json] [--output-file F]
                          [--lower/--no-lower] [--memory-limit GIB] [--verbose] [--quiet]
                          [--region LOWER.npy UPPER.npy | --center X.npy --eps E [--ball linf|l2]]
    lipsdp info MODEL [--norm ...] [--input-shape ...] [--json]
    lipsdp solvers [--json]

MODEL is an ``.onnx`` file or a torch file holding a whole module (``torch.save(model)``,
``.pt``/``.pth``; needs ``--input-shape`` unless the first layer is Linear). TorchScript and
``torch.export`` (``.pt2``) files are refused with a clear message (not yet supported).
``--output`` selects what is bounded: ``3`` (row 3), ``0,2,5`` (rows), or
``3-5`` (the logit difference f_3 - f_5, what a robustness certificate needs).

Exit codes:

==  ==============================================================================
0   success (``estimate``: the bound is certified)
1   unexpected internal error (please report it)
2   bad input: usage error, missing or corrupt file, unsupported layer, bad norm/output
3   ``estimate`` finished but no bound could be certified (status ``not_certified``)
4   not enough resources: the LMI would not fit in memory (ProblemTooLargeError), or the
    requested solver is not installed/licensed
==  ==============================================================================

Errors are reported as one line on stderr: ``lipsdp: error: <reason>``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT, EXIT_NOT_CERTIFIED, EXIT_RESOURCES = 0, 1, 2, 3, 4

__all__ = ["main", "load_model", "parse_output"]


class _UsageError(Exception):
    pass


def _shape(text: str | None):
    if not text:
        return None
    try:
        return tuple(int(s) for s in text.replace("x", ",").split(",") if s.strip())
    except ValueError as exc:
        raise _UsageError(f"--input-shape must look like 1,28,28, got {text!r}") from exc


def parse_output(text: str | None, out_dim: int):
    """None, a list of row indices, or a (1, out_dim) logit-difference row from '3', '0,2', '3-5'."""
    if text is None:
        return None
    text = text.strip()
    try:
        if "-" in text.lstrip("-"):
            i, j = (int(s) for s in text.split("-"))
            if not (0 <= i < out_dim and 0 <= j < out_dim) or i == j:
                raise _UsageError(f"--output {text}: need two different rows in 0..{out_dim - 1}")
            c = np.zeros((1, out_dim))
            c[0, i], c[0, j] = 1.0, -1.0
            return c
        rows = [int(s) for s in text.split(",") if s.strip()]
    except ValueError as exc:
        raise _UsageError(f"--output must be a row (3), rows (0,2,5) or a difference (3-5), got {text!r}") from exc
    bad = [r for r in rows if not 0 <= r < out_dim]
    if bad or not rows:
        raise _UsageError(f"--output rows {bad or rows} out of range 0..{out_dim - 1}")
    return rows


def load_model(path: str, input_shape=None):
    """A :class:`lipsdp.Network` from a model file (see module docstring)."""
    from .errors import InvalidNetworkError, UnsupportedLayerError
    from .extract import extract

    if not os.path.exists(path):
        raise FileNotFoundError(f"no such model file: {path}")
    if os.path.isdir(path):
        raise InvalidNetworkError(f"{path} is a directory, not a model file")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".pt2":
        raise UnsupportedLayerError(f"{path}: torch.export archives are not supported yet (their graphs hold aten ops "
                                    "on parameters); save the module with torch.save(model) or export it to ONNX")
    if ext in (".pt", ".pth"):
        try:
            import torch
        except ImportError as exc:
            raise UnsupportedLayerError("torch model files need torch (pip install 'lipsdp[torch]')") from exc
        try:
            model = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:
            raise InvalidNetworkError(f"{path} could not be loaded by torch ({type(exc).__name__}: {exc})") from exc
        if isinstance(model, torch.jit.ScriptModule):
            raise UnsupportedLayerError(f"{path} is a TorchScript module; save the nn.Module itself "
                                        "(torch.save(model)) or export it to ONNX")
        if not isinstance(model, torch.nn.Module):
            raise InvalidNetworkError(f"{path} holds a {type(model).__name__}, not a whole torch module "
                                      "(a state_dict needs the model class: build the model and call "
                                      "lipsdp.estimate from Python)")
        model.eval()
        return extract(model, input_shape=input_shape)
    return extract(path, input_shape=input_shape)


def _parser() -> argparse.ArgumentParser:
    from .cli_region import add_region_arguments

    p = argparse.ArgumentParser(prog="lipsdp", description="Certified Lipschitz bounds of neural networks by SDP.",
                                epilog="Exit codes: 0 ok, 1 internal error, 2 bad input, 3 not certified, "
                                       "4 too large / solver unavailable.")
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("estimate", help="certified upper bound on the Lipschitz constant")
    e.add_argument("model", help="model file: .onnx or .pt/.pth (whole torch module)")
    e.add_argument("--norm", default="l2", help="l2 (default) or linf")
    e.add_argument("--method", default="neuron", help="neuron (default), layer, or another registered method")
    e.add_argument("--solver", default="auto", help="auto (default) or a backend name (see `lipsdp solvers`)")
    e.add_argument("--output", default=None, metavar="ROWS",
                   help="bound only rows: '3', '0,2,5', or a logit difference '3-5'")
    e.add_argument("--input-shape", default=None, help="per-sample input shape for torch files, e.g. 1,28,28")
    e.add_argument("--json", action="store_true", help="print the result as JSON")
    e.add_argument("--output-file", default=None, metavar="F", help="also write the JSON result to F")
    e.add_argument("--lower", action=argparse.BooleanOptionalAction, default=True,
                   help="compute the empirical lower bound (default: yes)")
    e.add_argument("--memory-limit", type=float, default=None, metavar="GIB",
                   help="memory the solve may use in GiB (default: what is available)")
    e.add_argument("--verbose", action="store_true", help="show the solver's iterations")
    e.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
    add_region_arguments(e)
    i = sub.add_parser("info", help="extracted structure, LMI size and memory estimate")
    i.add_argument("model")
    i.add_argument("--norm", default="l2")
    i.add_argument("--input-shape", default=None)
    i.add_argument("--json", action="store_true")
    s = sub.add_parser("solvers", help="available SDP backends and MOSEK license status")
    s.add_argument("--json", action="store_true")
    return p


def _progress(quiet: bool, msg: str) -> None:
    if not quiet:
        print(f"lipsdp: {msg}", file=sys.stderr, flush=True)


def _cmd_estimate(args) -> int:
    from .api import estimate, normalize_norm
    from .cli_region import region_from_args
    from .solvers import resolve_solver
    from .solvers.memory import lmi_dimensions

    norm = normalize_norm(args.norm)
    solver = resolve_solver(args.solver)
    _progress(args.quiet, f"loading {args.model}")
    net = load_model(args.model, _shape(args.input_shape))
    output = parse_output(args.output, net.out_dim)
    dims = lmi_dimensions(net, norm, args.method)
    _progress(args.quiet, f"{len(net.layers)} layers, {net.in_dim} inputs, {dims.neurons} neurons; solving an LMI "
                          f"of order {dims.n_solve} with {solver if args.solver != 'auto' else 'auto (' + solver + ' if it fits)'} "
                          f"(certification at order {dims.n_certify})")
    limit = None if args.memory_limit is None else args.memory_limit * 2**30
    region = region_from_args(args)
    if region is not None:
        _progress(args.quiet, f"local bound over {region!r}")
    res = estimate(net, norm=norm, method=args.method, solver=args.solver, output=output, lower=args.lower,
                   verbose=args.verbose, memory_limit=limit, region=region)
    _progress(args.quiet, f"done: status {res.status}")
    payload = res.to_dict()
    payload["model"] = os.path.abspath(args.model)
    if args.output_file:
        with open(args.output_file, "w") as fh:
            json.dump(payload, fh, indent=1)
    if args.json:
        print(json.dumps(payload, indent=1))
    else:
        print(res.summary())
    return EXIT_OK if res.certified else EXIT_NOT_CERTIFIED


def _cmd_info(args) -> int:
    from .api import normalize_norm
    from .solvers import available_solvers
    from .solvers.memory import available_memory, estimate_memory, lmi_dimensions

    norm = normalize_norm(args.norm)
    net = load_model(args.model, _shape(args.input_shape))
    avail = available_memory()
    info = {"model": os.path.abspath(args.model), "input_shape": list(net.input_shape), "in_dim": net.in_dim,
            "out_dim": net.out_dim, "layers": [layer.describe() for layer in net.layers],
            "feedforward": net.is_feedforward, "available_memory_gib": avail / 2**30, "lmi": {}}
    for method in ("neuron", "layer"):
        d = lmi_dimensions(net, norm, method)
        info["lmi"][method] = {"order_solved": d.n_solve, "order_certified": d.n_certify, "variables": d.n_vars,
                               "memory_gib": {s: estimate_memory(d, s) / 2**30 for s in available_solvers()}}
    if args.json:
        print(json.dumps(info, indent=1))
        return EXIT_OK
    print(net.summary())
    print(f"available memory: {avail / 2**30:.3g} GiB")
    for method, d in info["lmi"].items():
        mem = ", ".join(f"{s} {v:.3g}" + (" (too large)" if v * 2**30 > avail else "")
                        for s, v in d["memory_gib"].items())
        print(f"LipSDP-{method} ({norm}): LMI order {d['order_solved']} (certified {d['order_certified']}), "
              f"{d['variables']} variables; estimated memory GiB: {mem}")
    return EXIT_OK


def _cmd_solvers(args) -> int:
    from .solvers import AUTO_ORDER, BACKENDS, available_solvers, mosek_license_status

    avail = available_solvers()
    mosek = mosek_license_status()
    rows = [{"solver": s, "available": s in avail, "auto_rank": AUTO_ORDER.index(s) if s in AUTO_ORDER else None}
            for s in BACKENDS]
    if args.json:
        print(json.dumps({"available": avail, "auto": avail[0] if avail else None, "solvers": rows,
                          "mosek_license": mosek or "ok"}, indent=1))
        return EXIT_OK
    print(f"auto picks: {avail[0] if avail else 'nothing (install cvxpy with clarabel or scs)'}")
    for r in rows:
        print(f"  {r['solver']:<9} {'available' if r['available'] else 'not available'}")
    print(f"MOSEK: {mosek or 'licensed'}")
    return EXIT_OK


def main(argv=None) -> int:
    """Entry point of the ``lipsdp`` console script; returns the exit code (see module docstring)."""
    from .errors import (InvalidNetworkError, LipSDPError, ProblemTooLargeError, SolverUnavailableError,
                         TrainModeError, UnsupportedLayerError, UnsupportedNormError)

    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its message
        return EXIT_BAD_INPUT if exc.code else EXIT_OK
    cmd = {"estimate": _cmd_estimate, "info": _cmd_info, "solvers": _cmd_solvers}[args.command]

    def fail(code: int, exc: BaseException) -> int:
        msg = " ".join(str(exc).split())
        print(f"lipsdp: error: {msg}", file=sys.stderr)
        return code

    try:
        return cmd(args)
    except (ProblemTooLargeError, SolverUnavailableError) as exc:
        return fail(EXIT_RESOURCES, exc)
    except (FileNotFoundError, IsADirectoryError, _UsageError, InvalidNetworkError, UnsupportedLayerError,
            UnsupportedNormError, TrainModeError) as exc:
        return fail(EXIT_BAD_INPUT, exc)
    except (LipSDPError, ValueError) as exc:
        return fail(EXIT_BAD_INPUT if isinstance(exc, ValueError) else EXIT_INTERNAL, exc)
    except KeyboardInterrupt:
        print("lipsdp: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an internal error: one line, and the exit code says so
        return fail(EXIT_INTERNAL, f"internal error {type(exc).__name__}: {exc}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
