"""Input normalisation constants, importable without torch (the CPU runtime path needs them)."""

#: ImageNet statistics in RGB order, as the reference normalises its input.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
