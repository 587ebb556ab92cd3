#!/usr/bin/env bash
# Run a command inside a Debian trixie root that has VapourSynth (Python >= 3.12 is needed by
# the VapourSynth wheels) with this checkout installed into it.
#
#   tools/vs_env.sh pytest tests/vapoursynth        # run the VapourSynth tests
#   tools/vs_env.sh python benchmarks/bench_vapoursynth.py
#   tools/vs_env.sh --build-only                    # just build (or check) the cached root
#   tools/vs_env.sh bash                            # a shell inside
#
# The root is built once (debootstrap, apt, pip; a few minutes) into $SUPERRES_VS_ROOT, default
# ${XDG_CACHE_HOME:-~/.cache}/vs-superres/vsroot-<hash of the recipe>, and rebuilt when the
# recipe below changes. Every run copies the checkout in, pip-installs it (which compiles the
# native plugin into <site-packages>/vapoursynth/plugins/), bind-mounts the checkout read-only
# at /src and $SUPERRES_WEIGHTS (default: ../shared/weights next to the checkout) at /weights,
# runs the command in /src, and unmounts everything it mounted, whatever happens.
# Needs root (mount, chroot). The command's exit status is returned; 3 means the root could not
# be built here (not root, no debootstrap, Debian mirror unreachable), 2 a failure of this
# script or of the recipe.
set -euo pipefail

CHECKOUT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# ---- the recipe: any change here gives a new hash and a fresh root ---------------------------
SUITE=trixie
BOOTSTRAP_INCLUDE=python3,python3-venv,python3-pip,python3-numpy
# libopenblas0-openmp: Debian's torch calls the system BLAS, which is otherwise the reference
# implementation (about 10x slower convolutions); the OpenMP build shares torch's thread pool.
APT_PACKAGES="python3-torch python3-av ffmpeg gcc libc6-dev python3-dev python3-setuptools python3-wheel python3-pil python3-psutil ca-certificates libopenblas0-openmp"
# onnx, onnxruntime: the [onnx] extra, for the DITN backend=onnxruntime test through the plugin.
PIP_PACKAGES="vapoursynth safetensors pytest scikit-image diffusers peft transformers onnx onnxruntime"
RECIPE_VERSION=1

build_root() {  # $1: the folder to build into
    local root=$1 mirror
    mirror=$(debian_mirror)
    debootstrap --variant=minbase --include="$BOOTSTRAP_INCLUDE" "$SUITE" "$root" "$mirror" >&2
    copy_host_config "$root"
    with_system_mounts "$root" in_root "$root" bash -euxc "
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q
        apt-get install -y -q --no-install-recommends $APT_PACKAGES
        apt-get clean
        python3 -m venv --system-site-packages /opt/venv
        # Debian's CPU torch and numpy must stay: pin them so no requirement can pull a CUDA torch.
        python3 -c 'import importlib.metadata as m; print(\"torch==\" + m.version(\"torch\")); print(\"numpy==\" + m.version(\"numpy\"))' > /opt/constraints.txt
        /opt/venv/bin/pip install -q -c /opt/constraints.txt $PIP_PACKAGES
        /opt/venv/bin/vapoursynth config
        /opt/venv/bin/python -c 'import torch, sys; assert torch.__file__.startswith(\"/usr/lib/python3/dist-packages\"), torch.__file__'
    " >&2
}
# ----------------------------------------------------------------------------------------------

# Exit status when the machine cannot build the root (not root, no debootstrap, no mirror): callers such as
# tests/test_vapoursynth_host.py skip on it instead of failing.
EXIT_NO_ROOT=3
die() { echo "vs_env: $*" >&2; exit 2; }

recipe_hash() {
    { declare -p SUITE BOOTSTRAP_INCLUDE APT_PACKAGES PIP_PACKAGES RECIPE_VERSION; declare -f build_root; } \
        | sha256sum | cut -c1-12
}

