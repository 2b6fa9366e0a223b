"""The export panel: NWB (with a metadata form), HDF5, Phy, curation JSON, the unit table and
the current views, written from the *current curated* session in the background.

``ExportPanel(session, curation, views=None, output_dir=None)``. ``views`` maps a display name
to what the dashboard shows (a View, any Panel object or a HoloViews object); it can be
replaced later (``panel.views = {...}``). Files are written under ``output_dir`` only (default:
:func:`~spikeviz.app.export_jobs.default_output_dir`); the user never types a server path.

One job at a time per panel, in a thread (:meth:`ExportPanel.start`); the progress bar and
messages are updated on the Bokeh document's next tick, so the UI stays responsive. Tests (and
scripts) call :meth:`ExportPanel.run_job` to run one export synchronously.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import zoneinfo
from functools import partial
from pathlib import Path

import panel as pn
import param

from ..errors import InputError
from ..model.curation import Curation
from ..model.session import Session
from . import export_jobs as jobs
from .export_jobs import ExportResult

log = logging.getLogger(__name__)

SPECIES = ("Mus musculus", "Rattus norvegicus", "Homo sapiens", "Macaca mulatta",
           "Callithrix jacchus", "Danio rerio", "Drosophila melanogaster",
           "Mustela putorius furo", "Felis catus", "Taeniopygia guttata")
SEXES = {"": "", "F (female)": "F", "M (male)": "M", "U (unknown)": "U", "O (other)": "O"}
DANDI_REQUIRED = ("subject_id", "species", "sex", "age", "session_start_time")
MESSAGE_CHARS = 300
# Above this size a file is not offered for download: FileDownload reads it whole into the
# server's memory and sends it base64-encoded over the page's websocket. The server runs on the
# user's machine, so the written path is shown instead.
MAX_DOWNLOAD_BYTES = 200 * 1024 ** 2

_SVG_NOTE = (
    "**PNG** and **SVG** are rendered on the server by headless Chromium; **HTML** keeps the "
    "view interactive and opens offline. SVG: one file per plot of the view (several are "
    "downloaded as a zip), drawn with Bokeh's SVG backend; datashaded layers are embedded "
    "as images. For a quick picture, the save tool of each plot's toolbar downloads a PNG "
    "from the browser.")


def _size_text(size: int) -> str:
    return f"{size / 1024 ** 2:.0f} MB" if size < 1024 ** 3 else f"{size / 1024 ** 3:.1f} GB"


def _one_line(text: str) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= MESSAGE_CHARS else line[:MESSAGE_CHARS - 1] + "…"


class ExportPanel(pn.viewable.Viewer):
    """Buttons and forms for every export of the current curated session; see the module
    docstring."""

    status = param.Selector(default="idle", objects=["idle", "running", "done", "error"],
                            doc="State of the last job.")
    message = param.String(default="", doc="One line about the last job (or form error).")
    fraction = param.Number(default=0.0, bounds=(0.0, 1.0), doc="Progress of the running job.")
    result = param.Parameter(default=None, doc="ExportResult of the last successful job.")
    views = param.Dict(default={}, doc="Name -> view object offered for PNG/HTML export.")

    def __init__(self, session: Session, curation: Curation, views: dict | None = None,
                 output_dir: str | Path | None = None, **params):
        super().__init__(views=dict(views or {}), **params)
        self.session, self.curation = session, curation
        folder = jobs.default_output_dir(session) if output_dir is None else Path(output_dir)
        folder.mkdir(parents=True, exist_ok=True)
        self.output_dir = folder.resolve()
        self._thread: threading.Thread | None = None
        self._doc = None
        self._curated_memo: tuple | None = None
        self._last_pct = -1
        self._build()
        self.param.watch(self._on_views, ["views"])

    # -- the job -----------------------------------------------------------------------------
    def _curated(self) -> Session:
        """The curated session of the current ``curation.sorting`` (memoised per sorting, so
        results seeded for one export serve the next)."""
        sorting = self.curation.sorting
        if self._curated_memo is None or self._curated_memo[0] is not sorting:
            self._curated_memo = (sorting, jobs.curated_session(self.session, self.curation))
        return self._curated_memo[1]

    def run_job(self, kind: str, options: dict | None = None, progress=None) -> ExportResult:
        """Run one export synchronously (no UI updates); returns what was written."""
        return jobs.run_export(kind, self.session, self.curation, self.output_dir, options,
                               progress=progress, views=self.views, curated=self._curated())

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, kind: str, options: dict | None = None) -> threading.Thread | None:
        """Start an export in a background thread (None when one is already running)."""
        if self.running:
            return None
        self._doc = pn.state.curdoc
        curated = self._curated()  # the state of the curation when the button was pressed
        self._last_pct = -1
        self._set_state(status="running", fraction=0.0, result=None,
                        message=f"Running… ({_LABELS.get(kind, kind)})")
        thread = threading.Thread(target=self._work, args=(kind, dict(options or {}), curated),
                                  name=f"spikeviz-export-{kind}", daemon=True)
        self._thread = thread
        thread.start()
        return thread

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the running job; True when none is left running."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    def _work(self, kind: str, options: dict, curated: Session) -> None:
        try:
            result = jobs.run_export(kind, self.session, self.curation, self.output_dir,
                                     options, progress=self._on_progress, views=self.views,
                                     curated=curated)
        except InputError as err:
            self._schedule(partial(self._set_state, status="error",
                                   message=_one_line(f"Export failed: {err}")))
        except Exception as err:
            log.error("export %s failed", kind, exc_info=err)
            self._schedule(partial(self._set_state, status="error", message=_one_line(
                f"Export failed ({type(err).__name__}: {err}); details in the server log")))
        else:
            self._schedule(partial(self._finished, result))

    def _on_progress(self, step: str, fraction: float) -> None:
        pct = round(100 * min(max(float(fraction), 0.0), 1.0))
        if pct == self._last_pct:
            return
        self._last_pct = pct
        self._schedule(partial(self._set_state, fraction=pct / 100,
                               message=f"Running… {step} {pct} %"))

    def _schedule(self, fn) -> None:
        """Run ``fn`` on the document's next tick when served, else now."""
        doc = self._doc
        if doc is not None and getattr(doc, "session_context", None) is not None:
            try:
                doc.add_next_tick_callback(fn)
                return
            except Exception:
                return
        fn()

    def _set_state(self, **values) -> None:
        self.param.update(**values)

    def _finished(self, result: ExportResult) -> None:
        self.param.update(status="done", fraction=1.0, result=result,
                          message=_one_line(f"Done: {result.message}"))

    # -- widgets -----------------------------------------------------------------------------
    def _build(self) -> None:
        w = pn.widgets
        self.compute = w.Checkbox(label="Compute the templates, amplitudes and metrics of "
                                       "merged/split units that do not have them yet (only "
                                       "those units; the others reuse the session's)",
                                  value=True)
        # NWB form
        star = " *"
        self.form = {
            "subject_id": w.TextInput(label="Subject id" + star, placeholder="e.g. m42"),
            "species": w.AutocompleteInput(label="Species" + star, options=list(SPECIES),
                                           restrict=False, min_characters=1,
                                           placeholder="Latin binomial, e.g. Mus musculus"),
            "sex": w.Select(label="Sex" + star, options=SEXES, value=""),
            "age": w.TextInput(label="Age (ISO 8601 duration)" + star,
                               placeholder="e.g. P90D, P12W, P90D/P120D"),
            "session_start_time": w.DatetimePicker(label="Session start" + star, value=None,
                                                   allow_input=True),
            "timezone": w.AutocompleteInput(
                label="Timezone of the start" + star, restrict=True, min_characters=1,
                options=sorted(zoneinfo.available_timezones() | {"UTC"}),
                placeholder="e.g. Europe/Paris"),
            "session_description": w.TextAreaInput(label="Session description", height=70,
                                                   placeholder="What was recorded"),
            "experimenter": w.TextInput(label="Experimenter(s)",
                                        placeholder="Last, First; Last2, First2"),
            "institution": w.TextInput(label="Institution"),
            "lab": w.TextInput(label="Lab"),
            "location": w.TextInput(label="Brain area of the electrodes",
                                    placeholder="Allen CCF acronym for mice, e.g. VISp"),
        }
        self.include_recording = w.Checkbox(label="Include the raw recording",
                                            value=False, disabled=self.session.recording is None)
        self.form_error = pn.pane.Alert("", alert_type="danger", visible=False)
        nwb_button = w.Button(label="Export NWB", color="primary")
        nwb_button.on_click(lambda event: self.start_nwb())
        nwb = pn.Column(
            pn.pane.Markdown("Fields marked * are required by DANDI."),
            pn.FlexBox(*self.form.values(), flex_wrap="wrap", sizing_mode="stretch_width"),
            self.include_recording,
            self.form_error, nwb_button, name="NWB")
        # HDF5
        self.style = w.RadioButtonGroup(label="Style", options=list(jobs.HDF5_STYLES),
                                        value="ragged")
        self.time_unit = w.Select(label="Time unit", options=list(jobs.TIME_UNITS), value="s")
        hdf5 = pn.Column(self.style, self.time_unit,
                         self._button("Export HDF5", "hdf5", lambda: {
                             "style": self.style.value, "time_unit": self.time_unit.value}),
                         name="HDF5")
        phy = pn.Column(pn.pane.Markdown(
            "A Phy/KiloSort folder that phy and phylib open (the raw file is linked through "
            "`dat_path`, not copied); the download is a zip of the folder."),
            self._button("Export Phy folder", "phy"), name="Phy")
        curation = pn.Column(pn.pane.Markdown(
            "The curation (labels, merges, splits, removals) in SpikeInterface's curation "
            "format v2, for `spikeinterface.curation.apply_curation`."),
            self._button("Export curation JSON", "curation"), name="Curation")
        engine = jobs.parquet_engine()
        parquet = self._parquet_button = self._button("Export Parquet", "metrics_parquet")
        parquet.disabled = engine is None
        table = pn.Column(pn.pane.Markdown(
            "The unit table of the curated units: label, tags, spike count, firing rate, "
            "amplitude, depth, every metric." + (
                "" if engine else " *Parquet needs pyarrow or fastparquet, which are not "
                "installed on this server.*")),
            pn.Row(self._button("Export CSV", "metrics_csv"), parquet), name="Unit table")
        self.view_select = w.Select(label="View", options=list(self.views))
        png = self._button("Export PNG", "view_png", lambda: {"view": self.view_select.value})
        png.disabled = not jobs.png_available()
        self._view_buttons = [png, self._button("Export HTML", "view_html",
                                                lambda: {"view": self.view_select.value}),
                              self._button("Export SVG", "view_svg",
                                           lambda: {"view": self.view_select.value})]
        views = pn.Column(self.view_select, pn.Row(*self._view_buttons),
                          pn.pane.Markdown(_SVG_NOTE), name="Views")
        self._on_views()
        # status
        self.progress = pn.indicators.Progress(value=0, max=100, sizing_mode="stretch_width",
                                               bar_color="primary", visible=False)
        self.status_text = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.download = pn.widgets.FileDownload(visible=False, color="success",
                                                embed=False)
        self.path_text = pn.pane.Markdown("", visible=False)
        self.warning_text = pn.pane.Alert("", alert_type="warning", visible=False)
        self._buttons = [nwb_button, *self._all_buttons]
        self.param.watch(self._render_state, ["status", "message", "fraction", "result"])
        self._layout = pn.Column(
            pn.pane.Markdown(f"### Export the curated session\nFiles are written to "
                             f"`{self.output_dir}`"),
            self.compute, pn.Tabs(nwb, hdf5, phy, curation, table, views, dynamic=False),
            self.progress, self.status_text, self.download, self.path_text, self.warning_text,
            sizing_mode="stretch_width")

    def _button(self, label: str, kind: str, options=dict):
        button = pn.widgets.Button(label=label, color="primary")
        button.on_click(lambda event: self.start(kind, self._options(options())))
        self._all_buttons = [*getattr(self, "_all_buttons", []), button]
        return button

    def _options(self, options: dict) -> dict:
        return {"compute": self.compute.value, **options}

    def _on_views(self, *events) -> None:
        names = list(self.views)
        self.view_select.options = names
        self.view_select.disabled = not names
        if names and self.view_select.value not in names:
            self.view_select.value = names[0]
        self._view_buttons[1].disabled = not names
        for button in (self._view_buttons[0], self._view_buttons[2]):  # PNG, SVG: Chromium
            button.disabled = not names or not jobs.png_available()

    def form_values(self) -> dict:
        """The NWB form as flat metadata values (session_start_time timezone-aware)."""
        values = {k: widget.value for k, widget in self.form.items()
                  if k not in ("session_start_time", "timezone")}
        start, zone = self.form["session_start_time"].value, self.form["timezone"].value
        if start is not None:
            if isinstance(start, dt.date) and not isinstance(start, dt.datetime):
                start = dt.datetime.combine(start, dt.time())
            if not zone:
                raise InputError("give the timezone of the session start (e.g. Europe/Paris)",
                                 field="NWBFile.session_start_time")
            values["session_start_time"] = start.replace(tzinfo=zoneinfo.ZoneInfo(zone))
        return values

    def start_nwb(self) -> threading.Thread | None:
        """Validate the form; start the NWB export, or show the error next to the form."""
        try:
            form = self.form_values()
            jobs.nwb_metadata(form)
        except InputError as err:
            self.form_error.object = _one_line(str(err))
            self.form_error.visible = True
            self.param.update(status="idle", message=_one_line(f"Not started: {err}"))
            return None
        self.form_error.visible = False
        missing = [k for k in DANDI_REQUIRED if not form.get(k)]
        thread = self.start("nwb", self._options({
            "metadata": form, "include_recording": self.include_recording.value}))
        if thread is not None and missing:
            self.warning_text.object = ("Written without " + ", ".join(missing) +
                                        ": DANDI requires them.")
            self.warning_text.visible = True
        return thread

    def _render_state(self, *events) -> None:
        running = self.status == "running"
        for button in self._buttons:
            button.disabled = running
        if not running:
            self._on_views()
            self._parquet_button.disabled = jobs.parquet_engine() is None
        self.progress.visible = self.status in ("running", "done")
        self.progress.value = round(100 * self.fraction)
        # the message says "Done: ..." / "Export failed: ..." in words (no emoji: headless
        # browsers and minimal desktops have no emoji font and drew empty boxes)
        self.status_text.object = self.message or ""
        result = self.result
        if result is None:
            self.download.visible = self.path_text.visible = False
            if self.status == "running":
                self.warning_text.visible = self.warning_text.visible and \
                    "DANDI" in str(self.warning_text.object)
            return
        size = result.download.stat().st_size if result.download.is_file() else 0
        if size > MAX_DOWNLOAD_BYTES:
            self.download.visible = False
            self.download.file = None
            self.path_text.object = (
                f"Written to `{result.path}` ({_size_text(size)}): too large to download "
                f"through the browser (over {_size_text(MAX_DOWNLOAD_BYTES)}, it would be "
                f"sent whole through the page's connection); open it from that folder.")
        else:
            self.download.file = str(result.download)
            self.download.filename = result.download.name
            self.download.label = f"Download {result.download.name}"
            self.download.visible = True
            self.path_text.object = f"Written to `{result.path}`"
        self.path_text.visible = True
        if result.warnings:
            self.warning_text.object = "<br>".join(_one_line(w) for w in result.warnings)
            self.warning_text.visible = True

    def __panel__(self):
        return self._layout


_LABELS = {"nwb": "NWB", "hdf5": "HDF5", "phy": "Phy folder", "curation": "curation JSON",
           "metrics_csv": "unit table CSV", "metrics_parquet": "unit table Parquet",
           "view_html": "view HTML", "view_png": "view PNG", "view_svg": "view SVG"}
