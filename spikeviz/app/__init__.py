"""Dashboards, servers and the command line (these import Panel lazily).

``import spikeviz.app`` (and ``spikeviz.app.cli``) loads no Panel, Bokeh or HoloViews;
``build_dashboard``, ``Dashboard`` and ``serve`` import them on first use.
"""

from __future__ import annotations

__all__ = ["Dashboard", "build_dashboard", "serve"]


def __getattr__(name: str):
    if name in ("Dashboard", "build_dashboard"):
        from . import dashboard

        return getattr(dashboard, name)
    if name == "serve":
        from .serve import serve

        return serve
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
