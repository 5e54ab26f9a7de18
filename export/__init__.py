"""PyTorch -> ONNX (FP32 / FP16 / INT8) -> TensorRT export of FoR-Net."""
