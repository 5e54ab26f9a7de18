#!/bin/sh
# OpenVINO FP32 and BF16 beside ONNX Runtime FP32 (and PyTorch), each variant in one `fornet bench` run.
#
# For each variant (default: lite r18) a seeded checkpoint and its fornet.onnx at 512x1024 are made
# once in $WORK/<variant>/ (benchmarks/cpu_backends.py's prepare_variant), a generated validation
# split in $WORK/data; then `fornet bench` times ONNX Runtime (the engine), OpenVINO FP32 and BF16
# (--compare) and, with WITH_TORCH=1 (lite by default), PyTorch, interleaved in one run, runs the BF16
# gate and scores every backend on the split. Each run writes $WORK/<variant>.json and
# $WORK/<variant>-report/summary.md; benchmarks/openvino_results.md quotes them.
#
#   benchmarks/openvino_bench.sh                 # lite and r18
#   VARIANTS=lite DURATION_S=5 benchmarks/openvino_bench.sh
set -eu
WORK=${WORK:-build/ov-bench}
PYTHON=${PYTHON:-.venv/bin/python}
FORNET=${FORNET:-.venv/bin/fornet}
VARIANTS=${VARIANTS:-lite r18}
TORCH_VARIANTS=${TORCH_VARIANTS:-lite}
THREADS=${THREADS:-2}
DURATION_S=${DURATION_S:-10}

"$PYTHON" - "$WORK" $VARIANTS <<'PY'
import sys
from pathlib import Path

sys.path.insert(0, "benchmarks")
from cpu_backends import prepare_variant

for variant in sys.argv[2:]:
    prepare_variant(Path(sys.argv[1]), variant, (512, 1024))
PY
[ -d "$WORK/data/leftImg8bit/val" ] || "$FORNET" data synth --out "$WORK/data" --train 1 --val 12 --size 512x1024 \
    --seed 0 --quiet

for variant in $VARIANTS; do
    torch=""
    case " $TORCH_VARIANTS " in *" $variant "*) torch="--ckpt $WORK/$variant/model.pth" ;; esac
    # shellcheck disable=SC2086  # $torch is two words or none
    "$FORNET" bench --model "$WORK/$variant/fornet.onnx" --compare openvino:fp32 --compare openvino:bf16 $torch \
        --device cpu --threads "$THREADS" --frame-size 1024x2048 --warmup-s 1 --min-iters 10 \
        --duration-s "$DURATION_S" --data "$WORK/data" --split val --bf16-gate warn --quiet \
        --json "$WORK/$variant.json" --report "$WORK/$variant-report"
done
