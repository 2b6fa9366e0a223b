"""`panel serve apps/demo.py`: the dashboard on the built-in synthetic dataset.

(`spikeviz demo` / `make demo` serve the same page with warm-up and 127.0.0.1 binding.)
The demo session is built and warmed once per server process and shared by every browser
session (one curation).
"""

from spikeviz.app import build_dashboard
from spikeviz.app.serve import shared_demo_session

build_dashboard(shared_demo_session()).servable()
