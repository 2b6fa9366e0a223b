"""View base class: deferred work while hidden, failures isolated, disposal."""

from __future__ import annotations

import numpy as np
import pytest

import spikeviz as sv

pytest.importorskip("panel")

from spikeviz.views.base import View


class Recorder(View):
    """A view that records the unit selections it saw (and can be told to fail)."""

    def __init__(self, session, fail=False, **params):
        super().__init__(session, **params)
        self.fail, self.seen, self.refreshes = fail, [], 0
        self._watch(self.selection, "unit_ids", self._changed)

    def _changed(self, event):
        if self.fail:
            raise ValueError("broken view")
        self.seen.append(list(event.new))

    def refresh(self):
        self.refreshes += 1
        self.seen.append(list(self.selection.unit_ids))


def session():
    sorting = sv.Sorting.from_arrays(np.arange(0, 9000, 30), np.arange(300) % 3 * 1,
                                     30000.0, unit_ids=[5, 7, 9])
    return sv.Session(sorting, cache_dir=None)


def test_views_of_one_session_share_selection_and_curation():
    s = session()
    a, b = Recorder(s), Recorder(s)
    assert a.selection is b.selection is s.selection and a.curation is s.curation
    s.selection.unit_ids = [7]
    assert a.seen == b.seen == [[7]]


def test_a_failing_view_does_not_stop_the_others(caplog):
    s = session()
    broken, fine = Recorder(s, fail=True), Recorder(s)
    s.selection.unit_ids = [9]
    assert fine.seen == [[9]]
    assert "broken view" in caplog.text and "Recorder failed" in caplog.text
    broken.fail = False
    broken.active = False
    broken.active = True  # a failed view is stale and redraws when shown again
    assert broken.seen == [[9]] and broken.refreshes == 1


def test_hidden_view_defers_and_refreshes_once_when_shown():
    s = session()
    view = Recorder(s, active=False)
    s.selection.unit_ids = [5]
    s.selection.unit_ids = [5, 7]
    assert view.seen == [] and view.refreshes == 0
    view.active = True
    assert view.seen == [[5, 7]] and view.refreshes == 1


def test_disposed_view_stops_following():
    s = session()
    view = Recorder(s)
    view.dispose()
    s.selection.unit_ids = [7]
    assert view.seen == []
