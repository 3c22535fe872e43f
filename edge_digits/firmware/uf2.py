"""UF2 images for the Raspberry Pi RP2040 and RP2350, and the checks that an image can boot there.

A UF2 file (Microsoft's format, github.com/microsoft/uf2) is a run of 512-byte blocks, each carrying
256 bytes of the image, its flash address, its number and the total, and a family id that tells a
boot ROM which chip the image is for; a Pico in BOOTSEL mode writes every block it is given to flash
and reboots after the last. ``build_firmware`` calls :func:`write_firmware_uf2` for a target whose
``image = "uf2"``; its ``[uf2]`` table in ``target.toml`` gives:

- ``family_id``: the UF2 family (RP2040 ``0xe48bff56``, RP2350 Arm Secure ``0xe48bff59``);
- ``boot2_size``: the RP2040's boot stage 2 at the start of flash, whose last 4 bytes must be a
  CRC-32/MPEG-2 of the rest (the boot ROM refuses to run it otherwise); the CRC is added here;
- ``image_def``: the RP2350's boot ROM runs only an image with an IMAGE_DEF block in its first 4 KB.

No emulator boots these chips, so :func:`check_image` checks what can be checked without one: the
size against the flash, the vector table (stack pointer in RAM, reset handler in the image, Thumb),
the boot stage 2's CRC and the IMAGE_DEF. Standard library only.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from edge_digits.fileio import atomic_write_bytes
from edge_digits.firmware.targets import Target

MAGIC_START0 = 0x0A324655
MAGIC_START1 = 0x9E5D5157
MAGIC_END = 0x0AB16F30
FLAG_FAMILY_ID = 0x00002000
BLOCK_SIZE = 512
PAYLOAD_SIZE = 256
DATA_AREA = 476
_HEADER = struct.Struct("<8I")
_END = struct.Struct("<I")

BOOT2_CRC_OFFSET = 252
IMAGE_DEF_SEARCH = 4096
BLOCK_MARKER_START = 0xFFFFDED3
BLOCK_MARKER_END = 0xAB123579
ITEM_IMAGE_TYPE = 0x42
ITEM_LAST = 0xFF


class UF2Error(ValueError):
    """A UF2 file or a flash image is malformed, or would not boot: the message says where and why."""


@dataclass(frozen=True)
class UF2Block:
    """One 512-byte UF2 block, decoded."""

    flags: int
    address: int
    payload: bytes
    block_no: int
    num_blocks: int
    family_id: int


@dataclass(frozen=True)
class ImageDef:
    """An RP2350 metadata block holding an IMAGE_TYPE item: where it is and what it declares."""

    offset: int
    image_type_flags: int
    items: tuple[int, ...]

    @property
    def is_arm_secure_rp2350_exe(self) -> bool:
        """EXE (bits 3:0 = 1), Secure (5:4 = 2), Arm (10:8 = 0), RP2350 (14:12 = 1)."""
        f = self.image_type_flags
        return f & 0xF == 1 and (f >> 4) & 0x3 == 2 and (f >> 8) & 0x7 == 0 and (f >> 12) & 0x7 == 1


@dataclass(frozen=True)
class ImageFacts:
    """What :func:`check_image` found in a flash image."""

    size: int
    vector_table: int
    initial_sp: int
    reset_handler: int
    boot2_crc: int | None
    image_def: ImageDef | None


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
        table.append(crc & 0xFFFFFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc32_mpeg2(data: bytes) -> int:
    """CRC-32/MPEG-2: polynomial 0x04C11DB7, initial value 0xFFFFFFFF, no reflection, no final XOR.

    The checksum the RP2040 boot ROM computes over its boot stage 2 (RP2040 datasheet, 2.8.1.3.1).

    >>> hex(crc32_mpeg2(b"123456789"))
    '0x376e6e7'
    """
    crc = 0xFFFFFFFF
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC_TABLE[((crc >> 24) ^ byte) & 0xFF]
    return crc


def boot2_crc(data: bytes) -> int:
    """The CRC an RP2040 boot stage 2 must end with: CRC-32/MPEG-2 of its first 252 bytes."""
    if len(data) < BOOT2_CRC_OFFSET:
        raise UF2Error(f"a boot stage 2 is {BOOT2_CRC_OFFSET + 4} bytes; this image has only {len(data)}")
    return crc32_mpeg2(bytes(data[:BOOT2_CRC_OFFSET]))


def patch_boot2_crc(image: bytes) -> bytes:
    """The image with the boot stage 2's CRC (little-endian, bytes 252..255) filled in."""
    if len(image) < BOOT2_CRC_OFFSET + 4:
        raise UF2Error(f"the image is {len(image)} bytes: too small to hold a 256-byte boot stage 2")
    crc = boot2_crc(image)
    return image[:BOOT2_CRC_OFFSET] + struct.pack("<I", crc) + image[BOOT2_CRC_OFFSET + 4:]


