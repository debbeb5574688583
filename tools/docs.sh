#!/usr/bin/env bash
# Build the docs site into _docs/ (what `make docs` runs; .ci/test.d/docs.sh runs it after the test step):
# run the notebooks into _exec/ (only those out of date), nbdev's doc processors into _proc/, Sphinx + myst-nb.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f docs/node_modules/mathjax/es5/tex-svg-full.js ] || npm ci --prefix docs --no-audit --no-fund --loglevel=error
python tools/run_nbs.py
# nbdev's doc processors (nbdev.serve.proc_nbs, what nbdev_proc_nbs runs after its Quarto set-up) into _proc/
python -c "from nbdev.serve import proc_nbs; proc_nbs('_exec', n_workers=2)"
# into _sphinx/html, then _docs/: myst-nb writes its image files next to the build folder (_sphinx/jupyter_execute/)
sphinx-build -W --keep-going -q -j 2 -c docs -d _sphinx/doctrees _proc _sphinx/html
rm -rf _docs && cp -a _sphinx/html _docs
echo "docs: wrote _docs/index.html"
