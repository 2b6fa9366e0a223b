"""The curation dashboard at the Param level (no browser): layout, toolbar, keys, lifetime."""

from __future__ import annotations

import numpy as np
import pytest

import spikeviz as sv

pn = pytest.importorskip("panel")

from spikeviz.app.curation_bar import describe  # noqa: E402
from spikeviz.app.dashboard import Dashboard, build_dashboard, show  # noqa: E402
from spikeviz.app.help import help_html  # noqa: E402
from spikeviz.app.shortcuts import KEYMAP, SHORTCUTS, KeyListener, normalize_key  # noqa: E402

FS = 30_000.0


def make_session(num_units=6, spikes_per_unit=400, duration_s=20.0, seed=3):
    """Units with known spike counts (unit u has spikes_per_unit + 10*u spikes)."""
    rng = np.random.default_rng(seed)
    counts = [spikes_per_unit + 10 * u for u in range(num_units)]
    units = np.repeat(np.arange(num_units, dtype=np.int32), counts)
    times = rng.choice(int(duration_s * FS), size=units.size, replace=False).astype(np.int64)
    order = np.argsort(times, kind="stable")
    sorting = sv.Sorting.from_arrays(times[order], units[order], FS,
                                     unit_ids=np.arange(10, 10 + num_units),
                                     num_samples=int(duration_s * FS))
    return sv.Session(sorting, cache_dir=None)


@pytest.fixture
def session():
    return make_session()


@pytest.fixture
def dashboard(session):
    board = Dashboard(session)
    yield board
    board.dispose()


def counts(sorting) -> dict:
    return {int(k): int(v) for k, v in sorting.spike_counts().items()}


def test_builds_with_every_view_and_the_layout(dashboard, session):
    dashboard.__panel__().get_root()
    for name in ("unit_table", "raster"):
        assert name in dashboard.views
    assert dashboard.curation is session.curation
    assert dashboard.selection.curation is session.curation
    # tabs: only the shown tab's view is active; views outside tabs always are
    shown = dashboard.centre.items[dashboard.centre.tabs.active][1]
    for _, view, _ in dashboard.centre.items + dashboard.right.items:
        if view is not None and "active" in view.param:
            assert view.active == (view is shown or view is
                                   dashboard.right.items[dashboard.right.tabs.active][1])
    template = build_dashboard(session)
    assert isinstance(template, pn.template.FastListTemplate)
    template.dashboard.dispose()


def test_switching_tabs_activates_only_the_shown_view(dashboard):
    views = [(i, v) for i, (_, v, _) in enumerate(dashboard.centre.items)
             if v is not None and "active" in v.param]
    if len(views) < 2:
        pytest.skip("fewer than two deferring views in the centre tabs")
    for i, view in views:
        dashboard.centre.tabs.active = i
        assert view.active
        assert all(not other.active for j, other in views if j != i)


def test_two_dashboards_have_their_own_selection_and_share_the_curation(session):
    one, two = Dashboard(session), Dashboard(session)
    try:
        assert one.selection is not two.selection
        assert one.curation is two.curation is session.curation
        one.selection.unit_ids = [10, 11]
        assert two.selection.unit_ids == []
        two.selection.unit_ids = [11, 14]
        new = one.curation.sorting.unit_ids.max() + 1
        assert one.bar.merge() == f"merged 10+11 → {new}"
        # the other dashboard follows the shared curation: 11 is gone from its selection,
        # its table lists the new unit, its undo button is enabled
        assert two.selection.unit_ids == [14]
        assert new in two.curation.sorting.unit_ids.tolist()
        assert not two.bar.undo_button.disabled
        assert "merged 10+11" in two.bar.log_pane.object
    finally:
        one.dispose()
        two.dispose()


