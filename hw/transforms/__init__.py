"""Our graph transformations, as QONNX/FINN ``Transformation`` classes."""
