"""Reading and writing the IDX format that MNIST is published in.

IDX is a big-endian header (two zero bytes, a type code, the number of
dimensions, then each dimension as a 32-bit integer) followed by the raw
array. Keeping our cache in this format lets any other tool read it.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

from edge_digits.fileio import atomic_write_bytes

# IDX type codes and the numpy dtypes they stand for (big-endian for multi-byte types).
_IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_TYPE_CODES: dict[str, int] = {dt.str.lstrip("<>|="): code for code, dt in _IDX_TYPES.items()}


class IdxFormatError(ValueError):
    """Raised when bytes are not a well-formed IDX file."""


def decode_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode IDX bytes into an array, checking the header against the payload size."""
    if len(data) < 4:
        raise IdxFormatError(f"{name}: {len(data)} bytes is too short for an IDX header")
    zero, type_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or type_code not in _IDX_TYPES:
        raise IdxFormatError(f"{name}: bad IDX magic {data[:4].hex()} (expected 0000 then a type code)")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise IdxFormatError(f"{name}: header declares {ndim} dimensions but the file ends early")
    shape = struct.unpack(f">{ndim}I", data[4:header_len])
    dtype = _IDX_TYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    payload = len(data) - header_len
    if payload != expected:
        raise IdxFormatError(
            f"{name}: header says shape {shape} ({expected} bytes) but {payload} bytes follow; "
            "the file is truncated or corrupt"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)


def encode_idx(array: np.ndarray) -> bytes:
    """Encode an array as IDX bytes (the inverse of :func:`decode_idx`)."""
    key = np.dtype(array.dtype).str.lstrip("<>|=")
    if key not in _TYPE_CODES:
        raise IdxFormatError(f"dtype {array.dtype} has no IDX type code")
    code = _TYPE_CODES[key]
    header = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=_IDX_TYPES[code]).tobytes()


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file, gzip-compressed when its name ends in ``.gz``."""
    p = Path(path)
    raw = gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
    return decode_idx(raw, p.name)


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write an IDX file atomically (temp file, then rename); gzip when the name ends in ``.gz``."""
    p = Path(path)
    data = encode_idx(array)
    if p.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    atomic_write_bytes(p, data)
