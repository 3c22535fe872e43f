"""Writes the make variables, target.h and link.ld of one firmware build from targets/<TARGET>/target.toml.

Run by the Makefile (``python3 target_config.py TARGET BOARD KERNELS OUT_DIR``; an empty BOARD or KERNELS
means the target's default). The descriptions are read by the same code as ``edge-digits firmware``
(``edge_digits/firmware/targets.py``), found beside this folder in a clone and in an installed wheel alike.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from edge_digits.firmware.targets import TargetError, write_make_config  # noqa: E402


def main(argv: list[str]) -> int:
    if len(argv) != 5:
        print("usage: target_config.py TARGET BOARD KERNELS OUT_DIR", file=sys.stderr)
        return 2
    target, board, kernels, out = argv[1:]
    try:
        write_make_config(target, board or None, kernels or None, Path(out))
    except TargetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
