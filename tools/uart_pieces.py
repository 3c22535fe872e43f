"""Frames in pieces against the firmware under QEMU, as a USB-serial adapter delivers them: how many INFER
frames are answered when written whole, in 16-, 4- and 1-byte pieces a few milliseconds apart, and in
64-byte pieces 200 ms apart (the firmware's frame timeout is 500 ms).

    python tools/uart_pieces.py [--target stm32f4|mps2-an386] [--frames 10]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="stm32f4", choices=["stm32f4", "mps2-an386"])
    parser.add_argument("--frames", type=int, default=10)
    args = parser.parse_args()
    from edge_digits.firmware import device
    from edge_digits.firmware import protocol as proto
    from edge_digits.firmware.build import build_firmware
    from edge_digits.firmware.qemu import run_qemu
    from edge_digits.models import bundled_model

    build = build_firmware(args.target, bundled_model("micro"), Path(tempfile.mkdtemp()) / args.target)
    frame = proto.encode(proto.INFER, np.zeros(784, np.int8).tobytes())
    with run_qemu(args.target, Path(build.elf)) as qemu:
        port = device.open_port(qemu.spec)
        device.DeviceClient(port, timeout=10).info()
        reader = proto.FrameReader()
        for size, gap in ((len(frame), 0.0), (16, 0.003), (4, 0.003), (1, 0.001), (64, 0.2)):
            answered = 0
            for _ in range(args.frames):
                for i in range(0, len(frame), size):
                    port.write(frame[i:i + size])
                    if gap:
                        time.sleep(gap)
                deadline, reply = time.monotonic() + 10, None
                while reply is None and time.monotonic() < deadline:
                    frames = reader.feed(port.read(0.2))
                    reply = frames[0] if frames else None
                answered += reply is not None and reply.command == proto.INFER | proto.RESPONSE
            print(f"{args.target}: {size}-byte pieces, {gap * 1000:.0f} ms apart: {answered}/{args.frames} answered")
        port.close()


if __name__ == "__main__":
    main()
