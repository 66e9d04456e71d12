"""ONNX to ncnn conversion: checking, simplifying, pnnx, parity, calibration and INT8."""
