#!/usr/bin/env bash
# Creates the server environment that `fornet serve` runs Triton Inference Server in (default: .venv-triton).
#
#   setup/triton-env.sh [VENV]          # or: make triton-env
#
# Why a second environment: the PyPI wheel nvidia-pytriton bundles tritonserver and its Python
# backend, whose stub process must run on the very Python build the venv is made from (a stub
# built for Debian's 3.11.2 fails on another 3.11 patch release), and it pins numpy<2. So the
# server venv is made with the distribution's own /usr/bin/python3 and holds only what serving an
# exported model needs: pytriton, ONNX Runtime, OpenVINO (with onnx), OpenCV and fornet-deploy itself (no torch).
# Debian/Ubuntu packages: python3-venv (the venv module) and python3-gi (the DeepStream config
# check reads nvinfer key files with GLib); both are installed with apt-get when missing.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-$HERE/.venv-triton}"
SYSTEM_PYTHON="${FORNET_TRITON_PYTHON:-/usr/bin/python3}"

need_apt=()
"$SYSTEM_PYTHON" -c "import ensurepip, venv" 2>/dev/null || need_apt+=(python3-venv)
"$SYSTEM_PYTHON" -c "import gi" 2>/dev/null || need_apt+=(python3-gi)
if [ "${#need_apt[@]}" -gt 0 ]; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq "${need_apt[@]}"
    else
        echo "error: install ${need_apt[*]} (e.g. sudo apt-get install ${need_apt[*]}) and run $0 again" >&2
        exit 2
    fi
fi

"$SYSTEM_PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -r "$HERE/setup/triton-requirements.txt"
# fornet-deploy itself without its training/export dependencies (torch, onnxsim; onnx only for OpenVINO, above).
"$VENV/bin/python" -m pip install --quiet --no-deps -e "$HERE"
# The bundled tritonserver looks for the Python-backend stub in backends/python; PyTriton copies the
# one for this interpreter there when it starts, a plain `tritonserver` on a repository needs it too.
"$VENV/bin/python" - <<'PY'
import pathlib, shutil, sys
import pytriton
server = pathlib.Path(pytriton.__file__).parent / "tritonserver"
version = f"{sys.version_info.major}.{sys.version_info.minor}"
shutil.copy2(server / "python_backend_stubs" / version / "triton_python_backend_stub", server / "backends" / "python")
PY
"$VENV/bin/python" -c "import pytriton, fornet.runtime.serving.server; print('server environment ready:', '$VENV')"
touch "$VENV/.installed"
