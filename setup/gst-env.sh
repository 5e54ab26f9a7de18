#!/usr/bin/env bash
# Creates the environment the `fornetseg` GStreamer element runs in (default: .venv-gst).
#
#   setup/gst-env.sh [VENV]            # or: make gst-env
#   source .venv-gst/bin/activate      # then, in that shell:
#   GST_PLUGIN_PATH=$(python -m fornet.runtime.video.gst_element) gst-launch-1.0 ... ! fornetseg model=m.onnx ! ...
#
# GStreamer's Python plugin loader (gstreamer1.0-python3-plugin-loader) runs the element inside
# gst-launch-1.0 (or any GStreamer application) with the distribution's own Python, the one python3-gi
# and python3-gst-1.0 are built for. So the environment is a venv of /usr/bin/python3 that sees the
# system site packages (gi, Gst; on Jetson JetPack's TensorRT) and adds what running an exported model
# needs (setup/runtime-requirements.txt: numpy, ONNX Runtime, OpenCV; no torch) and fornet-deploy
# itself. The embedded interpreter picks the venv up from PATH, hence the `activate`.
# GStreamer and the plugin loader are system packages: `make system-deps` (setup/system-packages.sh).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-$HERE/.venv-gst}"
SYSTEM_PYTHON="${FORNET_GST_PYTHON:-/usr/bin/python3}"

if ! "$SYSTEM_PYTHON" -c "import ensurepip, venv, gi" 2>/dev/null; then
    echo "error: $SYSTEM_PYTHON lacks venv or python3-gi; run \`make system-deps\` (setup/system-packages.sh)" \
         "and, on Debian, sudo apt-get install python3-venv; then run $0 again" >&2
    exit 2
fi

"$SYSTEM_PYTHON" -m venv --system-site-packages "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -r "$HERE/setup/runtime-requirements.txt"
# fornet-deploy itself without its training/export dependencies (torch, onnx, onnxsim).
"$VENV/bin/python" -m pip install --quiet --no-deps -e "$HERE"
"$VENV/bin/python" -c "import gi, onnxruntime, fornet.runtime.segmenter; print('GStreamer environment ready:', '$VENV')"
touch "$VENV/.installed"
