"""Human-readable numbers shared by the command line and the dashboards (no Panel import)."""

from __future__ import annotations

import math


def format_clock(seconds: float) -> str:
    """``119.97`` → ``"2:00.0"``, ``4475.87`` → ``"1:14:35.9"`` (to the displayed 0.1 s).

    Rounded to tenths in integers before splitting, so it never shows 60 s or 60 min.
    """
    if not math.isfinite(seconds):
        return str(seconds)
    tenths = round(seconds * 10)
    sign = "-" if tenths < 0 else ""
    minutes, s10 = divmod(abs(tenths), 600)
    h, m = divmod(minutes, 60)
    sec = f"{s10 // 10:02d}.{s10 % 10}"
    return sign + (f"{h}:{m:02d}:{sec}" if h else f"{m}:{sec}")


def format_duration(seconds: float) -> str:
    """``119.97`` → ``"120.0 s (2:00.0)"``: seconds and the clock, both to 0.1 s."""
    if not math.isfinite(seconds):
        return f"{seconds} s"
    tenths = round(seconds * 10)
    sign = "-" if tenths < 0 else ""
    return f"{sign}{abs(tenths) // 10:,}.{abs(tenths) % 10} s ({format_clock(seconds)})"


#: The header summary of a dashboard: "key value" items that wrap as the window narrows.
SUMMARY_CSS = """
.spikeviz-summary { display: flex; flex-wrap: wrap; gap: 6px 22px; align-items: baseline;
                    font-size: 14px; padding: 4px 2px; }
.spikeviz-summary .item { white-space: nowrap; }
.spikeviz-summary .key { color: #666; margin-right: 5px; }
.spikeviz-summary .value { font-weight: 600; }
.spikeviz-summary .source { color: #666; font-size: 12px; white-space: normal;
                            word-break: break-all; }
"""


def summary_html(items, source: str | None = None) -> str:
    """The header summary (style :data:`SUMMARY_CSS`) of ``(key, value)`` text pairs, plus
    the data's ``source`` path in small print; every text is HTML-escaped."""
    import html

    out = "".join(f"<span class='item'><span class='key'>{html.escape(k)}</span>"
                  f"<span class='value'>{html.escape(v)}</span></span>" for k, v in items)
    if source:
        out += f"<span class='item source'>{html.escape(source)}</span>"
    return f"<div class='spikeviz-summary'>{out}</div>"
