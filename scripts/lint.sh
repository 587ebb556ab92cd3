#!/usr/bin/env bash
# Static checks run by the test command: ruff (pyflakes + pycodestyle) on everything, mypy on
# the package. Usage: scripts/lint.sh [VENV]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-$root/.venv}"
cd "$root"
"$venv/bin/ruff" check vs_superres models comfy_nodes ffmpeg_filter tests benchmarks tools setup.py
"$venv/bin/mypy" vs_superres models comfy_nodes ffmpeg_filter
