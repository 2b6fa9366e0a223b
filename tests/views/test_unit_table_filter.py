"""The unit table's safe filter expression: accepted grammar, exact rows, refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from spikeviz.errors import InputError
from spikeviz.views.expression import Expression, ExpressionError, filter_mask


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(5)
    n = 60
    snr = rng.uniform(0.0, 12.0, n)
    snr[::7] = np.nan  # unknown metric values
    return pd.DataFrame({
        "unit_id": np.arange(n) * 3 + 2,
        "label": rng.choice(["good", "mua", "noise", "unsorted"], n).astype(object),
        "tags": rng.choice(["", "burst", "drift,burst"], n).astype(object),
        "snr": snr,
        "num_spikes": rng.integers(0, 5000, n),
        "firing_rate_hz": rng.uniform(0.0, 40.0, n),
        "KS label": rng.choice(["good", "mua"], n).astype(object),
    })


def _rows(frame, text):
    return frame.index[filter_mask(frame, text)].tolist()


def _expected(frame, mask):
    return frame.index[np.asarray(mask, dtype=bool)].tolist()


def test_grammar_gives_exactly_the_rows_of_an_independent_mask(frame):
    f = frame
    snr = f["snr"].to_numpy()
    label = f["label"].to_numpy()
    n = f["num_spikes"].to_numpy()
    rate = f["firing_rate_hz"].to_numpy()
    ids = f["unit_id"].to_numpy()
    with np.errstate(invalid="ignore"):
        cases = {
            'snr > 5 and label == "good"': (snr > 5) & (label == "good"),
            "snr > 5 & label == 'good'": (snr > 5) & (label == "good"),
            'label in ["good", "mua"]': np.isin(label, ["good", "mua"]),
            "label not in ('noise',)": ~np.isin(label, ["noise"]),
            "not snr > 5": ~(snr > 5),
            "~(snr > 5) | num_spikes >= 4000": ~(snr > 5) | (n >= 4000),
            "1 < snr <= 7.5": (snr > 1) & (snr <= 7.5),
            "num_spikes / 100 > firing_rate_hz": n / 100 > rate,
            "num_spikes % 2 == 0 or -firing_rate_hz < -30": (n % 2 == 0) | (-rate < -30),
            "(snr * 2 + 1) ** 2 >= 100": (snr * 2 + 1) ** 2 >= 100,
            "unit_id // 3 in [0, 5, 10]": np.isin(ids // 3, [0, 5, 10]),
            "snr != snr": np.isnan(snr),  # NaN is unequal to itself, as in pandas
            "snr == snr": ~np.isnan(snr),
            "tags == ''": f["tags"].to_numpy() == "",
            "`KS label` == 'mua' and label != 'mua'":
                (f["KS label"].to_numpy() == "mua") & (label != "mua"),
            "True": np.ones(len(f), bool),
            "unit_id == -1": np.zeros(len(f), bool),
            'label == 3': np.zeros(len(f), bool),  # other type: never equal
        }
    for text, mask in cases.items():
        assert _rows(f, text) == _expected(f, mask), text
    assert _rows(f, "") == _rows(f, "   ") == f.index.tolist()
    # NaN compares False both ways
    assert not set(_rows(f, "snr > 5")) & set(np.flatnonzero(np.isnan(snr)))
    assert not set(_rows(f, "snr <= 5")) & set(np.flatnonzero(np.isnan(snr)))


def test_agrees_with_pandas_query_on_safe_text(frame):
    for text in ['snr > 5 and label == "good"', "num_spikes > 100 or firing_rate_hz < 2",
                 "label in ['good', 'mua'] and not snr > 3"]:
        expected = frame.query(text).index.tolist()  # trusted text only, as a reference
        assert _rows(frame, text) == expected


@pytest.mark.parametrize("text, words", [
    ("__import__('os')", "function calls"),
    ("__import__('os').system('true')", "not allowed"),
    ("snr.real > 1", "attribute access"),
    ("label.str.len() > 2", "not allowed"),
    ("().__class__", "not allowed"),
    ("snr > 1 and open('x')", "function calls"),
    ("lambda: 1", "lambda"),
    ("snr[0] > 1", "subscripts"),
    ("label in [x for x in 'ab']", "not allowed"),
    ("snr if snr else 1", "conditional"),
    ("(y := 3) > 1", "assignments"),
    ("f'{snr}' == 'a'", "f-strings"),
    ("{1: 2}", "dicts"),
    ("snr in label", "in"),
    ("snr in [len]", "inside a list"),
    ("__builtins__", "'__builtins__'"),
    ("@snr > 1", "not a valid expression"),
    ("snr >", "not a valid expression"),
    ("nope > 1", "unknown column 'nope'"),
    ("snr", "must be a condition"),
    ("label + 1 > 2", "text column 'label'"),
    ("'a' * 10 == label", "arithmetic on 'a'"),
    ("label > 3", "cannot order column 'label'"),
    ("`KS label == 'a'", "backtick"),
    ("snr > 1 and " * 300 + "True", "longer than"),
])
def test_everything_else_is_refused_with_a_clear_message(frame, text, words):
    with pytest.raises(ExpressionError) as info:
        filter_mask(frame, text)
    assert isinstance(info.value, InputError)  # the app shows InputErrors as one line
    assert words in info.value.message


def test_refused_before_anything_runs(monkeypatch):
    """A call is refused at parse time: nothing is evaluated, even if the name exists."""
    calls = []
    frame = pd.DataFrame({"snr": [1.0, 2.0]})
    monkeypatch.setattr("builtins.print", lambda *a: calls.append(a))
    with pytest.raises(ExpressionError):
        Expression("print('x') or snr > 1", frame.columns)
    assert calls == []


def test_names_are_the_columns_used():
    expr = Expression("snr > 1 and `KS label` == 'a' or num_spikes in [1, 2]",
                      ["snr", "KS label", "num_spikes", "other"])
    assert expr.names == ["KS label", "num_spikes", "snr"]


# -- the table follows the curation ------------------------------------------------------------
pn = pytest.importorskip("panel")

import spikeviz as sv  # noqa: E402
from spikeviz.views.unit_table import LABEL_COLORS, UnitTable  # noqa: E402

FS = 30_000.0


def small_session(num_units=12, num_spikes=20_000, seed=1):
    """Seeded sorting, ids 10, 13, 16, ... (ids != indices), a label column."""
    rng = np.random.default_rng(seed)
    unit_index = rng.integers(0, num_units, num_spikes).astype(np.int32)
    sample_index = rng.integers(0, int(50 * FS), num_spikes)
    unit_ids = np.arange(num_units) * 3 + 10
    table = pd.DataFrame({"label": rng.choice(["good", "mua", "noise"], num_units)},
                         index=pd.Index(unit_ids, name="unit_id"))
    sorting = sv.Sorting.from_arrays(sample_index, unit_index, FS, unit_ids=unit_ids,
                                     unit_table=table, num_samples=int(50 * FS))
    return sv.Session(sorting)


def _check_rows(table):
    """The table's rows are exactly the curated units, with their own spike counts."""
    sorting = table.curation.sorting
    frame = table.widget.value
    assert frame["unit_id"].tolist() == sorting.unit_ids.tolist()
    assert frame["num_spikes"].tolist() == [sorting.spike_train(u).size
                                            for u in sorting.unit_ids.tolist()]
    assert frame["label"].tolist() == sorting.labels.tolist()


