"""TRT family: what the TensorRT ONNX parser of the target release rejects or mishandles."""
