"""CUDA through pycuda: the shared primary context, CUDA graphs, the pre/post kernels, nvcc."""
