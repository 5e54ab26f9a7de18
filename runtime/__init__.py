"""Running exported FoR-Net models: backends, pre/post-processing, metrics."""
