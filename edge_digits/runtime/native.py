"""The ``native`` backend: the C engine that ``edge_digits.engine`` generates, built for this machine.

On first use of a model the engine is generated from the model's bytes,
built with the system C compiler (``$CC``, else ``cc``) into a shared library
together with ``csrc/ed_batch.c`` (a batch entry point that checks every
buffer length), and loaded with ctypes. The library is bit-exact with TFLM's
reference kernels and needs no TFLite wheel, so this backend runs where
ai-edge-litert has no wheel (32-bit Raspberry Pi OS, a Pi Zero).

The cache: ``$EDGE_DIGITS_CACHE/native/<key>/`` (default: the user cache
folder of edge-digits), one folder per key, the SHA-256 of the model bytes,
the compiler's identity (``-dumpmachine``, first line of ``--version``), the
flags and the engine's own sources (generator and kernels), so a new
compiler, flag or engine version builds anew. A build happens in a hidden
temp folder renamed into place when complete, and ``build.json`` records the
library's SHA-256, checked before every load: a crash mid-build, or a damaged
entry, is never loaded (the entry is built again).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge_digits import __version__
from edge_digits.fileio import atomic_write_json
from edge_digits.runtime import compiler
from edge_digits.runtime.base import InferenceError, TensorQuant

# Integer arithmetic gives the same bits at any optimisation level and on every instruction path.
# No -march=native: the instruction-set flags come from isa_flags (the dot-product instructions the
# CPU reports), and they are part of the cache key, so another CPU that shares the cache (a copied SD
# card, an NFS home) builds its own library instead of loading one it cannot run.
FLAGS = ("-std=c99", "-O3", "-fPIC", "-shared")
CPUINFO = Path("/proc/cpuinfo")
# x86-64 needs all four for ed_conv_dot.c's VPDPBUSD path (512-bit registers, byte masks, 128-bit stores)
_X86_VNNI = {"avx512f": "-mavx512f", "avx512bw": "-mavx512bw", "avx512vl": "-mavx512vl",
             "avx512_vnni": "-mavx512vnni"}
LIBRARY = "libedengine.so"
BUILD_JSON = "build.json"
BATCH_C = Path(__file__).resolve().parent / "csrc" / "ed_batch.c"
CACHE_ENV = "EDGE_DIGITS_CACHE"
STALE_BUILD_S = 3600.0       # a temp build folder older than this was left by a crash: removed
COMPILE_TIMEOUT_S = 900.0    # a large model on a Pi Zero takes a while
_FORMAT = 1                  # of a cache entry; bump when its layout changes

builds = 0   # libraries compiled by this process (the tests read it: a cache hit compiles nothing)


@dataclass(frozen=True)
class NativeBuild:
    """What a cache entry holds, as its ``build.json`` says."""

    key: str
    model_sha256: str
    compiler: str
    compiler_version: str
    machine: str
    flags: list[str]
    library_sha256: str
    input_size: int
    output_size: int
    scratch_bytes: int
    edge_digits_version: str
    build_seconds: float


def cpu_features(cpuinfo: str) -> set[str]:
    """The feature words of ``/proc/cpuinfo`` text: x86's ``flags`` lines, Arm's ``Features`` lines.

    >>> sorted(cpu_features("processor : 0\\nFeatures : fp asimd asimddp\\n"))
    ['asimd', 'asimddp', 'fp']
    """
    words: set[str] = set()
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("flags", "features"):
            words.update(value.split())
    return words


def isa_flags(machine: str, features: set[str]) -> tuple[str, ...]:
    """Compiler flags for the dot-product path this CPU runs (see ``ed_conv_dot.c``), from its target triple
    and cpuinfo features: AVX-512 VNNI on x86-64, SDOT (``asimddp``: Pi 5's Cortex-A76) on aarch64, NEON
    on 32-bit Arm; none where the CPU has none of these (the kernel's portable C path).

    >>> isa_flags("aarch64-linux-gnu", {"fp", "asimd", "asimddp"}), isa_flags("aarch64-linux-gnu", {"asimd"})
    (('-march=armv8.2-a+dotprod',), ())
    >>> isa_flags("arm-linux-gnueabihf", {"neon", "vfpv4"})
    ('-mfpu=neon',)
    """
    arch = machine.split("-")[0]
    if arch in ("x86_64", "amd64") and set(_X86_VNNI) <= features:
        return tuple(_X86_VNNI.values())
    if arch == "aarch64" and "asimddp" in features:
        return ("-march=armv8.2-a+dotprod",)
    if arch.startswith("arm") and "neon" in features and machine.endswith("hf"):
        return ("-mfpu=neon",)
    return ()


def host_flags(machine: str, cpuinfo: Path = CPUINFO) -> tuple[str, ...]:
    """:data:`FLAGS` plus the instruction-set flags of this CPU (none if its cpuinfo cannot be read)."""
    try:
        features = cpu_features(cpuinfo.read_text(errors="replace"))
    except OSError:
        features = set()
    return (*FLAGS, *isa_flags(machine, features))


def cache_root() -> Path:
    """``$EDGE_DIGITS_CACHE/native``, else ``native`` in the user cache folder of edge-digits."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env) / "native"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("edge-digits")) / "native"


@functools.lru_cache(maxsize=1)
def sources_sha256() -> str:
    """One digest of what the engine is made from: the generator's modules, the kernels, the batch entry."""
    from edge_digits.engine import generate as gen

    package = Path(gen.__file__).resolve().parent
    files = sorted(package.glob("*.py")) + sorted(p for p in gen.KERNEL_DIR.iterdir() if p.suffix in (".c", ".h"))
    digest = hashlib.sha256()
    for f in [*files, BATCH_C]:
        digest.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()


def cache_key(model_sha256: str, cc: compiler.CompilerId, flags: Sequence[str]) -> str:
    """The cache folder's name for a model built by a compiler with flags (and this engine's sources)."""
    facts = {"format": _FORMAT, "model": model_sha256, "machine": cc.machine, "compiler": cc.version,
             "flags": list(flags), "sources": sources_sha256()}
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:32]


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_entry(folder: Path, key: str) -> NativeBuild | None:
    """The entry in ``folder`` if it is complete and intact (its library has the recorded digest), else None."""
    try:
        facts = json.loads((folder / BUILD_JSON).read_text())
        build = NativeBuild(**facts)
        if build.key != key or _file_sha256(folder / LIBRARY) != build.library_sha256:
            return None
    except (OSError, ValueError, TypeError):
        return None
    return build


def _remove_stale_builds(root: Path, keep: Path) -> None:
    """Remove the temp folders that crashed builds and replacements left (older than ``STALE_BUILD_S``)."""
    now = time.time()
    for tmp in [*root.glob(".build-*"), *root.glob(".old-*")]:
        try:
            if tmp != keep and now - tmp.stat().st_mtime > STALE_BUILD_S:
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            pass


def _compile(model: bytes, name: str, cmd: list[str], cc: compiler.CompilerId, flags: Sequence[str], key: str,
             work: Path) -> NativeBuild:
    """Generate the engine into ``work/src`` and build ``work/LIBRARY``; ``build.json`` is written last."""
    from edge_digits.engine.generate import generate
    from edge_digits.engine.graph import UnsupportedModelError

    global builds
    start = time.perf_counter()
    model_file = work / name
    model_file.write_bytes(model)
    try:
        result = generate(model_file, work / "src", dot=True)
    except UnsupportedModelError as exc:
        raise InferenceError(f"the native engine cannot run {name}: {exc}") from exc
    except ImportError as exc:   # the tflite schema package, a dependency of edge-digits
        raise InferenceError(f"generating the native engine needs the tflite schema package: {exc}") from exc
    finally:
        model_file.unlink(missing_ok=True)
    src = work / "src"
    shutil.copyfile(BATCH_C, src / BATCH_C.name)
    sources = sorted(str(p) for p in src.glob("*.c"))
    argv = [*cmd, *flags, "-I", str(src), *sources, "-o", str(work / LIBRARY)]
    builds += 1
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InferenceError(f"building the native engine for {name} failed: {exc}") from exc
    if proc.returncode != 0 or not (work / LIBRARY).is_file():
        raise InferenceError(f"building the native engine for {name} failed ({' '.join(cmd)} exit "
                             f"{proc.returncode}): {(proc.stderr or proc.stdout).strip()[-1500:]}")
    build = NativeBuild(key, result.model_sha256, " ".join(cc.command), cc.version, cc.machine, list(flags),
                        _file_sha256(work / LIBRARY), result.input_size, result.output_size, result.scratch_bytes,
                        __version__, round(time.perf_counter() - start, 3))
    atomic_write_json(work / BUILD_JSON, asdict(build))
    return build


def _install(work: Path, entry: Path) -> None:
    """Rename the finished build folder to ``entry``, moving a damaged entry there out of the way first.

    Another process may install the same key meanwhile: then its intact entry stays and ours is dropped.
    """
    for attempt in range(5):
        try:
            os.rename(work, entry)
            return
        except OSError:
            if read_entry(entry, entry.name) is not None:
                shutil.rmtree(work, ignore_errors=True)
                return
        old = entry.with_name(f".old-{entry.name}-{os.getpid()}-{threading.get_ident()}-{attempt}")
        try:
            os.rename(entry, old)
        except FileNotFoundError:   # another process moved it first
            continue
        shutil.rmtree(old, ignore_errors=True)
    raise InferenceError(f"cannot install the native engine into {entry}: it keeps changing under us")


def ensure_library(model: bytes, name: str = "model.tflite", flags: Sequence[str] | None = None,
                   root: Path | None = None) -> tuple[Path, NativeBuild]:
    """The folder of the built engine for ``model`` (built now unless the cache has it) and its facts.
    ``flags`` default to :func:`host_flags` for the compiler's target.

    Raises :class:`InferenceError` when there is no compiler, the engine cannot run the model (the
    generator's message), or the build fails.
    """
    try:
        cmd = compiler.require()
        cc = compiler.identify(cmd)
    except compiler.CompilerError as exc:
        raise InferenceError(str(exc)) from exc
    flags = tuple(flags) if flags is not None else host_flags(cc.machine)
    root = root if root is not None else cache_root()
    key = cache_key(hashlib.sha256(model).hexdigest(), cc, flags)
    entry = root / key
    found = read_entry(entry, key)
    if found is not None:
        return entry, found
    try:
        root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
    except OSError as exc:
        raise InferenceError(f"cannot write the native engine cache {root}: {exc.strerror or exc}; set "
                             f"${CACHE_ENV} to a writable folder") from exc
    _remove_stale_builds(root, keep=work)
    try:
        _compile(model, name, cmd, cc, flags, key, work)
        _install(work, entry)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    found = read_entry(entry, key)
    if found is None:
        raise InferenceError(f"the native engine built into {entry} does not read back intact")
    return entry, found


_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _library_lock(library: Path) -> threading.Lock:
    """One lock per loaded library: ctypes loads a path once per process, so sessions share its scratch."""
    with _locks_guard:
        return _locks.setdefault(str(library), threading.Lock())


def _dot_path(lib: ctypes.CDLL) -> str:
    """The instructions the library's convolutions run on, as ``ed_conv_dot_path`` says ("scalar" for
    an engine without the dot-product kernel)."""
    try:
        fn = lib.ed_conv_dot_path
    except AttributeError:
        return "scalar"
    fn.restype = ctypes.c_char_p
    return str(fn().decode("ascii"))


class NativeSession:
    """A model in the generated C engine, called through ctypes: ``run`` maps int8 (N, 28, 28, 1) to (N, classes).

    ``threads`` is accepted and ignored: the engine keeps its activations in
    one static buffer, so a library runs one image at a time (calls from
    several Python threads are serialized by a lock; ctypes releases the GIL
    while the C code runs, so other Python threads go on meanwhile).
    """

    def __init__(self, path: Path, threads: int = 1, flags: Sequence[str] | None = None,
                 root: Path | None = None) -> None:
        from edge_digits.flatbuffer import ModelFileError, summarize_model

        path = Path(path)
        data = path.read_bytes()
        try:
            summary = summarize_model(data)
        except ModelFileError as exc:
            raise InferenceError(f"the native engine cannot run {path.name}: {exc}") from exc
        self.folder, self.build = ensure_library(data, path.name, flags, root)
        inp, out = summary.inputs[0], summary.outputs[0]
        self.input = TensorQuant(np.dtype(inp.dtype), inp.scale, inp.zero_point)
        self.output = TensorQuant(np.dtype(out.dtype), out.scale, out.zero_point)
        self.input_shape = tuple(int(d) for d in inp.shape)
        self.output_shape = tuple(int(d) for d in out.shape)
        self.dynamic_batch = True
        self.resize_free = True   # any batch runs as it comes: padding it to a bucket size would only add work
        self.threads = threads
        library = self.folder / LIBRARY
        try:
            self._lib = ctypes.CDLL(str(library))
        except OSError as exc:
            raise InferenceError(f"cannot load the native engine {library}: {exc}") from exc
        self.path = _dot_path(self._lib)
        opt = next((f for f in self.build.flags if f.startswith("-O")), "")
        self.delegate = f"native C engine ({compiler.describe(self.build.compiler_version)}, {opt}, {self.path})"
        self._lib.ed_batch_input_size.restype = ctypes.c_int32
        self._lib.ed_batch_output_size.restype = ctypes.c_int32
        self._invoke = self._lib.ed_invoke_batch
        self._invoke.restype = ctypes.c_int
        self._invoke.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t,
                                 ctypes.c_size_t]
        self._in_size = int(self._lib.ed_batch_input_size())
        self._out_size = int(self._lib.ed_batch_output_size())
        expect_in = int(np.prod(self.input_shape[1:], dtype=np.int64))
        expect_out = int(np.prod(self.output_shape[1:], dtype=np.int64))
        if (self._in_size, self._out_size) != (expect_in, expect_out):
            raise InferenceError(f"the native engine {library} takes {self._in_size} values and gives "
                                 f"{self._out_size}; {path.name} has {expect_in} and {expect_out}")
        self._lock = _library_lock(library)

    def run(self, x: np.ndarray) -> np.ndarray:
        """Raw int8 outputs (N, classes) for raw int8 inputs (N, ...) of the model's per-image size."""
        if x.dtype != np.int8 or x.ndim == 0:
            raise InferenceError(f"the native engine takes a batch of int8 images, not {x.dtype} {x.shape}")
        n = len(x)
        out = np.empty((n, self._out_size), np.int8)
        if n == 0:
            return out
        flat = np.ascontiguousarray(x).reshape(n, -1)
        if flat.shape[1] != self._in_size:
            raise InferenceError(f"the native engine takes {self._in_size} values per image, not {flat.shape[1]}")
        with self._lock:
            rc = self._invoke(flat.ctypes.data, flat.nbytes, out.ctypes.data, out.nbytes, n)
        if rc != 0:
            raise InferenceError(f"the native engine failed on a batch of {n} (ed_invoke_batch returned {rc})")
        return out


def open_model(path: Path, threads: int) -> NativeSession:
    """``Backend.open`` of the native backend (see :class:`NativeSession` about ``threads``)."""
    return NativeSession(path, threads)
