"""The IDX reader and writer on small files made here."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from edge_digits.idx import IdxFormatError, decode_idx, encode_idx, read_idx, write_idx


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_round_trip(tmp_path: Path, dtype: type, suffix: str) -> None:
    array = (np.arange(3 * 5 * 7) % 120 - (0 if dtype == np.uint8 else 60)).astype(dtype).reshape(3, 5, 7)
    path = tmp_path / f"a-idx3{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == (3, 5, 7)
    np.testing.assert_array_equal(back, array)
    assert not list(tmp_path.glob(".*partial")), "no temp file may remain"


def test_header_is_big_endian_and_standard() -> None:
    raw = encode_idx(np.zeros((2, 28, 28), np.uint8))
    assert raw[:4] == bytes([0, 0, 0x08, 3])
    assert struct.unpack(">3I", raw[4:16]) == (2, 28, 28)
    assert len(raw) == 16 + 2 * 28 * 28
    labels = encode_idx(np.array([7, 2, 1], np.uint8))
    assert labels == bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1])


def test_multibyte_values_are_big_endian_on_disk() -> None:
    raw = encode_idx(np.array([1, 256], np.int32))
    assert raw[8:] == b"\x00\x00\x00\x01\x00\x00\x01\x00"
    assert decode_idx(raw).tolist() == [1, 256]


def test_truncated_file_is_rejected() -> None:
    raw = encode_idx(np.ones((4, 28, 28), np.uint8))
    with pytest.raises(IdxFormatError, match="truncated or corrupt"):
        decode_idx(raw[:-1], "cut")


@pytest.mark.parametrize("raw, message", [
    (b"\x00\x00", "too short"),
    (b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", "bad IDX magic"),
    (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "bad IDX magic"),
    (b"\x00\x00\x08\x03\x00\x00", "ends early"),
])
def test_malformed_headers(raw: bytes, message: str) -> None:
    with pytest.raises(IdxFormatError, match=message):
        decode_idx(raw)


def test_reads_gzip_written_by_others(tmp_path: Path) -> None:
    path = tmp_path / "labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 2, 4, 9])))
    assert read_idx(path).tolist() == [4, 9]


def test_unsupported_dtype() -> None:
    with pytest.raises(IdxFormatError, match="no IDX type code"):
        encode_idx(np.zeros(3, np.uint16))
