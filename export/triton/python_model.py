"""The ``model.py`` of the repository's Python-backend model: the computation ``fornet serve`` runs.

It imports fornet-deploy, so the Python that Triton's Python backend runs must have it installed
(the server environment of ``make triton-env`` has; see the repository's README).
"""

from __future__ import annotations

#: The file written as ``<repo>/fornet/1/model.py``.
MODEL_PY = '''"""Triton Python-backend model: uint8 BGR frames -> labels, with fornet-deploy's Segmenter.

Written by `fornet export --triton`; the same computation as `fornet serve`
(fornet.runtime.serving.model.FrameSegmentation).
"""

import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

from fornet.errors import FornetError
from fornet.runtime.segmenter import Segmenter
from fornet.runtime.serving.contract import FRAMES, LABELS
from fornet.runtime.serving.model import FrameSegmentation


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
        folder = Path(args["model_repository"]) / args["model_version"]
        device = params.get("device", "cpu")
        self.segmenter = Segmenter(folder / params["model_file"], device=int(device) if device.isdigit() else device)
        self.computation = FrameSegmentation(self.segmenter)

    def execute(self, requests):
        frames = [pb_utils.get_input_tensor_by_name(r, FRAMES).as_numpy() for r in requests]
        answers = [None] * len(requests)
        by_shape = {}
        for index, batch in enumerate(frames):
            by_shape.setdefault(batch.shape[1:], []).append(index)
        for indices in by_shape.values():  # requests of one frame size run as one batch
            try:
                labels = self.computation(np.concatenate([frames[i] for i in indices]))[LABELS]
            except Exception as exc:  # an error answer for these requests (bad input: 400), not a dead model
                bad_input = isinstance(exc, FornetError)
                code = pb_utils.TritonError.INVALID_ARG if bad_input else pb_utils.TritonError.INTERNAL
                for i in indices:
                    answers[i] = pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc), code))
                continue
            start = 0
            for i in indices:
                count = frames[i].shape[0]
                answers[i] = pb_utils.InferenceResponse([pb_utils.Tensor(LABELS, labels[start:start + count])])
                start += count
        return answers

    def finalize(self):
        self.segmenter.close()
'''
