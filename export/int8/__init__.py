"""INT8 export: the Q/DQ graph editor, the calibration manifest, the accuracy gate, layer sensitivity."""
