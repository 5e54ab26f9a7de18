"""TensorRT on the run side: the environment, the plugin library, plan metadata and the backend.

Nothing here imports TensorRT or pycuda at module level; each function imports them when called.
"""
