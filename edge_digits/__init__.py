"""edge-digits: handwritten-digit recognition from training to a Pi camera and a microcontroller.

Importing this package is cheap and never imports TensorFlow: each stage lives
in its own module (``data``, ``train``, ``convert``, ...) and heavy
dependencies are imported inside the functions that need them.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("edge-digits")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
