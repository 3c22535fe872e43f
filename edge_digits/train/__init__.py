"""The training stage, the one place TensorFlow is imported: recipes in, int8 models and reports out.

``recipe`` (the YAML recipe format), ``augment`` (camera-like
augmentation), ``trainer`` (float training, quantization-aware fine-tuning,
reports), ``tflite`` (TensorFlow itself and the one Keras-to-int8 converter
set-up), ``techniques`` (distillation, pruning, adversarial training),
``tune`` (search under flash, arena and latency budgets), ``robustness``
(accuracy under perturbations), ``negatives`` and ``reject`` (the rejection
model's data and trainer). TensorFlow loads inside the functions that need it.
"""
