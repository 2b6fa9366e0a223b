#!/usr/bin/env bash
# Print the path of a working Python >= 3.12 (Panel 1.10 and Bokeh 3.10 need it), or fail
# with a clear message. Order: $PYTHON, python3.12 / python3.13 / python3 on PATH, then
# pyenv's installed versions (pyenv's shims only run with PYENV_VERSION set, so the
# interpreters are called by their full path).
set -u
ok() { "$1" -c 'import sys, venv, ensurepip; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; }
real() { "$1" -c 'import sys; print(sys.executable)'; }

if [ -n "${PYTHON:-}" ]; then
  if ok "$PYTHON"; then real "$PYTHON"; exit 0; fi
  echo "error: PYTHON=$PYTHON is not a working Python >= 3.12 with venv and ensurepip" >&2; exit 1
fi
for cand in python3.12 python3.13 python3.14 python3; do
  if command -v "$cand" >/dev/null 2>&1 && ok "$cand"; then real "$cand"; exit 0; fi
done
if command -v pyenv >/dev/null 2>&1; then
  root=$(pyenv root 2>/dev/null)
  while IFS= read -r dir; do
    for exe in "$dir/bin/python3" "$dir/bin/python"; do
      if [ -x "$exe" ] && ok "$exe"; then real "$exe"; exit 0; fi
    done
  done < <(ls -d "$root"/versions/3.1[2-9]* 2>/dev/null | sort -V)
fi
cat >&2 <<'MSG'
error: spikeviz needs Python >= 3.12 (Panel 1.10 and Bokeh 3.10 require it) and none was found.
  Install python3.12 (e.g. `apt-get install python3.12 python3.12-venv`, `pyenv install 3.12`, or from
  python.org), or point to one: `make demo PYTHON=/path/to/python3.12`.
MSG
exit 1
