"""Cityscapes data (real layout and generated), preprocessing and INT8 calibration."""
