"""The measuring stage: accuracy on MNIST test (``evaluate``) and latency, throughput, power and energy per
inference (``bench``), on any runtime backend."""
