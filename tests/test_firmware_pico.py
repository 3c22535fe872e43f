"""Raspberry Pi Pico (RP2040) and Pico 2 (RP2350) images: built, then checked without a board.

No QEMU machine boots these chips, so what is checked is what a boot ROM checks before it runs an
image, and what the image must be for the firmware to start: the UF2 container (magics, numbering,
family, addresses, payload equal to the .bin), the RP2040 boot stage 2's CRC (against a bit-by-bit
CRC-32/MPEG-2 written here, independent of uf2.py's table), the vector table, the RP2350 IMAGE_DEF,
sizes against the chip's flash and RAM, and which engine build (scalar or DSP) is inside.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from edge_digits.firmware import uf2
from edge_digits.firmware.build import FirmwareBuild, build_firmware
from edge_digits.firmware.flash import flash_command
from edge_digits.firmware.targets import TARGETS
from edge_digits.models import bundled_model

needs_toolchain = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                                     reason="the Cortex-M toolchain comes from `make setup-system`")

FAMILIES = {"rp2040": 0xE48BFF56, "rp2350": 0xE48BFF59}


def reference_crc32_mpeg2(data: bytes) -> int:
    """CRC-32/MPEG-2 one bit at a time, straight from its definition (MSB first, no reflection)."""
    crc = 0xFFFFFFFF
    for byte in data:
        for bit in range(7, -1, -1):
            top = (crc >> 31) ^ ((byte >> bit) & 1)
            crc = (crc << 1) & 0xFFFFFFFF
            if top:
                crc ^= 0x04C11DB7
    return crc


def test_crc32_mpeg2_known_answer() -> None:
    assert reference_crc32_mpeg2(b"123456789") == 0x0376E6E7
    assert uf2.crc32_mpeg2(b"123456789") == 0x0376E6E7
    sample = bytes(range(256)) * 3
    assert uf2.crc32_mpeg2(sample) == reference_crc32_mpeg2(sample)
    assert uf2.boot2_crc(sample) == reference_crc32_mpeg2(sample[:252])


def test_uf2_round_trip_and_padding() -> None:
    data = bytes(range(256)) * 2 + b"tail"
    encoded = uf2.encode_uf2(data, 0x10000000, FAMILIES["rp2040"])
    assert len(encoded) == 3 * 512
    blocks = uf2.parse_uf2(encoded, (0x10000000, 2 * 1024 * 1024))
    assert [b.block_no for b in blocks] == [0, 1, 2] and {b.num_blocks for b in blocks} == {3}
    start, payload = uf2.uf2_payload(blocks)
    assert start == 0x10000000 and payload == data + bytes(252)


def _corrupt(data: bytes, block: int, offset: int, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into("<I", out, block * 512 + offset, value)
    return bytes(out)


@pytest.mark.parametrize(("offset", "value", "message"), [
    (0, 0x12345678, "block 1: bad start magic"),
    (508, 0, "block 1: bad end magic"),
    (24, 5, "block 1: says the file has 5 blocks, but it has 3"),
    (20, 2, "block 1: numbered 2: block numbers must run 0..2 in order"),
    (28, 0xE48BFF59, "block 1: family 0xe48bff59 differs from block 0's 0xe48bff56"),
    (8, 0, "block 1: no family id"),
    (12, 0x20000000, "block 1: 256 bytes at 0x20000000 fall outside the flash"),
])
def test_corrupted_uf2_gives_a_specific_error(offset: int, value: int, message: str) -> None:
    good = uf2.encode_uf2(bytes(700), 0x10000000, FAMILIES["rp2040"])
    with pytest.raises(uf2.UF2Error, match=message):
        uf2.parse_uf2(_corrupt(good, 1, offset, value), (0x10000000, 2 * 1024 * 1024))


def test_truncated_uf2_and_gaps_are_errors() -> None:
    good = uf2.encode_uf2(bytes(700), 0x10000000, FAMILIES["rp2040"])
    with pytest.raises(uf2.UF2Error, match="not a whole number of 512-byte blocks"):
        uf2.parse_uf2(good[:-1])
    with pytest.raises(uf2.UF2Error, match="the UF2 file is empty"):
        uf2.parse_uf2(b"")
    gap = uf2.parse_uf2(_corrupt(good, 2, 12, 0x10001000))
    with pytest.raises(uf2.UF2Error, match="block 2: at 0x10001000, expected 0x10000200"):
        uf2.uf2_payload(gap)


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, FirmwareBuild]:
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("the Cortex-M toolchain comes from `make setup-system`")
    out = tmp_path_factory.mktemp("pico")
    model = bundled_model("micro")
    return {t: build_firmware(t, model, out / t) for t in ("rp2040", "rp2350")}


@needs_toolchain
@pytest.mark.parametrize("target", ["rp2040", "rp2350"])
def test_uf2_holds_exactly_the_bin(builds: dict[str, FirmwareBuild], target: str) -> None:
    build = builds[target]
    t = TARGETS[target]
    image = Path(build.bin).read_bytes()
    assert build.image.endswith(".uf2") and Path(build.image).is_file()
    blocks = uf2.read_uf2(Path(build.image), (t.memory.flash_origin, t.memory.flash_size))
    count = -(-len(image) // 256)
    assert len(blocks) == count and [b.block_no for b in blocks] == list(range(count))
    assert all(b.num_blocks == count and b.family_id == FAMILIES[target] for b in blocks)
    assert all(b.flags == 0x2000 and len(b.payload) == 256 for b in blocks)
    assert [b.address for b in blocks] == [0x10000000 + 256 * n for n in range(count)]
    raw = Path(build.image).read_bytes()
    for n in range(count):
        words = struct.unpack_from("<8I", raw, 512 * n)
        assert words[:2] == (0x0A324655, 0x9E5D5157)
        assert struct.unpack_from("<I", raw, 512 * n + 508)[0] == 0x0AB16F30
    start, payload = uf2.uf2_payload(blocks)
    assert start == 0x10000000
    assert payload[:len(image)] == image and not any(payload[len(image):])


@needs_toolchain
@pytest.mark.parametrize("target", ["rp2040", "rp2350"])
def test_sizes_fit_the_chip(builds: dict[str, FirmwareBuild], target: str) -> None:
    build = builds[target]
    mem = TARGETS[target].memory
    recorded = json.loads((Path(build.bin).parent / "build.json").read_text())
    assert recorded["image"] == build.image
    assert Path(build.bin).stat().st_size == build.flash_bytes <= mem.flash_size
    assert build.ram_static_bytes + build.stack_reserved_bytes <= mem.ram_size
    assert build.stack_reserved_bytes == mem.stack_size
    assert 10_000 < build.flash_bytes < 64 * 1024


@needs_toolchain
@pytest.mark.parametrize("target", ["rp2040", "rp2350"])
def test_vector_table_is_sane(builds: dict[str, FirmwareBuild], target: str) -> None:
    mem = TARGETS[target].memory
    image = Path(builds[target].bin).read_bytes()
    at = 256 if target == "rp2040" else 0
    sp, reset = struct.unpack_from("<II", image, at)
    assert mem.ram_origin < sp <= mem.ram_origin + mem.ram_size and sp % 8 == 0
    assert reset & 1, "a Thumb address"
    assert mem.flash_origin + at < reset < mem.flash_origin + len(image)
    facts = uf2.check_image(TARGETS[target], image)
    assert (facts.initial_sp, facts.reset_handler, facts.vector_table) == (sp, reset, mem.flash_origin + at)


@needs_toolchain
def test_rp2040_boot2_crc_and_jump(builds: dict[str, FirmwareBuild]) -> None:
    image = Path(builds["rp2040"].bin).read_bytes()
    assert struct.unpack_from("<I", image, 252)[0] == reference_crc32_mpeg2(image[:252])
    # the same bytes went into the UF2's first block (the .bin was patched before the conversion)
    first = uf2.read_uf2(Path(builds["rp2040"].image))[0]
    assert first.payload == image[:256]
    # and into the ELF, so a debugger that loads the ELF writes a boot2 the boot ROM accepts
    elf = Path(builds["rp2040"].elf).read_bytes()
    at = uf2.elf_file_offset(elf, 0x10000000, 256)
    assert elf[at:at + 256] == image[:256]
    objcopy = shutil.which("arm-none-eabi-objcopy")
    if objcopy:
        out = Path(builds["rp2040"].elf).with_name("from-elf.bin")
        subprocess.run([objcopy, "-O", "binary", builds["rp2040"].elf, str(out)], check=True)
        assert out.read_bytes() == image
    # boot2 ends by loading VTOR with the vector table's address: that literal is in its 252 bytes
    assert struct.pack("<I", 0x10000100) in image[:252] and struct.pack("<I", 0xE000ED08) in image[:252]
    broken = bytearray(image)
    broken[10] ^= 0xFF
    with pytest.raises(uf2.UF2Error, match="boot stage 2 CRC"):
        uf2.check_image(TARGETS["rp2040"], bytes(broken))


@needs_toolchain
def test_rp2350_image_def(builds: dict[str, FirmwareBuild]) -> None:
    image = Path(builds["rp2350"].bin).read_bytes()
    found = uf2.find_image_def(image)
    assert found.offset < 4096 and found.image_type_flags == 0x1021 and found.is_arm_secure_rp2350_exe
    words = struct.unpack_from("<5I", image, found.offset)
    assert words == (0xFFFFDED3, 0x10210142, 0x000001FF, 0, 0xAB123579)
    no_block = image[:found.offset] + bytes(20) + image[found.offset + 20:]
    with pytest.raises(uf2.UF2Error, match="no IMAGE_DEF block"):
        uf2.check_image(TARGETS["rp2350"], no_block)
    wrong = bytearray(image)
    struct.pack_into("<H", wrong, found.offset + 6, 0x1011)  # Non-secure
    with pytest.raises(uf2.UF2Error, match="not an Arm Secure RP2350 executable"):
        uf2.check_image(TARGETS["rp2350"], bytes(wrong))


@needs_toolchain
@pytest.mark.parametrize(("target", "kernels", "arch"), [("rp2040", "scalar", "v6S-M"),
                                                         ("rp2350", "dsp", "v8-M.mainline")])
def test_engine_build_matches_the_core(builds: dict[str, FirmwareBuild], target: str, kernels: str,
                                       arch: str) -> None:
    build = builds[target]
    assert build.kernels == kernels
    image = Path(build.bin).read_bytes()
    assert f'"kernels":"{kernels}"'.encode() in image and f'"target":"{target}"'.encode() in image
    if shutil.which("arm-none-eabi-readelf"):
        attrs = subprocess.run(["arm-none-eabi-readelf", "-A", build.elf], capture_output=True, text=True).stdout
        assert f"Tag_CPU_arch: {arch}" in attrs
    gen = Path(build.elf).parent / "gen"
    dsp_landed = any("ED_KERNELS_DSP" in p.read_text(errors="replace") for p in gen.glob("*.[ch]"))
    if dsp_landed and shutil.which("arm-none-eabi-objdump"):
        text = subprocess.run(["arm-none-eabi-objdump", "-d", build.elf], capture_output=True, text=True).stdout
        assert ("smlad" in text) == (kernels == "dsp")


@needs_toolchain
def test_check_image_rejects_an_image_too_large_or_with_a_bad_vector(builds: dict[str, FirmwareBuild]) -> None:
    t = TARGETS["rp2350"]
    image = Path(builds["rp2350"].bin).read_bytes()
    with pytest.raises(uf2.UF2Error, match="flash holds"):
        uf2.check_image(t, image + bytes(t.memory.flash_size))
    bad_sp = struct.pack("<I", 0x30000000) + image[4:]
    with pytest.raises(uf2.UF2Error, match="initial stack pointer 0x30000000"):
        uf2.check_image(t, bad_sp)
    even = image[:4] + struct.pack("<I", struct.unpack_from("<I", image, 4)[0] & ~1) + image[8:]
    with pytest.raises(uf2.UF2Error, match="no Thumb bit"):
        uf2.check_image(t, even)


@needs_toolchain
def test_flash_commands_for_pico(builds: dict[str, FirmwareBuild], tmp_path: Path) -> None:
    build = builds["rp2040"]
    elf, image = Path(build.elf), Path(build.image)
    drive = tmp_path / "RPI-RP2"
    drive.mkdir()
    assert flash_command("uf2-copy", elf, image, "pico", drive) == ["cp", str(image), str(drive / "firmware.uf2")]
    assert flash_command("picotool", elf, image, "pico") == ["picotool", "load", "-x", "-t", "uf2", str(image)]
    assert flash_command("picotool", Path(builds["rp2350"].elf), Path(builds["rp2350"].image), "pico2")[:5] == \
        ["picotool", "load", "-x", "-t", "uf2"]


# --- Optional: boot the images on an emulated core with a register-level stub of the chip -------------
# No emulator models the RP2040 or RP2350, but Unicorn (QEMU's CPU cores as a library; not a dependency
# of this project: `pip install unicorn` to run this) runs their Cortex-M0 / M33 code. The stub answers
# the status bits the firmware waits for (crystal stable, PLL locked, clock muxes switched, resets done,
# UART FIFO flags) the way the datasheets describe them, and carries UART0's data register to the
# protocol client. This checks the boot path (RP2040: boot2 run from its SRAM copy, the jump through
# VTOR at 0x10000100; RP2350: entry through the vector table at 0x10000000), startup, that board_init
# finishes, the UART data path and the engine's answers on the core's instruction set; it does not check
# the register semantics, which the stub was written from, so it stands in for no board.

class _RegisterStub:
    """An RP2040 or RP2350 image in Unicorn, with its peripherals and system registers stubbed."""

    # base addresses: resets, clocks, XOSC, PLL_SYS, UART0, IO_BANK0; and the PLL_SYS / UART0 reset bits
    CHIPS = {
        "rp2040": dict(resets=0x4000C000, clocks=0x40008000, xosc=0x40024000, pll=0x40028000,
                       uart=0x40034000, io=0x40014000, pll_bit=12, uart_bit=22, cpuid=0x410CC601),
        "rp2350": dict(resets=0x40020000, clocks=0x40010000, xosc=0x40048000, pll=0x40050000,
                       uart=0x40070000, io=0x40028000, pll_bit=14, uart_bit=26, cpuid=0x411FD210),
    }
    STEP = 2000  # counter ticks per read of SysTick or CYCCNT: the stub has no clock

    def __init__(self, target: str, build: FirmwareBuild) -> None:
        unicorn = pytest.importorskip("unicorn")
        from unicorn import arm_const

        self.c = self.CHIPS[target]
        self.rp2040 = target == "rp2040"
        self.uc = unicorn.Uc(unicorn.UC_ARCH_ARM, unicorn.UC_MODE_THUMB | unicorn.UC_MODE_MCLASS)
        self.uc.ctl_set_cpu_model(arm_const.UC_CPU_ARM_CORTEX_M0 if self.rp2040 else arm_const.UC_CPU_ARM_CORTEX_M33)
        image = Path(build.bin).read_bytes()
        self.uc.mem_map(0x10000000, 4 * 1024 * 1024)
        self.uc.mem_write(0x10000000, image)
        self.uc.mem_map(0x20000000, 0x84000)
        self.regs: dict[int, int] = {self.c["resets"]: 0x1FFFFFFF, self.c["pll"] + 4: 0x2D}
        self.rx, self.tx = bytearray(), bytearray()
        self.cvr, self.cyccnt = 0xFFFFFF, 0
        self.dwt_touched = False
        nm = subprocess.run(["arm-none-eabi-nm", build.elf], capture_output=True, text=True, check=True).stdout
        self.wraps_at = next(int(s.split()[0], 16) for s in nm.splitlines() if s.endswith(" systick_wraps"))
        self.uc.mmio_map(0x40000000, 0x110000, self._periph_read, None, self._periph_write, None)
        self.uc.mmio_map(0x18000000, 0x1000, self._plain_read, 0x18000000, self._plain_write, 0x18000000)
        self.uc.mmio_map(0xE0000000, 0x100000, self._ppb_read, None, self._ppb_write, None)
        if self.rp2040:  # the boot ROM copies boot2 to the top of SRAM, checks its CRC and runs it there
            assert struct.unpack_from("<I", image, 252)[0] == reference_crc32_mpeg2(image[:252])
            self.uc.mem_write(0x20041F00, image[:256])
            self.uc.reg_write(arm_const.UC_ARM_REG_SP, 0x20042000)
            self.pc = 0x20041F00 | 1
        else:  # the boot ROM enters through the vector table at the start of the image
            self.uc.reg_write(arm_const.UC_ARM_REG_MSP, struct.unpack_from("<I", image, 0)[0])
            self.pc = struct.unpack_from("<I", image, 4)[0]
        self._pc_reg = arm_const.UC_ARM_REG_PC

    def _plain_read(self, uc: object, offset: int, size: int, base: int) -> int:
        return self.regs.get(base + offset, 0)

    def _plain_write(self, uc: object, offset: int, size: int, value: int, base: int) -> None:
        self.regs[base + offset] = value

    def _periph_read(self, uc: object, offset: int, size: int, _: object) -> int:
        c, r = self.c, self.regs
        addr = 0x40000000 + (offset & ~0x3000)
        if addr == c["xosc"] + 4:  # STATUS.STABLE once CTRL.ENABLE has the magic value
            return 1 << 31 if r.get(c["xosc"], 0) >> 12 == 0xFAB else 0
        if addr == c["clocks"] + 0x38:  # CLK_REF_SELECTED: one-hot of CTRL.SRC
            return 1 << (r.get(c["clocks"] + 0x30, 0) & 3)
        if addr == c["clocks"] + 0x44:  # CLK_SYS_SELECTED
            return 1 << (r.get(c["clocks"] + 0x3C, 0) & 1)
        if addr == c["resets"] + 8:  # RESET_DONE
            return ~r[c["resets"]] & 0x1FFFFFFF
        if addr == c["pll"]:  # CS.LOCK once out of reset, powered (PD, VCOPD clear) and FBDIV set
            on = not r.get(c["pll"] + 4, 0x2D) & 0x21 and not r[c["resets"]] >> c["pll_bit"] & 1
            return r.get(c["pll"], 1) & 0x3F | (1 << 31 if on and r.get(c["pll"] + 8) else 0)
        if addr == c["uart"] + 0x18:  # FR: RXFE when nothing is waiting; TX never full
            return 0 if self.rx else 1 << 4
        if addr == c["uart"]:
            return self.rx.pop(0) if self.rx else 0
        return r.get(addr, 0)

    def _periph_write(self, uc: object, offset: int, size: int, value: int, _: object) -> None:
        c, r = self.c, self.regs
        addr, alias = 0x40000000 + (offset & ~0x3000), offset & 0x3000
        old = r.get(addr, 0)
        value = {0x1000: old ^ value, 0x2000: old | value, 0x3000: old & ~value}.get(alias, value)
        if addr == c["uart"]:
            if not r[c["resets"]] >> c["uart_bit"] & 1 and r.get(c["uart"] + 0x30, 0) & 0x301 == 0x301:
                self.tx.append(value & 0xFF)
            return
        r[addr] = value

    def _ppb_read(self, uc: object, offset: int, size: int, _: object) -> int:
        addr = 0xE0000000 + offset
        if addr == 0xE000E018:  # SYST_CVR; at a wrap, do what the firmware's SysTick interrupt does
            self.cvr -= self.STEP
            if self.cvr < 0:
                self.cvr += 1 << 24
                (wraps,) = struct.unpack("<I", self.uc.mem_read(self.wraps_at, 4))
                self.uc.mem_write(self.wraps_at, struct.pack("<I", wraps + 1))
            return self.cvr
        if 0xE0001000 <= addr < 0xE0002000 or addr == 0xE000EDFC:
            self.dwt_touched = True
            if addr == 0xE0001004 and not self.rp2040 and self.regs.get(0xE0001000, 0) & 1:
                self.cyccnt = (self.cyccnt + self.STEP) & 0xFFFFFFFF
                return self.cyccnt
        if addr == 0xE000ED00:
            return int(self.c["cpuid"])
        return self.regs.get(addr, 0)

    def _ppb_write(self, uc: object, offset: int, size: int, value: int, _: object) -> None:
        addr = 0xE0000000 + offset
        if 0xE0001000 <= addr < 0xE0002000 or addr == 0xE000EDFC:
            self.dwt_touched = True
        self.regs[addr] = value

    def run(self, instructions: int) -> None:
        self.uc.emu_start(self.pc, 0xFFFFFFFF, count=instructions)
        self.pc = self.uc.reg_read(self._pc_reg) | 1


class _StubPort:
    """The protocol client's Port, on the stub's UART0."""

    def __init__(self, stub: _RegisterStub) -> None:
        self.stub = stub

    def write(self, data: bytes) -> None:
        self.stub.rx.extend(data)

    def read(self, timeout: float) -> bytes:
        for _ in range(200):
            self.stub.run(200_000)
            if self.stub.tx:
                out = bytes(self.stub.tx)
                self.stub.tx.clear()
                return out
        return b""

    def close(self) -> None:
        pass


@needs_toolchain
@pytest.mark.slow
@pytest.mark.parametrize("target", ["rp2040", "rp2350"])
def test_boots_under_a_register_stub_and_matches_tflm(builds: dict[str, FirmwareBuild], mnist_cache: Path,
                                                      target: str) -> None:
    from edge_digits.firmware import device

    stub = _RegisterStub(target, builds[target])
    client = device.DeviceClient(_StubPort(stub), timeout=60, retries=0)
    result = device.validate(client, bundled_model("micro"), 20, "register stub", mnist_cache, None)
    assert result.count == 20 and result.agreement == 1.0 and not result.device_errors
    info = result.info
    assert info["board"] == builds[target].board and info["kernels"] == builds[target].kernels
    assert info["cycle_source"] == ("SysTick" if target == "rp2040" else "DWT")
    assert info["clock_hz"] == (125_000_000 if target == "rp2040" else 150_000_000)
    assert stub.dwt_touched == (target == "rp2350"), "the M0+ has no DWT cycle counter: never touched"
    r, c = stub.regs, stub.c
    if target == "rp2040":  # what boot2 left in the SSI, and where it pointed VTOR
        assert r[0xE000ED08] == 0x10000100
        assert (r[0x18000000], r[0x180000F4], r[0x18000014], r[0x18000008]) == (0x001F0300, 0x03000218, 4, 1)
    assert r.get(c["clocks"] + 0x3C) == 1 and r.get(c["clocks"] + 0x48) == 0x800  # clk_sys on PLL, clk_peri on
    assert (r[c["uart"] + 0x24], r[c["uart"] + 0x28]) == ((67, 52) if target == "rp2040" else (81, 24))
    assert (r[c["io"] + 4], r[c["io"] + 12]) == (2, 2)  # GPIO0/1: UART
