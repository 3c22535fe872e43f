"""The firmware stage: compile an int8 TFLite model into a self-contained C99 engine.

``generate`` reads the flatbuffer, checks that every op is supported, plans
activation memory statically and writes ``model.c``/``model.h`` next to the
kernel sources of ``firmware/engine``. See ``firmware/engine/README.md``.
"""

from edge_digits.firmware.generate import GenerateResult, generate
from edge_digits.firmware.graph import UnsupportedModelError

__all__ = ["GenerateResult", "UnsupportedModelError", "generate"]
