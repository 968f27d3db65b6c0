"""The notebooks execute top to bottom on their small settings (LIPSDP_NB_QUICK=1).

A failing cell fails the test; the committed notebooks carry the full-setting outputs.
"""

import pytest

pytest.importorskip("nbclient")
pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")
pytest.importorskip("mlxtend")
pytest.importorskip("torch")

from notebooks.make_notebooks import NOTEBOOKS, build, execute  # noqa: E402


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_notebook_executes(name):
    nb = execute(build(name, NOTEBOOKS[name]), quick=True, timeout=600)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    # every code cell ran
    assert all(c.get("execution_count") for c in nb.cells if c.cell_type == "code")
