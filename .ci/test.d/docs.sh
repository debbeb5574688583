#!/usr/bin/env bash
# The docs site: build it offline from the executed notebooks (tools/build_docs.py, no Quarto needed), then
# open the home page and a component page in headless Chromium and check that local links resolve, figures
# load and the maths is typeset. Saves a screenshot of the noise page to outputs/docs/noise_page.png.
# Called by .ci/test with .venv/bin first on PATH and cwd = repo root.
set -euo pipefail
cd "$(dirname "$0")/../.."

echo "-- build the site into _docs/"
python tools/build_docs.py --strict

browser=""
find_browser() {
  local b
  for b in chromium chromium-browser google-chrome google-chrome-stable; do
    if command -v "$b" >/dev/null 2>&1; then browser=$(command -v "$b"); return 0; fi
  done
  return 1
}
if ! find_browser && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "-- chromium is missing: apt-get install -y chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq chromium >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1; } || true
  find_browser || true
fi
if [ -z "$browser" ]; then
  echo "SKIP: no Chromium available (not installed, and apt-get could not install it): the site was built but not checked in a browser"
  exit 0
fi

# the component page: nbs/01_noise.ipynb -> noise.html (the first numbered notebook stands in while it is missing)
page=$(python - <<'PY'
import sys
from pathlib import Path
from nbdev.doclinks import _nbpath2html
nbs = Path('nbs'); nb = nbs / '01_noise.ipynb'
if not nb.exists():
    nb = sorted(nbs.glob('[0-9]*.ipynb'))[0]
    print(f'note: {nb} stands in for nbs/01_noise.ipynb', file=sys.stderr)
print(_nbpath2html(nb.relative_to(nbs)).as_posix())
PY
)

echo "-- check index.html and $page in $("$browser" --version 2>/dev/null | head -1)"
python tools/check_docs.py --browser "$browser" --page index.html --page "$page" --min-images "$page=1" \
  --screenshot "$page" outputs/docs/noise_page.png
