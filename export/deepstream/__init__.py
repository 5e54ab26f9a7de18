"""DeepStream nvinfer packages (``fornet export --deepstream DIR``) and their checks."""
