# Two commands on a fresh machine: `make demo` (main job end to end) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# On CPU machines the constraint keeps pip on the local CPU build of torch (no CUDA download).
CONSTRAINTS ?= constraints-cpu.txt
DEMO   ?= build/demo

# The Triton server environment of `fornet serve` (Debian's /usr/bin/python3, pytriton; see setup/triton-env.sh).
TRITON_VENV ?= .venv-triton
# The environment of the `fornetseg` GStreamer element (Debian's /usr/bin/python3 with its GStreamer; setup/gst-env.sh).
GST_VENV ?= .venv-gst

.PHONY: demo test lint env triton-env gst-env clean device-check device-check-dry-run device-wheels system-deps plugin-check

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[dev,serve,int8-tensorrt]"
	# TensorRT type stubs for the static checks, kept out of site-packages so that an empty
	# `tensorrt` package never looks like real TensorRT (tests/test_tensorrt_static.py).
	$(BIN)/python -m pip install --quiet --no-deps --upgrade --target $(VENV)/tensorrt-stubs \
		tensorrt-stubs==10.13.0.35.1
	touch $@

triton-env: $(TRITON_VENV)/.installed

$(TRITON_VENV)/.installed: pyproject.toml setup/triton-env.sh setup/triton-requirements.txt setup/runtime-requirements.txt
	setup/triton-env.sh $(TRITON_VENV)

gst-env: $(GST_VENV)/.installed

$(GST_VENV)/.installed: pyproject.toml setup/gst-env.sh setup/runtime-requirements.txt
	setup/gst-env.sh $(GST_VENV)

demo: env
	$(BIN)/fornet-data synth --out $(DEMO)/data --train 48 --val 12 --size 256x512 --seed 0 --force
	$(BIN)/fornet-train --data $(DEMO)/data --variant lite --crop 256x256 --batch 8 --iters 300 \
		--val-every 100 --out $(DEMO)/run --overwrite
	$(BIN)/fornet-eval --ckpt $(DEMO)/run/best.pth --data $(DEMO)/data --split val
	$(BIN)/fornet-export --ckpt $(DEMO)/run/best.pth --input-size 256x512 --fp16 \
		--verify-data $(DEMO)/data --verify-split val --out $(DEMO)/export
	$(BIN)/fornet-bench --engine $(DEMO)/export/fornet.onnx --ckpt $(DEMO)/run/best.pth \
		--data $(DEMO)/data --split val --duration-s 3 --report $(DEMO)/report
	$(BIN)/fornet-data video --out $(DEMO)/street.mp4 --size 256x512 --frames 100 --seed 7 --force
	$(BIN)/fornet-run $(DEMO)/street.mp4 $(DEMO)/street_segmented.mp4 --model $(DEMO)/export/fornet.onnx \
		--device cpu --jsonl $(DEMO)/street_frames.jsonl --json $(DEMO)/street_report.json

# System packages the video tests need (GStreamer + its RTSP server for /usr/bin/python3): installed
# when missing and root, else the exact apt-get command is printed (setup/system-packages.sh).
system-deps:
	sh setup/system-packages.sh

# The TopKGate plugin's host code run as TensorRT runs it, without TensorRT, against each set of
# TensorRT headers (../shared/tensorrt-headers/* or $$TENSORRT_INCLUDE_DIRS): one line of check counts
# per version; builds cached in build/plugin-check. Missing headers/cmake/nvcc: a skip, an error on CI.
plugin-check: env
	$(BIN)/python plugins/harness/plugin_check.py $(if $(CI),--strict)

test: env triton-env system-deps gst-env plugin-check
	$(BIN)/ruff check .
	$(BIN)/python -m tests.layer_view
	$(BIN)/python -m pytest

# One-shot device check on a GPU machine (no TensorRT, no internet): see benchmarks/device_check.sh.
device-wheels:
	benchmarks/device_check.sh --fetch-wheels build/device-wheels

device-check:
	benchmarks/device_check.sh --wheels build/device-wheels --out build/device-check

device-check-dry-run: env
	PYTHON=$(BIN)/python benchmarks/device_check.sh --dry-run --out build/device-check

lint: env
	$(BIN)/ruff check .

clean:
	rm -rf $(DEMO)
