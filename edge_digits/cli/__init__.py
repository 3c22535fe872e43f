"""The ``edge-digits`` command line: option parsing, printing and exit codes only.

Every command calls a library function that returns data; nothing here
computes. One module per command group (``data``, ``train``, ``measure``,
``deploy``, ``firmware``, ``read``, ``serve``), each adding its commands to
the group in ``common``. Heavy modules are imported inside the commands that
need them, so ``edge-digits --help`` stays fast and never imports TensorFlow.
"""

from edge_digits.cli import data, deploy, firmware, measure, read, serve, train
from edge_digits.cli.common import EdgeDigitsError, main

__all__ = ["EdgeDigitsError", "main"]
_COMMAND_MODULES = (data, train, measure, deploy, firmware, read, serve)   # imported for their commands
