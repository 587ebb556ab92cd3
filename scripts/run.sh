#!/usr/bin/env bash
# The README's main-job command: set up everything, then upscale the embedded sample photo
# x4 with DITN (writes superres-demo.png, or the path given as the first argument).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$("$root/scripts/setup_env.sh" | tail -n 1)"
if [ -z "${SUPERRES_WEIGHTS:-}" ] && [ -d "$root/../shared/weights" ]; then
  export SUPERRES_WEIGHTS="$(cd "$root/../shared/weights" && pwd)"
fi
exec "$venv/bin/superres" demo "$@"