def test_merge_through_the_toolbar_changes_the_sorting_and_the_views(dashboard, session):
    before = counts(session.curation.sorting)
    dashboard.selection.unit_ids = [12, 13]
    assert not dashboard.bar.merge_button.disabled
    dashboard.bar.merge_button.clicks += 1  # the button's handler
    after = counts(dashboard.curation.sorting)
    new = max(after)
    assert 12 not in after and 13 not in after
    assert after[new] == before[12] + before[13]
    assert dashboard.selection.unit_ids == [new]  # the new unit is selected
    assert dashboard.bar.status == f"merged 12+13 → {new}"
    table = dashboard.views["unit_table"]
    if hasattr(table, "frame") and "unit_id" in getattr(table, "frame", {}):
        ids = [int(u) for u in table.frame["unit_id"]]
        if new in ids:  # the reworked table follows the curation
            assert 12 not in ids and 13 not in ids
    correlograms = dashboard.views.get("correlograms")
    if correlograms is not None and hasattr(correlograms, "unit_ids"):
        assert correlograms.unit_ids == [new]
    # undo brings back (and selects) both parts; redo the merge again
    dashboard.bar.undo_button.clicks += 1
    assert counts(dashboard.curation.sorting) == before
    assert sorted(dashboard.selection.unit_ids) == [12, 13]
    assert dashboard.bar.status.startswith("undid: merged 12+13")
    dashboard.bar.redo_button.clicks += 1
    assert counts(dashboard.curation.sorting) == after
    assert dashboard.selection.unit_ids == [new]
    assert dashboard.bar.status == f"redid: merged 12+13 → {new}"


def test_label_tag_remove(dashboard):
    curation = dashboard.curation
    dashboard.selection.unit_ids = [10, 15]
    dashboard.bar.noise.clicks += 1
    assert curation.sorting.unit_table.loc[[10, 15], "label"].tolist() == ["noise", "noise"]
    assert curation.sorting.unit_table.loc[11, "label"] == "unsorted"
    dashboard.bar.tag_input.value_input = "burst, drift "
    assert not dashboard.bar.tag_button.disabled
    dashboard.bar.tag_button.clicks += 1
    assert curation.tags_of(10) == ["burst", "drift"]
    assert dashboard.bar.tag_input.value_input == ""
    dashboard.bar.remove_button.clicks += 1
    assert 10 not in curation.sorting.unit_ids and 15 not in curation.sorting.unit_ids
    assert dashboard.selection.unit_ids == []
    assert [a["op"] for a in curation.actions] == ["label", "tag", "remove"]


def test_split_the_selected_spikes(dashboard):
    curation = dashboard.curation
    sorting = curation.sorting
    positions = sorting.spike_indices(11)
    chosen = positions[::4]
    other = sorting.spike_indices(12)[:5]  # spikes of another unit are left out
    dashboard.selection.unit_ids = [11]
    assert dashboard.bar.split_button.disabled
    assert dashboard.bar.split_button.description is None  # no tooltip on a disabled button
    assert "select spikes" in dashboard.bar.split_refusal()
    dashboard.selection.spike_indices = np.concatenate([chosen, other])
    assert not dashboard.bar.split_button.disabled
    message = dashboard.handle_key("k")
    first, rest = dashboard.selection.unit_ids
    assert message == f"split 11 → {first}, {rest} ({chosen.size:,} spikes split off)"
    new = curation.sorting
    assert 11 not in new.unit_ids
    assert new.spike_indices(first).size == chosen.size
    assert new.spike_indices(rest).size == positions.size - chosen.size
    # the split part holds exactly the chosen spikes (times unchanged: no spike removed)
    np.testing.assert_array_equal(new.spike_train(first), sorting.sample_index[chosen])


