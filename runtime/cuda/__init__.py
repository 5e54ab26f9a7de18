"""CUDA: the GPU query, and through pycuda the shared primary context, CUDA graphs, the pre/post kernels, nvcc.

Nothing here imports TensorRT: :mod:`fornet.runtime.tensorrt` builds on this package, never the other way.
"""
