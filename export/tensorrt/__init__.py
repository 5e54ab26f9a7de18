"""TensorRT on the build side: options, the engine builder, calibration caches, inspection, the plugin build.

Nothing here imports TensorRT at module level, so ``--help`` and the static checks work without it.
"""
