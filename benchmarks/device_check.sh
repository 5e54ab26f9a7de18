#!/usr/bin/env bash
# One-shot device check on a GPU machine without TensorRT or internet (see benchmarks/device_check.py).
#
#   benchmarks/device_check.sh --fetch-wheels build/device-wheels   # on a networked machine, once: the
#                                                                     # bundle of device-requirements.txt
#                                                                     # (< 40 MB), for CPython 3.12 x86-64
#   benchmarks/device_check.sh [--wheels DIR] [--out DIR]            # on the GPU machine (offline)
#   benchmarks/device_check.sh --dry-run [--wheels DIR] [--out DIR]  # anywhere: plan + input checks, installs nothing
#
# On the GPU machine the script makes a virtual environment that sees the system's PyTorch and CuPy
# (--system-site-packages), checks the machine has what the bundle leaves out, builds pycuda's wheel
# with its sources compiled in parallel, installs the bundle with no index and no dependency
# resolution, installs this package, and runs benchmarks/device_check.py, which leaves summary.json
# and summary.md in the output folder. PYTHON picks the interpreter (default: python3).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
requirements="$repo/benchmarks/device-requirements.txt"
python="${PYTHON:-python3}"
wheels="$repo/build/device-wheels"
out="$repo/build/device-check"
venv="$repo/build/device-venv"
dry_run=0
fetch=""
wheels_given=0

usage() { sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --fetch-wheels) fetch="${2:?--fetch-wheels needs a folder}"; shift 2 ;;
        --wheels) wheels="${2:?--wheels needs a folder}"; wheels_given=1; shift 2 ;;
        --out) out="${2:?--out needs a folder}"; shift 2 ;;
        --dry-run) dry_run=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "error: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done

if [ -n "$fetch" ]; then
    mkdir -p "$fetch"
    # One list (device-requirements.txt), complete and pinned: everything is fetched with --no-deps.
    # pycuda publishes no Linux wheels: its sdist is built on the device against the local CUDA toolkit.
    "$python" -m pip download --dest "$fetch" --no-binary pycuda --no-deps "$(grep -E '^pycuda==' "$requirements")"
    grep -vE '^(pycuda==|\s*(#|$))' "$requirements" > "$fetch/.wheels.txt"
    "$python" -m pip download --dest "$fetch" --only-binary :all: --no-deps --python-version 3.12 \
        --implementation cp --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
        -r "$fetch/.wheels.txt"
    rm -f "$fetch/.wheels.txt"
    "$python" "$repo/benchmarks/device_check.py" --dry-run --wheels "$fetch" --out "$fetch/.plan" >/dev/null \
        || { echo "error: the fetched bundle does not match $requirements (see above)" >&2; exit 2; }
    echo "fetched into $fetch; carry it to the GPU machine next to this checkout"
    exit 0
fi

if [ "$dry_run" = 1 ]; then
    [ -f "$requirements" ] || { echo "error: $requirements is missing" >&2; exit 2; }
    runner="$python"
    [ -x "$repo/.venv/bin/python" ] && runner="$repo/.venv/bin/python"
    echo "would create $venv (--system-site-packages) and install offline from $wheels:"
    echo "  the $(grep -cv '^\s*\(#\|$\)' "$requirements") pinned packages of $requirements (pycuda built with"\
         "parallel compilation), then this package"
    check_wheels=()
    [ "$wheels_given" = 1 ] && check_wheels=(--wheels "$wheels")
    exec "$runner" "$repo/benchmarks/device_check.py" --dry-run --out "$out" "${check_wheels[@]}"
fi

[ -d "$wheels" ] || { echo "error: no wheels folder $wheels; run --fetch-wheels on a networked machine" >&2; exit 2; }
"$python" -m venv --system-site-packages "$venv"
# What the bundle leaves to the machine (PyTorch, CuPy, ...) must be there: named, with the fix, before anything.
"$venv/bin/python" "$repo/benchmarks/device_check.py" --check-system
pip=("$venv/bin/python" -m pip install --quiet --no-index --no-deps --find-links "$wheels")
"${pip[@]}" setuptools wheel
# building pycuda needs nvcc's CUDA headers; its C++ sources are compiled in parallel (build_pycuda.py)
export PATH="/usr/local/cuda/bin:$PATH"
pycuda_wheel="$("$venv/bin/python" "$repo/benchmarks/build_pycuda.py" "$wheels"/pycuda-*.tar.gz \
    --out "$repo/build/pycuda-wheel" | tail -n 1)"
"${pip[@]}" "$pycuda_wheel" -r <(grep -vE '^pycuda==' "$requirements")
"$venv/bin/python" -m pip install --quiet --no-index --no-deps --no-build-isolation -e "$repo"
exec "$venv/bin/python" "$repo/benchmarks/device_check.py" --out "$out"
