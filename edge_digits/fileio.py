"""Small file helpers shared by every stage: writes that never leave half a file behind."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write bytes so that readers see either the old file or the whole new one.

    The data goes to a hidden temp file in the same folder, is flushed to disk,
    then renamed over the target; on any error the temp file is removed.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 text atomically (see :func:`atomic_write_bytes`)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write an object as indented JSON atomically, ending with a newline."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def shared_data_dir(name: str, env: str) -> Path:
    """``$env`` if set, else ``shared/data/NAME`` beside the project folder (the test data of a clone)."""
    given = os.environ.get(env)
    if given:
        return Path(given)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data" / name


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgG]i?[bB]?|[bB])?\s*$")


def parse_bytes(text: str) -> int:
    """``24KB``, ``24k``, ``1.5MB``, ``2GB`` or ``24576`` as bytes (KB = 1024 bytes, as flash and RAM are sized).

    >>> parse_bytes("24KB"), parse_bytes("1.5MB")
    (24576, 1572864)
    """
    found = _SIZE.match(str(text))
    if not found:
        raise ValueError(f"{text!r} is not a size: write it as 24KB, 12k, 1MB or a number of bytes")
    unit = (found.group(2) or "b").lower()[0]
    return int(float(found.group(1)) * {"b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}[unit])


# The Content-Type of each kind of file a bundled web page is made of (serve's page, run --http's live view).
WEB_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
             ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png",
             ".ico": "image/x-icon"}


def read_web_files(folder: Path) -> dict[str, tuple[bytes, str]]:
    """The files of a bundled web page, read once at start-up so that no request touches the disk: each
    plain file of a known type directly in ``folder``, by exact name, with its Content-Type (nothing else is
    ever served, so no path can reach outside the folder)."""
    if not folder.is_dir():
        return {}
    return {p.name: (p.read_bytes(), WEB_TYPES[p.suffix]) for p in sorted(folder.iterdir())
            if p.is_file() and p.suffix in WEB_TYPES}