def test_table_expression_box_filters_and_shows_errors():
    session = small_session()
    table = UnitTable(session)
    frame = table.widget.value
    table.expression = 'num_spikes > 1650 and label != "noise"'
    expected = frame[(frame["num_spikes"] > 1650) & (frame["label"] != "noise")]
    assert table.visible_unit_ids == expected["unit_id"].tolist()
    assert table.filter_error == "" and not table.error_pane.visible
    table.expression = "__import__('os').system('echo hacked')"
    assert "function calls not allowed" in table.filter_error
    assert table.error_pane.visible and "function calls" in table.error_pane.object
    assert "Traceback" not in table.error_pane.object
    # the last valid filter stays
    assert table.visible_unit_ids == expected["unit_id"].tolist()
    table.expression = ""
    assert table.visible_unit_ids == frame["unit_id"].tolist() and table.filter_error == ""


def test_label_cells_are_coloured():
    table = UnitTable(small_session())
    template = table.widget.formatters["label"].template
    for label, colour in LABEL_COLORS.items():
        assert f'value == "{label}" ? "{colour}"' in template
    assert LABEL_COLORS["good"].startswith("#b") and set(LABEL_COLORS) == {"good", "mua", "noise"}


def test_table_follows_label_merge_split_undo():
    session = small_session()
    curation = session.curation
    table = UnitTable(session)
    table.__panel__().get_root()
    table.widget.sorters = [{"field": "num_spikes", "dir": "desc"}]
    table.expression = "num_spikes > 0"
    ids = curation.sorting.unit_ids.tolist()
    before = table.widget.value.copy()

    # a label: patched in place (same frame object), one cell changed
    value = table.widget.value
    new_label = "noise" if before["label"][0] != "noise" else "good"
    curation.label([ids[0]], new_label)
    assert table.widget.value is value
    assert table.widget.value["label"][0] == new_label
    changed = (table.widget.value != before) & ~(table.widget.value.isna() & before.isna())
    assert changed.to_numpy().sum() == 1
    _check_rows(table)

    # a merge: two rows go, one comes, sorters and filter stay
    session.selection.unit_ids = [ids[1], ids[2]]
    assert table.selected_unit_ids == [ids[1], ids[2]]
    merged = curation.merge([ids[1], ids[2]])
    _check_rows(table)
    assert ids[1] not in table.frame["unit_id"].tolist()
    assert table.frame["unit_id"].tolist()[-1] == merged
    n_merged = int(table.frame.loc[table.frame["unit_id"] == merged, "num_spikes"].iloc[0])
    assert n_merged == int(before["num_spikes"][1] + before["num_spikes"][2])
    assert table.widget.sorters == [{"field": "num_spikes", "dir": "desc"}]
    assert table.expression == "num_spikes > 0"
    assert sorted(table.visible_unit_ids) == sorted(curation.sorting.unit_ids.tolist())
    # the selection of the merged units went with them; the new unit can be selected
    assert table.widget.selection == [] and session.selection.unit_ids == []
    session.selection.unit_ids = [merged]
    assert table.selected_unit_ids == [merged]

    # a split of the merged unit: its row goes, two come
    positions = curation.sorting.spike_indices(merged)
    first, rest = curation.split(merged, positions[: positions.size // 3])
    _check_rows(table)
    rows = table.frame.set_index("unit_id")["num_spikes"]
    assert rows[first] == positions.size // 3 and rows[rest] == positions.size - rows[first]
    assert merged not in rows.index

    # undo all: back to the original rows and values
    while curation.can_undo:
        curation.undo()
    _check_rows(table)
    pd.testing.assert_frame_equal(table.widget.value.reset_index(drop=True),
                                  before.reset_index(drop=True))
    curation.redo()
    assert table.widget.value["label"][0] == new_label


def test_hidden_table_updates_once_when_shown():
    session = small_session()
    table = UnitTable(session, active=False)
    ids = session.curation.sorting.unit_ids.tolist()
    session.curation.merge(ids[:3])
    assert table.frame["unit_id"].tolist() == ids  # deferred
    table.active = True
    _check_rows(table)
