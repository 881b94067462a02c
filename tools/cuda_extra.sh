#!/bin/sh
# Which CuPy extra of pyproject.toml this machine needs, read from the NVIDIA driver.
#
#   sh tools/cuda_extra.sh train [DEVICE]   # for `make train`: DEVICE=cpu skips the detection
#   sh tools/cuda_extra.sh test             # for `make test`
#
# Prints the extra (cuda12 or cuda13) on stdout, or nothing when no CuPy should be installed, and
# one line on stderr saying what it chose and why. The driver's CUDA version is the
# "CUDA Version: X.Y" that nvidia-smi prints: 12 -> cuda12, 13 or newer -> cuda13 (a driver runs
# programs built for older CUDA versions), 11 or older -> unsupported. `test` installs cuda12
# where there is no usable driver, so the tests exercise the "CuPy installed but no usable GPU"
# path against the real CuPy. Always exits 0: a missing or broken driver is an answer, not an
# error.
set -u
mode=${1:-train}
device=${2:-auto}

say() { printf '%s\n' "$*" >&2; }

no_gpu() {  # $1: why there is no usable GPU
    if [ "$mode" = test ]; then
        say "$1; installing cupy-cuda12x (the cuda12 extra) anyway, so the tests check the" \
            "'CuPy installed but no usable GPU' path"
        echo cuda12
    elif [ "$device" = auto ]; then
        say "$1; training on the CPU"
    else
        say "$1; installing no CuPy, so --device $device will fail (DEVICE=auto trains on the CPU)"
    fi
    exit 0
}

case $mode in
    train | test) ;;
    *) say "usage: sh tools/cuda_extra.sh train|test [DEVICE]"; exit 2 ;;
esac

if [ "$mode" = train ] && [ "$device" = cpu ]; then
    say "DEVICE=cpu: not looking for a GPU; installing the CPU packages only"
    exit 0
fi

if ! command -v nvidia-smi >/dev/null 2>&1; then
    no_gpu "no NVIDIA driver found (no nvidia-smi on PATH)"
fi
if ! out=$(nvidia-smi 2>&1); then
    first=$(printf '%s\n' "$out" | sed -n '/[^[:space:]]/{p;q;}')
    no_gpu "no usable NVIDIA driver (nvidia-smi failed: ${first:-no output})"
fi
cuda=$(printf '%s\n' "$out" | sed -n 's/.*CUDA Version: *\([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p' |
       head -n 1)
driver=$(printf '%s\n' "$out" | sed -n 's/.*Driver Version: *\([0-9][0-9.]*\).*/\1/p' | head -n 1)
if [ -z "$cuda" ]; then
    no_gpu "nvidia-smi ran but printed no 'CUDA Version: X.Y'"
fi
major=${cuda%%.*}
what="NVIDIA driver ${driver:-(version unknown)} reports CUDA $cuda"
if [ "$major" -le 11 ]; then
    no_gpu "$what, which xpnet does not support (it needs CUDA 12 or newer: update the driver)"
elif [ "$major" -eq 12 ]; then
    extra=cuda12
else
    extra=cuda13
fi
say "$what: installing cupy-${extra}x (the $extra extra)"
echo "$extra"
