"""The native engine: compile an int8 TFLite model into a self-contained C99 engine, bit-exact with TFLM.

``generate`` reads the flatbuffer, checks that every op is supported, plans
activation memory statically and writes ``model.c``/``model.h`` next to
copies of the kernel sources it needs from ``csrc/`` (package data, so a
wheel carries them; see ``csrc/README.md``).

Modules: ``graph`` (the flatbuffer lowered to engine layers), ``quant``
(TFLM's requantization arithmetic), ``plan`` (static activation memory),
``cgen`` and ``generate`` (the C engine). Two users sit above it: the
firmware stage (``edge_digits.firmware.build`` cross-compiles the generated
folder for a microcontroller) and the ``native`` runtime backend
(``edge_digits.runtime.native`` compiles it for the host as a shared
library). Importing this package loads nothing.
"""
