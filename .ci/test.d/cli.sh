#!/usr/bin/env bash
# The installed commands (diffad_train, diffad_eval, diffad_calibrate, diffad_predict, diffad_export) run in subprocesses on small data
# the suite makes itself: exit codes, one-line refusals that name the file or flag at fault, and checksums showing that a
# refused command changed no earlier result. Prints a table of the cases and `N passed, M failed`; exits 1 on a failure.
# Called by .ci/test with .venv/bin first on PATH and cwd = repo root.
set -euo pipefail
cd "$(dirname "$0")/../.."
python .ci/test.d/cli_suite.py "$@"
