"""The model, compute and io layers never import Panel, Bokeh or HoloViews."""

import ast
import subprocess
import sys
from pathlib import Path

import spikeviz

PACKAGE = Path(spikeviz.__file__).parent
UI_LIBS = ("panel", "bokeh", "holoviews", "datashader", "hvplot")


def test_importing_the_headless_layers_loads_no_ui_library():
    code = (
        "import sys, spikeviz, spikeviz.model, spikeviz.io, spikeviz.compute\n"
        "import spikeviz.io.phy, spikeviz.io.npz, spikeviz.io.binary, spikeviz.io.spikeglx\n"
        "import spikeviz.compute.spikes, spikeviz.datasets, spikeviz.app.cli\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {UI_LIBS!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "", f"UI libraries imported: {out.stdout}"


def test_no_source_file_below_model_compute_io_imports_ui():
    offenders = []
    for layer in ("model", "compute", "io"):
        for path in (PACKAGE / layer).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in UI_LIBS]
    assert offenders == []
