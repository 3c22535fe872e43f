"""The deployment stage: a trained model made ready for where it runs.

``convert`` (int8 ``.tflite``, its checks, TFLM arena and manifest),
``tflm_arrays`` (the model as aligned C arrays and an op resolver for
TensorFlow Lite Micro), ``onnx`` (the ONNX export), ``service`` (a systemd
unit for ``run`` or ``serve`` on a Pi).
"""