def encode_uf2(data: bytes, address: int, family_id: int) -> bytes:
    """``data`` as UF2 blocks of 256 bytes from ``address`` on (the last one padded with zeros)."""
    if address % PAYLOAD_SIZE:
        raise UF2Error(f"the start address {address:#x} is not a multiple of {PAYLOAD_SIZE}")
    if not data:
        raise UF2Error("nothing to encode: the image is empty")
    count = -(-len(data) // PAYLOAD_SIZE)
    out = bytearray()
    for n in range(count):
        chunk = data[n * PAYLOAD_SIZE:(n + 1) * PAYLOAD_SIZE].ljust(PAYLOAD_SIZE, b"\0")
        out += _HEADER.pack(MAGIC_START0, MAGIC_START1, FLAG_FAMILY_ID, address + n * PAYLOAD_SIZE,
                            PAYLOAD_SIZE, n, count, family_id)
        out += chunk.ljust(DATA_AREA, b"\0")
        out += _END.pack(MAGIC_END)
    return bytes(out)


def _decode_block(raw: bytes, index: int) -> UF2Block:
    magic0, magic1, flags, address, size, block_no, num_blocks, family = _HEADER.unpack_from(raw)
    (magic_end,) = _END.unpack_from(raw, BLOCK_SIZE - 4)
    if magic0 != MAGIC_START0 or magic1 != MAGIC_START1:
        raise UF2Error(f"block {index}: bad start magic {magic0:#010x} {magic1:#010x} "
                       f"(a UF2 block starts {MAGIC_START0:#010x} {MAGIC_START1:#010x})")
    if magic_end != MAGIC_END:
        raise UF2Error(f"block {index}: bad end magic {magic_end:#010x} (expected {MAGIC_END:#010x})")
    if not flags & FLAG_FAMILY_ID:
        raise UF2Error(f"block {index}: no family id (flag {FLAG_FAMILY_ID:#x} clear): "
                       "a Pico's boot ROM ignores such blocks")
    if size > DATA_AREA:
        raise UF2Error(f"block {index}: payload of {size} bytes is over the {DATA_AREA} a block holds")
    return UF2Block(flags, address, bytes(raw[32:32 + size]), block_no, num_blocks, family)


def parse_uf2(data: bytes, flash: tuple[int, int] | None = None) -> list[UF2Block]:
    """Decode and check a whole UF2 file: magics, numbering 0..N-1 in order, the same total N in
    every block, one family, and (given ``flash`` as (origin, size)) every payload inside the flash."""
    if not data:
        raise UF2Error("the UF2 file is empty")
    if len(data) % BLOCK_SIZE:
        raise UF2Error(f"the UF2 file is {len(data)} bytes, not a whole number of {BLOCK_SIZE}-byte blocks")
    blocks = [_decode_block(data[i:i + BLOCK_SIZE], i // BLOCK_SIZE) for i in range(0, len(data), BLOCK_SIZE)]
    for index, block in enumerate(blocks):
        if block.num_blocks != len(blocks):
            raise UF2Error(f"block {index}: says the file has {block.num_blocks} blocks, but it has {len(blocks)}")
        if block.block_no != index:
            raise UF2Error(f"block {index}: numbered {block.block_no}: block numbers must run 0..{len(blocks) - 1} "
                           "in order")
        if block.family_id != blocks[0].family_id:
            raise UF2Error(f"block {index}: family {block.family_id:#010x} differs from block 0's "
                           f"{blocks[0].family_id:#010x}")
        if flash is not None:
            origin, size = flash
            if block.address < origin or block.address + len(block.payload) > origin + size:
                raise UF2Error(f"block {index}: {len(block.payload)} bytes at {block.address:#010x} fall outside "
                               f"the flash ({origin:#010x}..{origin + size:#010x})")
    return blocks


def read_uf2(path: Path, flash: tuple[int, int] | None = None) -> list[UF2Block]:
    """The blocks of the UF2 file at ``path``, checked as :func:`parse_uf2` does."""
    return parse_uf2(Path(path).read_bytes(), flash)


def uf2_payload(blocks: list[UF2Block]) -> tuple[int, bytes]:
    """The start address and the bytes the blocks write, which must follow one another without gaps."""
    if not blocks:
        raise UF2Error("no blocks")
    start = blocks[0].address
    out = bytearray()
    for index, block in enumerate(blocks):
        if block.address != start + len(out):
            raise UF2Error(f"block {index}: at {block.address:#010x}, expected {start + len(out):#010x} "
                           "(the blocks must write one contiguous image)")
        out += block.payload
    return start, bytes(out)


def find_image_def(image: bytes, limit: int = IMAGE_DEF_SEARCH) -> ImageDef:
    """The first well-formed metadata block with an IMAGE_TYPE item in the first ``limit`` bytes.

    A block (RP2350 datasheet, 5.9.1) is the start marker, items (each a header word: type in bits
    6:0, bit 7 set for a 2-byte size; size in words including the header), a LAST item (type 0xff)
    whose 2-byte size is the words of the items before it, a link word (byte offset to the next block
    of the loop; 0 links to itself) and the end marker.
    """
    window = image[:limit]
    for offset in range(0, len(window) - 3, 4):
        (word,) = struct.unpack_from("<I", window, offset)
        if word != BLOCK_MARKER_START:
            continue
        found = _parse_block(window, offset)
        if found is not None:
            return found
    raise UF2Error(f"no IMAGE_DEF block (start marker {BLOCK_MARKER_START:#010x} with an IMAGE_TYPE item) "
                   f"in the first {limit} bytes: the RP2350 boot ROM would not run this image")


def _parse_block(window: bytes, offset: int) -> ImageDef | None:
    at = offset + 4
    items: list[int] = []
    flags: int | None = None
    while at + 4 <= len(window):
        header = window[at]
        kind = header & 0x7F
        if header == ITEM_LAST:
            words = window[at + 1] | window[at + 2] << 8
            if words != (at - offset - 4) // 4 or at + 12 > len(window):
                return None
            link, end = struct.unpack_from("<iI", window, at + 4)
            if end != BLOCK_MARKER_END or link % 4:
                return None
            return ImageDef(offset, flags, tuple(items)) if flags is not None else None
        size = window[at + 1] | (window[at + 2] << 8 if header & 0x80 else 0)
        if size == 0:
            return None
        if kind == ITEM_IMAGE_TYPE and size == 1 and not header & 0x80:
            flags = window[at + 2] | window[at + 3] << 8
        items.append(kind)
        at += 4 * size
    return None


def elf_file_offset(elf: bytes, address: int, length: int) -> int:
    """Where the ``length`` bytes loaded at (physical) ``address`` lie in a 32-bit little-endian ELF file."""
    if elf[:6] != b"\x7fELF\x01\x01":
        raise UF2Error("not a 32-bit little-endian ELF file")
    (phoff,) = struct.unpack_from("<I", elf, 0x1C)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x2A)
    for n in range(phnum):
        kind, offset, _vaddr, paddr, filesz = struct.unpack_from("<5I", elf, phoff + n * phentsize)
        if kind == 1 and paddr <= address and address + length <= paddr + filesz:  # PT_LOAD
            return int(offset + address - paddr)
    raise UF2Error(f"no loaded segment of the ELF holds {length} bytes at {address:#010x}")


def patch_elf_boot2_crc(elf_path: Path, flash_origin: int, image: bytes) -> None:
    """Give the ELF the same boot stage 2 CRC as the patched ``image``, so that a debugger loading the ELF
    writes a boot2 the boot ROM accepts; the ELF's boot2 must otherwise hold the image's bytes."""
    elf = Path(elf_path).read_bytes()
    at = elf_file_offset(elf, flash_origin, BOOT2_CRC_OFFSET + 4)
    if elf[at:at + BOOT2_CRC_OFFSET] != image[:BOOT2_CRC_OFFSET]:
        raise UF2Error(f"{elf_path}: its boot stage 2 differs from the image's: not the ELF of this image")
    crc = image[BOOT2_CRC_OFFSET:BOOT2_CRC_OFFSET + 4]
    if elf[at + BOOT2_CRC_OFFSET:at + BOOT2_CRC_OFFSET + 4] != crc:
        atomic_write_bytes(elf_path, elf[:at + BOOT2_CRC_OFFSET] + crc + elf[at + BOOT2_CRC_OFFSET + 4:])


def check_image(target: Target, image: bytes) -> ImageFacts:
    """Check a flash image (the .bin, from the flash origin on) for what the target's boot ROM needs.

    Raises :class:`UF2Error` naming the first problem: too large for the flash; an initial stack
    pointer outside RAM or not 8-byte aligned; a reset handler outside the image or without the
    Thumb bit; a boot stage 2 whose CRC is wrong (RP2040); no valid IMAGE_DEF (RP2350).
    """
    mem = target.memory
    boot2_size = int(target.extra.get("boot2_size", 0))
    if len(image) > mem.flash_size:
        raise UF2Error(f"the image is {len(image)} bytes; {target.name}'s flash holds {mem.flash_size}")
    if len(image) < boot2_size + 8:
        raise UF2Error(f"the image is {len(image)} bytes: too small for a vector table after {boot2_size} bytes")
    sp, reset = struct.unpack_from("<II", image, boot2_size)
    if not mem.ram_origin < sp <= mem.ram_origin + mem.ram_size or sp % 8:
        raise UF2Error(f"initial stack pointer {sp:#010x} is not an 8-byte aligned address in RAM "
                       f"({mem.ram_origin:#010x}..{mem.ram_origin + mem.ram_size:#010x})")
    if not reset & 1:
        raise UF2Error(f"reset handler {reset:#010x} has no Thumb bit: a Cortex-M would fault on reset")
    if not mem.flash_origin + boot2_size <= reset - 1 < mem.flash_origin + len(image):
        raise UF2Error(f"reset handler {reset:#010x} is outside the image "
                       f"({mem.flash_origin:#010x}..{mem.flash_origin + len(image):#010x})")
    crc = None
    if boot2_size:
        crc = boot2_crc(image)
        (stored,) = struct.unpack_from("<I", image, BOOT2_CRC_OFFSET)
        if stored != crc:
            raise UF2Error(f"boot stage 2 CRC is {stored:#010x}, but its first {BOOT2_CRC_OFFSET} bytes give "
                           f"{crc:#010x}: the RP2040 boot ROM would not run it")
    image_def = None
    if target.extra.get("image_def"):
        image_def = find_image_def(image)
        if not image_def.is_arm_secure_rp2350_exe:
            raise UF2Error(f"the IMAGE_DEF at offset {image_def.offset:#x} declares image type "
                           f"{image_def.image_type_flags:#06x}, not an Arm Secure RP2350 executable (0x1021)")
    return ImageFacts(len(image), mem.flash_origin + boot2_size, sp, reset, crc, image_def)


def write_firmware_uf2(target: Target, bin_path: Path, uf2_path: Path) -> Path:
    """Turn the build's ``firmware.bin`` into ``firmware.uf2`` for ``target``; returns the UF2's path.

    The RP2040's boot stage 2 CRC is written into the .bin first (atomically, so the .bin and the .uf2
    hold the same bytes), and into the ELF beside it (``firmware.elf``, when there is one), so that
    every file of the build boots. The image is then checked (:func:`check_image`), encoded, decoded
    again as a check, and written atomically.
    """
    bin_path, uf2_path = Path(bin_path), Path(uf2_path)
    if "family_id" not in target.extra:
        raise UF2Error(f"{target.name}: its target.toml has no [uf2] family_id")
    family = int(target.extra["family_id"])
    image = bin_path.read_bytes()
    if target.extra.get("boot2_size"):
        patched = patch_boot2_crc(image)
        if patched != image:
            atomic_write_bytes(bin_path, patched)
            image = patched
        elf_path = bin_path.with_suffix(".elf")
        if elf_path.is_file():
            patch_elf_boot2_crc(elf_path, target.memory.flash_origin, image)
    check_image(target, image)
    data = encode_uf2(image, target.memory.flash_origin, family)
    blocks = parse_uf2(data, (target.memory.flash_origin, target.memory.flash_size))
    start, payload = uf2_payload(blocks)
    if start != target.memory.flash_origin or payload[:len(image)] != image:
        raise UF2Error("the UF2 does not decode to the image it was made from")  # pragma: no cover
    return atomic_write_bytes(uf2_path, data)
