"""Serving FoR-Net through NVIDIA Triton Inference Server (``fornet serve``) and talking to it.

Server side (runs in the server environment that ``setup/triton-env.sh`` creates):
:mod:`~fornet.runtime.serving.model` (frames in, labels out, around a
:class:`~fornet.runtime.segmenter.Segmenter`), :mod:`~fornet.runtime.serving.server` (PyTriton; drains
on stop) and :mod:`~fornet.runtime.serving.triton_log` (Triton's GPU probe errors hidden for a CPU model).
Client side (the main environment, ``serve`` extra): :mod:`~fornet.runtime.serving.launcher`
(starts and stops the server process), :mod:`~fornet.runtime.serving.client` and
:mod:`~fornet.runtime.serving.load` (concurrent load with latency percentiles and a label check),
:mod:`~fornet.runtime.serving.metrics` (the batches Triton formed) and :mod:`~fornet.runtime.serving.bench`
(served vs local). :mod:`~fornet.runtime.serving.contract` names the tensors all of them share.
"""
