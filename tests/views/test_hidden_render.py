"""Every dashboard view, built hidden (the state of a tab not yet shown), renders Bokeh
models BokehJS accepts.

A view in a hidden tab draws nothing until shown, so its first render holds empty sources. A
colour column of an empty pandas frame is float64, which BokehJS refuses ("invalid color
array") and then draws nothing in the tab, with no error on the server (the probe tab was
blank in the browser for that reason). Every ColumnDataSource column named like a colour must
hold text, before and after the view is shown.
"""

from __future__ import annotations

import numpy as np
import pytest

import spikeviz as sv
from spikeviz.datasets import generate_to_folder

pn = pytest.importorskip("panel")

from spikeviz.app.layout import VIEWS, make_view  # noqa: E402
from spikeviz.model.selection import Selection  # noqa: E402


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    folder = generate_to_folder(tmp_path_factory.mktemp("hidden") / "phy", duration_s=6.0,
                                num_channels=16, num_units=5, seed=2)
    session = sv.load(folder)
    session.cache_dir = None
    return session


def _colour_columns(root) -> dict:
    """The source columns glyphs read as colours directly (a field without a colour mapper:
    a mapped numeric column is fine)."""
    from bokeh.core.property.vectorization import Field
    from bokeh.models import GlyphRenderer

    found = {}
    for renderer in root.select({"type": GlyphRenderer}):
        data = renderer.data_source.data if hasattr(renderer.data_source, "data") else {}
        for glyph in (renderer.glyph, renderer.selection_glyph, renderer.nonselection_glyph,
                      renderer.hover_glyph, renderer.muted_glyph):
            if glyph is None or isinstance(glyph, str):
                continue
            props = glyph.properties_with_values(include_defaults=False)
            for attr, spec in props.items():
                if "color" not in attr or not isinstance(spec, Field):
                    continue
                if isinstance(spec.transform, type(None)) or \
                        type(spec.transform).__name__ == "UnspecifiedType":
                    if spec.field in data:
                        found[(renderer.id, attr, spec.field)] = data[spec.field]
    return found


def _text(values) -> bool:
    """A column BokehJS reads as colours: a list of strings (an empty list is fine: it is
    sent as a plain JSON list) or a text array; never a numeric array."""
    if isinstance(values, (list, tuple)):
        return all(isinstance(v, str) for v in values)
    return np.asarray(values).dtype.kind in "OUS"


@pytest.mark.parametrize("spec", VIEWS, ids=[s.name for s in VIEWS])
def test_hidden_view_renders_text_colour_columns(session, spec):
    curation = session.curation
    selection = Selection.for_session(session, curation=curation)
    view = make_view(spec, session, selection, curation, active=False)
    root = pn.panel(view).get_root()
    before = _colour_columns(root)
    view.active = True
    selection.unit_ids = curation.sorting.unit_ids[:2].tolist()
    after = _colour_columns(root)
    for where, columns in (("hidden", before), ("shown", after)):
        for key, values in columns.items():
            assert _text(values), (spec.name, where, key, type(values), values[:3])
    view.dispose()
