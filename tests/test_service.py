"""The unattended Pi service: the systemd unit `service-unit` writes, and a soak run of the reading loop
with camera failures, broken frames, SIGHUP and SIGTERM (tools/soak.py, shorter than the recorded one)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge_digits.cli import main
from edge_digits.deploy.service import ServiceError, make_unit

TOOLS = Path(__file__).resolve().parents[1] / "tools"


def test_the_unit_restarts_on_failure_and_counts_sigterm_as_a_clean_stop(tmp_path: Path) -> None:
    out = tmp_path / "edge-digits.service"
    result = CliRunner().invoke(main, ["service-unit", "--user", "root", "--out", str(out), "--",
                                       "--camera", "usb:0", "--rotate", "90"])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    lines = {line.split("=", 1)[0]: line.split("=", 1)[1] for line in text.splitlines() if "=" in line
             and not line.startswith("#")}
    assert lines["ExecStart"].endswith("edge-digits run --camera usb:0 --rotate 90")
    assert Path(lines["ExecStart"].split()[0]).is_file()
    assert lines["Restart"] == "on-failure" and lines["SuccessExitStatus"] == "143"
    assert lines["ExecReload"] == "/bin/kill -HUP $MAINPID" and lines["StandardOutput"] == "journal"
    if shutil.which("systemd-analyze"):
        check = subprocess.run(["systemd-analyze", "verify", str(out)], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
    default = make_unit(user="pi", executable="/usr/bin/edge-digits").text()
    assert "--quiet --log /var/log/edge-digits/readings.jsonl --log-every change --log-rotate daily" in default
    for bad in ("--show", "--max-frames"):
        with pytest.raises(ServiceError, match=bad):
            make_unit((bad,), executable="/usr/bin/edge-digits")


@pytest.mark.slow
def test_soak_keeps_memory_files_and_disk_bounded_and_loses_no_frame(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("soak", TOOLS / "soak.py")
    assert spec is not None and spec.loader is not None
    soak = importlib.util.module_from_spec(spec)
    sys.modules["soak"] = soak   # its dataclasses look their module up
    spec.loader.exec_module(soak)
    r = soak.soak(2500, tmp_path, fail_every=400, broken_every=700, hup_every=900, log_rotate=96 * 1024,
                  log_keep=2, sample_every=250)
    assert r.frames_read == 2500 and r.stopped_by == "SIGTERM"
    assert r.camera_failures_seen == r.camera_failures_injected >= 6
    assert r.frames_skipped == r.broken_frames_injected >= 3 and r.sighups == 2
    assert r.rss_max - r.rss_after_warmup < 40 * 1024 * 1024
    assert r.files_end <= r.files_start + 1 and r.files_max <= r.files_start + 2
    assert r.log_rotations >= 4 and r.disk_max <= r.disk_limit
    assert r.rows_consecutive and r.rows_kept < 2500   # the oldest rows rotated away, none lost in between


def test_quiet_prints_a_line_only_when_the_settled_reading_changes() -> None:
    loud = CliRunner().invoke(main, ["run", "--max-frames", "60"])
    quiet = CliRunner().invoke(main, ["run", "--max-frames", "60", "--quiet"])
    assert loud.exit_code == quiet.exit_code == 0
    frames = [line for line in quiet.stdout.splitlines() if line.startswith("frame ")]
    assert len([line for line in loud.stdout.splitlines() if line.startswith("frame ")]) == 60
    assert 2 <= len(frames) <= 12
    shown = [line.split(":", 1)[1].split("[")[0].strip() for line in frames]
    assert all(a != b for a, b in zip(shown, shown[1:]))
