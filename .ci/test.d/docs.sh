#!/usr/bin/env bash
# The docs site: build it with tools/docs.sh (Sphinx + myst-nb over nbdev's processed notebooks; the notebooks
# executed by .ci/test's test step are reused, not run again), then check every page in headless Chromium:
# local links resolve, images load, all maths is typeset, every exported symbol has its API block.
# Saves screenshots of the home page and the schedule page to outputs/docs/.
# Called by .ci/test with .venv/bin first on PATH and cwd = repo root.
set -euo pipefail
cd "$(dirname "$0")/../.."

echo "-- build the site into _docs/"
bash tools/docs.sh

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
  echo "FAIL: no Chromium available (not installed, and apt-get could not install it): the site was built but could not be checked in a browser"
  exit 1
fi

echo "-- check every page in $("$browser" --version 2>/dev/null | head -1)"
python tools/check_docs.py --browser "$browser" \
  --screenshot index.html outputs/docs/home_page.png --screenshot schedule.html outputs/docs/schedule_page.png
