"""`panel serve apps/demo.py`: the dashboard on the built-in synthetic dataset.

(`spikeviz demo` / `make demo` serve the same page with warm-up and 127.0.0.1 binding.)
"""

from spikeviz.app import build_dashboard
from spikeviz.datasets import demo_session

build_dashboard(demo_session()).servable()