debian_mirror() {  # $SUPERRES_DEBIAN_MIRROR, else the host's configured Debian mirror
    local uri=${SUPERRES_DEBIAN_MIRROR:-}
    if [[ -n $uri ]]; then echo "$uri"; return; fi
    if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
        uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' \
              /etc/apt/sources.list.d/debian.sources)
    fi
    if [[ -z $uri && -f /etc/apt/sources.list ]]; then
        uri=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' \
              /etc/apt/sources.list)
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

copy_host_config() {  # resolv.conf, pip.conf and the CA bundle, so apt and pip work inside
    local root=$1
    cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
    if [[ -f /etc/pip.conf ]]; then cp -L /etc/pip.conf "$root/etc/pip.conf"; fi
    if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
        mkdir -p "$root/etc/ssl/certs"
        cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
    fi
}

MOUNTED=()  # innermost last; unmounted in reverse order by the trap
mount_tracked() {  # mount_tracked TARGET MOUNT-ARGS...
    local target=$1; shift
    mkdir -p "$target"
    mount "$@" "$target"
    MOUNTED+=("$target")
}
unmount_all() {
    local i
    for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
        umount -R "${MOUNTED[i]}" 2>/dev/null || umount -R -l "${MOUNTED[i]}" 2>/dev/null \
            || echo "vs_env: could not unmount ${MOUNTED[i]}" >&2
    done
    MOUNTED=()
}
trap unmount_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

with_system_mounts() {  # with_system_mounts ROOT CMD...: proc and /dev for the duration of CMD
    local root=$1; shift
    local before=${#MOUNTED[@]}
    mount_tracked "$root/proc" -t proc proc
    mount_tracked "$root/dev" --rbind /dev
    mount --make-rslave "$root/dev"
    local rc=0
    "$@" || rc=$?
    unmount_all_from "$before"
    return $rc
}
unmount_all_from() {
    local keep=$1 i
    for ((i = ${#MOUNTED[@]} - 1; i >= keep; i--)); do
        umount -R "${MOUNTED[i]}" 2>/dev/null || umount -R -l "${MOUNTED[i]}"
        unset 'MOUNTED[i]'
    done
}

unmount_stale() {  # mounts left by a run that was killed (we hold the lock: nobody uses them)
    local root m
    root=$(realpath -m "$1")
    { awk '{ print $2 }' /proc/self/mounts | grep -E "^($root|$root\.partial)/" || true; } | sort -r | while read -r m; do
        echo "vs_env: unmounting stale $m" >&2
        umount -l "$m" 2>/dev/null || true
    done
}

in_root() {  # in_root ROOT CMD...: CMD inside the root with a clean environment
    local root=$1; shift
    local pass=() v
    for v in $(compgen -e); do
        case $v in SUPERRES_*|PYTEST_ADDOPTS|CUDA_VISIBLE_DEVICES|OMP_NUM_THREADS|TORCH_*) pass+=("$v=${!v}");; esac
    done
    chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" \
        PATH=/opt/venv/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
        VIRTUAL_ENV=/opt/venv PIP_DISABLE_PIP_VERSION_CHECK=1 "${pass[@]}" "$@"
}

ensure_root() {
    local root=$1 hash=$2
    if [[ -f $root/.vs-superres-recipe && $(cat "$root/.vs-superres-recipe") == "$hash" ]]; then
        return 0
    fi
    if ! command -v debootstrap >/dev/null; then
        echo "vs_env: installing debootstrap" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >&2 \
            || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >&2; } \
            || { echo "vs_env: cannot build the VapourSynth root: debootstrap is missing and could not be installed" >&2; exit $EXIT_NO_ROOT; }
    fi
    if [[ -d $root && ! -f $root/.vs-superres-recipe && -n $(ls -A "$root") ]]; then
        die "$root exists and is not a vs-superres root; refusing to replace it (set SUPERRES_VS_ROOT elsewhere)"
    fi
    local tmp="$root.partial"
    rm -rf --one-file-system "$tmp"
    mkdir -p "$(dirname "$root")"
    echo "vs_env: building the VapourSynth root in $root (recipe $hash); this takes a few minutes" >&2
    local t0=$SECONDS rc=0
    # A subshell outside any `||`, so that `set -e` stops the build at the first failure; it
    # unmounts what it mounted on its way out.
    set +e
    (
        set -e
        trap unmount_all EXIT
        trap 'exit 130' INT
        trap 'exit 143' TERM
        build_root "$tmp"
    )
    rc=$?
    set -e
    if [[ $rc != 0 ]]; then
        # debootstrap removes its work folder when it succeeds: a failure before that is the
        # machine (no mirror, no network), a failure after it is the recipe.
        local machine=0
        [[ -d $tmp/debootstrap || ! -x $tmp/usr/bin/python3 ]] && machine=1
        rm -rf --one-file-system "$tmp"
        if [[ $machine == 1 ]]; then
            echo "vs_env: cannot build the VapourSynth root: debootstrap failed (exit $rc); is the Debian mirror $(debian_mirror) reachable?" >&2
            exit $EXIT_NO_ROOT
        fi
        die "building the VapourSynth root failed after debootstrap (exit $rc); see the log above"
    fi
    echo "$hash" > "$tmp/.vs-superres-recipe"
    rm -rf --one-file-system "$root"
    mv "$tmp" "$root"
    echo "vs_env: root built in $((SECONDS - t0)) s" >&2
}

install_checkout() {  # copy the checkout in (the bind mount stays clean) and pip-install it
    local root=$1
    rm -rf "$root/tmp/vs-superres-src"
    mkdir -p "$root/tmp/vs-superres-src"
    tar -C "$CHECKOUT" --exclude=./.git --exclude=./.venv --exclude='*/__pycache__' \
        --exclude=./build --exclude='*.egg-info' --exclude=./.pytest_cache -cf - . \
        | tar -C "$root/tmp/vs-superres-src" -xf -
    in_root "$root" bash -euc '
        cd /tmp/vs-superres-src
        pip install -q --no-build-isolation -c /opt/constraints.txt . >&2
        python -c "import torch; assert torch.__file__.startswith(\"/usr/lib/python3/dist-packages\"), \"a pip torch was installed: \" + torch.__file__"
    '
    rm -rf "$root/tmp/vs-superres-src"
}

main() {
    [[ $(id -u) == 0 ]] || { echo "vs_env: cannot build the VapourSynth root: needs root (debootstrap, mount, chroot)" >&2; exit $EXIT_NO_ROOT; }
    local build_only=0
    if [[ ${1:-} == --build-only ]]; then build_only=1; shift; fi
    [[ $build_only == 1 || $# -gt 0 ]] || die "usage: tools/vs_env.sh [--build-only] COMMAND [ARGS...]"
    local hash root
    hash=$(recipe_hash)
    root=${SUPERRES_VS_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/vs-superres/vsroot-$hash}
    mkdir -p "$(dirname "$root")"
    # One run at a time per root: runs share its mount points and site-packages.
    exec 9>"$root.lock"
    flock 9
    unmount_stale "$root"
    ensure_root "$root" "$hash"
    [[ $build_only == 0 ]] || return 0
    copy_host_config "$root"
    mount_tracked "$root/proc" -t proc proc
    mount_tracked "$root/dev" --rbind /dev
    mount --make-rslave "$root/dev"
    install_checkout "$root"
    mount_tracked "$root/src" --bind "$CHECKOUT"
    mount -o remount,bind,ro "$root/src"
    local weights=${SUPERRES_WEIGHTS:-$CHECKOUT/../shared/weights}
    if [[ -d $weights ]]; then
        mount_tracked "$root/weights" --bind "$weights"
        mount -o remount,bind,ro "$root/weights"
        export SUPERRES_WEIGHTS=/weights
    else
        unset SUPERRES_WEIGHTS
    fi
    # PYTHONSAFEPATH: `python -m pytest` in /src must import the installed package, not
    # /src/vs_superres (setup.cfg maps vs_superres.models to models/, which only an install has).
    # The checkout is read-only inside: no pytest cache, no bytecode files.
    export PYTEST_ADDOPTS="-p no:cacheprovider ${PYTEST_ADDOPTS:-}"
    local rc=0
    in_root "$root" bash -c 'cd /src && exec env PYTHONSAFEPATH=1 PYTHONDONTWRITEBYTECODE=1 "$@"' bash "$@" || rc=$?
    return $rc
}

main "$@"
