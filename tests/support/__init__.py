"""Test helpers: ONNX graph builders, a real sshd launcher, an emulated adb device."""