def test_disabled_states(dashboard):
    bar, selection = dashboard.bar, dashboard.selection
    for button in (bar.good, bar.mua, bar.noise, bar.remove_button, bar.merge_button,
                   bar.split_button, bar.undo_button, bar.redo_button, bar.tag_button):
        assert button.disabled
    assert all(b.description is None for b in (bar.good, bar.undo_button, bar.split_button))
    selection.unit_ids = [10]
    assert not bar.good.disabled and not bar.remove_button.disabled
    assert bar.remove_button.description == "Remove the selected units (Delete)"
    assert bar.merge_button.disabled and bar.tag_button.disabled
    selection.unit_ids = [10, 11]
    assert not bar.merge_button.disabled
    all_spikes = dashboard.curation.sorting.spike_indices(10)
    selection.spike_indices = all_spikes[:3]
    assert bar.split_button.disabled
    assert bar.split_refusal() == "select exactly one unit to split"
    selection.unit_ids = [10]
    assert not bar.split_button.disabled
    selection.spike_indices = all_spikes  # every spike: nothing would remain
    assert bar.split_button.disabled and "nothing would remain" in bar.split_refusal()
    selection.spike_indices = dashboard.curation.sorting.spike_indices(11)[:3]
    assert bar.split_button.disabled and "belongs to unit 10" in bar.split_refusal()
    bar.label("good")
    assert not bar.undo_button.disabled and bar.redo_button.disabled
    assert bar.undo_button.description.startswith("Undo: labelled 10 good")
    bar.undo()
    assert bar.undo_button.disabled and not bar.redo_button.disabled


def test_refusals_are_messages_not_exceptions(dashboard):
    bar = dashboard.bar
    assert bar.merge() is None and bar.status_is_error
    assert "two or more" in bar.status
    assert bar.undo() is None and bar.status == "nothing to undo"
    dashboard.selection.unit_ids = [10]
    assert bar.split() is None and "select spikes" in bar.status
    assert bar.tag("  ") is None or bar.status_is_error
    # an error raised by the curation itself (an invalid label) is shown, not raised
    assert bar.label("excellent") is None and "label must be one of" in bar.status


def test_keyboard_labels_and_undoes(dashboard):
    curation = dashboard.curation
    dashboard.selection.unit_ids = [10, 11]
    dashboard.handle_key("g")
    assert curation.sorting.unit_table.loc[[10, 11], "label"].tolist() == ["good", "good"]
    dashboard.handle_key("m")
    assert curation.sorting.unit_table.loc[10, "label"] == "mua"
    dashboard.handle_key("ctrl+z")
    assert curation.sorting.unit_table.loc[10, "label"] == "good"
    dashboard.handle_key("ctrl+shift+z")
    assert curation.sorting.unit_table.loc[10, "label"] == "mua"
    dashboard.handle_key("ctrl+z")
    dashboard.handle_key("ctrl+y")
    assert curation.sorting.unit_table.loc[10, "label"] == "mua"
    dashboard.handle_key("shift+m")
    assert len(dashboard.selection.unit_ids) == 1
    merged = dashboard.selection.unit_ids[0]
    assert merged not in (10, 11) and 10 not in curation.sorting.unit_ids
    dashboard.handle_key("delete")
    assert merged not in curation.sorting.unit_ids
    assert dashboard.handle_key("x") is None  # not a shortcut: nothing happens
    assert not dashboard.help.visible
    dashboard.handle_key("?")
    assert dashboard.help.visible
    dashboard.selection.spike_indices = curation.sorting.spike_indices(12)[:2]
    dashboard.handle_key("escape")
    assert dashboard.selection.spike_indices is None


def test_key_listener_messages(dashboard):
    received = []
    listener = KeyListener(on_key=received.append)
    listener._handle_msg({"combo": "g"})
    listener._handle_msg({"combo": "not-a-key"})
    listener._handle_msg("garbage")
    assert received == ["g"]
    # the dashboard's listener is wired to its handler
    dashboard.selection.unit_ids = [13]
    dashboard.keys._handle_msg({"combo": "n"})
    assert dashboard.curation.sorting.unit_table.loc[13, "label"] == "noise"


