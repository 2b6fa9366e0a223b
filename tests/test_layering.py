"""DESIGN.md's layering: app → views → model → compute, io → model; no UI below views.

Checked two ways: what importing the headless layers actually loads, and every import
statement (absolute or relative, at module level or inside functions) in the source.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import spikeviz

PACKAGE = Path(spikeviz.__file__).parent
UI_LIBS = ("panel", "bokeh", "holoviews", "datashader", "hvplot")

# layer -> spikeviz layers it must not import
FORBIDDEN = {
    "compute": ("model", "io", "views", "app", "datasets"),
    "model": ("io", "views", "app", "datasets"),
    "io": ("views", "app", "datasets", "compute"),
}


def imports_of(path: Path) -> list[str]:
    """Absolute module names imported anywhere in ``path``."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
    package = package.removesuffix(".__init__")
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
                names += [prefix] + [f"{prefix}.{a.name}" for a in node.names]
            else:
                names.append(node.module)
    return names


def layer_files(layer):
    return sorted((PACKAGE / layer).rglob("*.py"))


def test_relative_imports_are_resolved():
    names = imports_of(PACKAGE / "io" / "phy.py")
    assert "spikeviz.model" in names and "spikeviz.errors" in names


def test_importing_the_headless_layers_loads_no_ui_library():
    code = (
        "import sys, spikeviz, spikeviz.model, spikeviz.io, spikeviz.compute\n"
        "import spikeviz.io.phy, spikeviz.io.npz, spikeviz.io.binary, spikeviz.io.spikeglx\n"
        "import spikeviz.compute.spikes, spikeviz.datasets, spikeviz.app, spikeviz.app.cli\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {UI_LIBS!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "", f"UI libraries imported: {out.stdout}"


@pytest.mark.parametrize("layer", ["model", "compute", "io", "datasets"])
def test_no_ui_import_below_the_views(layer):
    offenders = [f"{p.name}: {n}" for p in layer_files(layer) for n in imports_of(p)
                 if n.split(".")[0] in UI_LIBS]
    assert offenders == []


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_import_only_downwards(layer):
    offenders = [f"{p.name}: {n}" for p in layer_files(layer) for n in imports_of(p)
                 if n.split(".")[0] == "spikeviz" and len(n.split(".")) > 1
                 and n.split(".")[1] in FORBIDDEN[layer]]
    assert offenders == []


def test_importing_spikeviz_loads_no_optional_format_library():
    """pynwb/hdmf and SpikeInterface load only when a file of theirs is read or written."""
    code = (
        "import sys, spikeviz, spikeviz.export, spikeviz.io\n"
        "heavy = ('pynwb', 'hdmf', 'spikeinterface', 'neo', 'phylib')\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "", f"imported at start-up: {out.stdout}"
