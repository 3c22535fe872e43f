"""The firmware stage: compile an int8 TFLite model into a self-contained C99 engine.

``generate`` reads the flatbuffer, checks that every op is supported, plans
activation memory statically and writes ``model.c``/``model.h`` next to the
kernel sources of ``firmware/engine``. See ``firmware/engine/README.md``.

Modules: ``graph`` (the flatbuffer lowered to engine layers), ``quant``
(TFLM's requantization arithmetic), ``plan`` (static activation memory),
``cgen`` and ``generate`` (the C engine), ``targets`` (the boards and QEMU
machines), ``build``, ``qemu``, ``flash``, ``protocol`` and ``device`` (build,
run, flash and validate over UART). Importing this package loads nothing, so
the CLI reads ``targets`` without numpy.
"""