@pytest.mark.parametrize("key, mods, combo", [
    ("g", {}, "g"), ("G", {"shift": True}, "shift+g"), ("M", {"shift": True}, "shift+m"),
    ("z", {"ctrl": True}, "ctrl+z"), ("Z", {"ctrl": True, "shift": True}, "ctrl+shift+z"),
    (" ", {}, "space"), (" ", {"shift": True}, "shift+space"), ("Delete", {}, "delete"),
    ("?", {"shift": True}, "?"), (".", {}, "."), ("Escape", {}, "escape"), ("", {}, ""),
])
def test_normalize_key(key, mods, combo):
    assert normalize_key(key, **mods) == combo


def test_every_shortcut_has_an_action_and_is_in_the_help(dashboard):
    for shortcut in SHORTCUTS:
        for key in shortcut.keys:
            assert KEYMAP[key] == shortcut.action
    assert len(KEYMAP) == sum(len(s.keys) for s in SHORTCUTS)  # no key bound twice
    text = help_html()
    for shortcut in SHORTCUTS:
        assert shortcut.label in text
    assert "<kbd>Ctrl+Shift+Z</kbd>" in text and "<kbd>Space</kbd>" in text
    for action in {s.action for s in SHORTCUTS} - {"toggle_help"}:
        dashboard.do(action)  # none raises, whatever the (empty) selection


def test_next_best_walks_the_units(dashboard):
    ids = dashboard.curation.sorting.unit_ids.tolist()
    seen = []
    for _ in range(3):
        dashboard.handle_key("space")
        seen += dashboard.selection.unit_ids[:1]
    assert len(seen) == 3 and len(set(seen)) == 3 and set(seen) <= set(ids)
    dashboard.handle_key("shift+space")
    assert dashboard.selection.unit_ids[:1] == seen[1:2]


def test_dispose_removes_the_watchers(session):
    curation = session.curation

    def watcher_count():
        return sum(len(w) for w in curation.param.watchers.get("sorting", {}).values())

    before = watcher_count()
    board = Dashboard(session)
    assert watcher_count() > before
    board.dispose()
    assert watcher_count() == before
    # a disposed dashboard no longer follows the curation
    status = board.bar.log_pane.object
    curation.label([10], "good")
    assert board.bar.log_pane.object == status


def test_an_action_stands_when_a_view_fails_to_follow_it(dashboard, monkeypatch):
    """A failing follower of the curation does not turn a done action into a refusal."""
    notes = []
    monkeypatch.setattr("spikeviz.app.curation_bar.notify",
                        lambda message, kind="info", duration=0: notes.append((kind, message)))

    def broken(event):
        raise RuntimeError("a view is broken")

    watcher = dashboard.curation.param.watch(broken, ["sorting"])
    try:
        dashboard.selection.unit_ids = [10, 11]
        message = dashboard.bar.merge()
    finally:
        dashboard.curation.param.unwatch(watcher)
    new = dashboard.curation.actions[-1]["new_unit_id"]
    assert message == f"merged 10+11 → {new}" and not dashboard.bar.status_is_error
    assert dashboard.selection.unit_ids == [new]
    assert notes and notes[-1][0] == "error" and "a view is broken" in notes[-1][1]


def test_describe():
    assert describe({"op": "merge", "unit_ids": [12, 15], "new_unit_id": 503}) == \
        "merged 12+15 → 503"
    assert describe({"op": "split", "unit_id": 4, "new_unit_ids": [7, 8]}) == "split 4 → 7, 8"
    assert describe({"op": "label", "unit_ids": [1, 2], "label": "good"}) == \
        "labelled 1, 2 good"
    assert describe({"op": "remove", "unit_ids": [3]}) == "removed 3"


def test_show_returns_a_dashboard(session):
    board = show(session)
    try:
        assert isinstance(board, Dashboard) and board.curation is session.curation
    finally:
        board.dispose()
