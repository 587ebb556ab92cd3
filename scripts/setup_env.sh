#!/usr/bin/env bash
# Creates (or reuses) .venv in the repository and installs the project with its test extras.
# torch is pinned to the CPU build these machines carry (plain `pip install torch` would pull
# several GB of CUDA packages); torchvision is deliberately absent (its registry build breaks
# with the CPU torch).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${SUPERRES_VENV:-$root/.venv}"
stamp="$venv/.superres-installed"
recipe="$(cat "$root/setup.cfg" "$root/pyproject.toml" "$root/scripts/setup_env.sh" | sha256sum | cut -c1-16)"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$recipe" ]; then
  "$venv/bin/python" -m pip install -q --upgrade pip setuptools wheel
  "$venv/bin/python" -m pip install -q "torch==${SUPERRES_TORCH_VERSION:-2.13.0}"
  # The import names map to folders of the checkout (vs_superres.models -> models/), so the
  # editable install is setuptools' import hook, which prints a box about folders that could
  # shadow the package: none can (every import name is under vs_superres), so it is not shown.
  PYTHONWARNINGS="ignore:Editable installation" "$venv/bin/python" -m pip install -q -e "$root[test,ray]"
  echo "$recipe" > "$stamp"
fi
# FFmpeg's command-line tools are used by tests to inspect outputs (PyAV bundles its own
# libraries for the work itself).
if ! command -v ffprobe >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null
  else
    echo "setup_env: ffprobe not found; install FFmpeg (apt-get install ffmpeg) for the video tests" >&2
  fi
fi
echo "$venv"
