# Two commands on a fresh machine: `make demo` (main job end to end) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# On CPU machines the constraint keeps pip on the local CPU build of torch (no CUDA download).
CONSTRAINTS ?= constraints-cpu.txt
DEMO   ?= build/demo

.PHONY: demo test lint env clean system-deps

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[dev]"
	# TensorRT type stubs for the static checks, kept out of site-packages so that an empty
	# `tensorrt` package never looks like real TensorRT (tests/test_tensorrt_static.py).
	$(BIN)/python -m pip install --quiet --no-deps --upgrade --target $(VENV)/tensorrt-stubs \
		tensorrt-stubs==10.13.0.35.1
	touch $@

demo: env
	$(BIN)/fornet-data synth --out $(DEMO)/data --train 48 --val 12 --size 256x512 --seed 0
	$(BIN)/fornet-train --data $(DEMO)/data --variant lite --crop 256x256 --batch 8 --iters 300 \
		--val-every 100 --out $(DEMO)/run
	$(BIN)/fornet-eval --ckpt $(DEMO)/run/best.pth --data $(DEMO)/data --split val
	$(BIN)/fornet-export --ckpt $(DEMO)/run/best.pth --input-size 256x512 --fp16 \
		--verify-data $(DEMO)/data --verify-split val --out $(DEMO)/export
	$(BIN)/fornet-bench --engine $(DEMO)/export/fornet.onnx --ckpt $(DEMO)/run/best.pth \
		--data $(DEMO)/data --split val --duration-s 3 --report $(DEMO)/report

# System packages the video tests need (GStreamer + its RTSP server for /usr/bin/python3): installed
# when missing and root, else the exact apt-get command is printed (setup/system-packages.sh).
system-deps:
	sh setup/system-packages.sh

test: env system-deps
	$(BIN)/ruff check .
	$(BIN)/python -m tests.layer_view
	$(BIN)/python -m pytest

lint: env
	$(BIN)/ruff check .

clean:
	rm -rf $(DEMO)
