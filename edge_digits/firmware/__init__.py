"""The firmware stage: the native engine of a model on a microcontroller.

The engine itself (generator and C kernels) is ``edge_digits.engine``; this
stage adds ``targets`` (the boards and QEMU machines), ``build`` (the engine
plus startup, board and protocol code, cross-compiled), ``qemu``, ``flash``,
``protocol`` and ``device`` (run, flash and validate over UART). ``csrc/``
holds the firmware's C sources, linker scripts and Makefile as package data,
so an installed wheel builds firmware as a clone does. Importing this package
loads nothing, so the CLI reads ``targets`` without numpy.
"""
