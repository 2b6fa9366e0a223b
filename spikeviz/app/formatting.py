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
