#!/usr/bin/env bash
# The README's test command: set up everything on a fresh machine, then run the whole suite.
# Real checkpoints are found through $SUPERRES_WEIGHTS (default: ../shared/weights beside the
# checkout, as in CI).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$("$root/scripts/setup_env.sh" | tail -n 1)"
if [ -z "${SUPERRES_WEIGHTS:-}" ] && [ -d "$root/../shared/weights" ]; then
  export SUPERRES_WEIGHTS="$(cd "$root/../shared/weights" && pwd)"
fi
cd "$root"
# Static checks first (seconds): ruff on everything, mypy on the package.
"$root/scripts/lint.sh" "$venv"
# Two pytest workers, one test file each at a time (module fixtures stay in one process):
# most tests wait on subprocesses (ffmpeg, vspipe, ComfyUI, Ray), so two overlap well even on
# two cores (docs/benchmarks.md, goal 5). SUPERRES_TEST_WORKERS=0 runs them in this process.
workers="${SUPERRES_TEST_WORKERS:-2}"
if [ "$workers" = 0 ]; then
  exec "$venv/bin/python" -m pytest "$@"
fi
exec "$venv/bin/python" -m pytest -n "$workers" --dist loadfile "$@"
