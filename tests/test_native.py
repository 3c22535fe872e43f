"""The ``native`` backend: the generated C engine built with the system compiler and called through ctypes.

Bit-exact with TFLM's reference kernels (the ``tflite_micro`` runtime, never
the engine, gives the golden outputs), through the registry, the cache (reused,
keyed, never loading a half-built entry), the errors, and the CLI commands
that take ``--backend native``. Every test builds into its own cache folder
(``$EDGE_DIGITS_CACHE``), never the user's.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edge_digits import int8
from edge_digits.cli import main
from edge_digits.models import bundled_model
from edge_digits.runtime import Classifier, InferenceError, available_backends, compiler, native, resolve_backend
from edge_digits.runtime.base import TensorQuant

pytest.importorskip("tflite")
REPO = Path(__file__).resolve().parents[1]
HAVE_CC = compiler.available()
needs_cc = pytest.mark.skipif(not HAVE_CC, reason="no C compiler on PATH ($CC or cc)")


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the tests that only use the backend, so each model is built once per module."""
    return tmp_path_factory.mktemp("native-cache")


@pytest.fixture(autouse=True)
def _cache_env(shared_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(native.CACHE_ENV, str(shared_cache))


def native_classifier(name: str) -> Classifier:
    return Classifier(bundled_model(name), backend="native")


def entries(root: Path) -> list[Path]:
    """The complete cache entries under a cache root (hidden temp folders left out)."""
    folder = root / "native"
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []


# --- the registry ------------------------------------------------------------------------------------


@needs_cc
def test_registry_offers_native_where_a_compiler_is_and_auto_still_prefers_tflite(monkeypatch) -> None:
    assert "native" in available_backends()
    if "litert" in available_backends():
        assert resolve_backend("auto") == "litert"
    monkeypatch.setenv("CC", "/nonexistent/bin/cc")
    assert "native" not in available_backends()
    assert not compiler.available()


def test_registry_and_help_stay_free_of_numpy() -> None:
    code = textwrap.dedent("""
        import sys
        from click.testing import CliRunner
        from edge_digits.cli import main
        from edge_digits.runtime import available_backends
        available_backends()
        for cmd in (["eval"], ["run"], ["eval-photos"], ["bench"], ["serve"]):
            result = CliRunner().invoke(main, [*cmd, "--help"])
            assert result.exit_code == 0, result.output
            assert "native" in result.output, cmd
        print("numpy" in sys.modules)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


# --- bit-exact with TFLM -------------------------------------------------------------------------------


def _check_against_tflm(name: str, images: np.ndarray, tflm_golden) -> tuple[np.ndarray, np.ndarray]:
    pytest.importorskip("tflite_micro")
    clf = native_classifier(name)
    raw = np.concatenate([clf.predict_raw(images[i:i + 1000]) for i in range(0, len(images), 1000)])
    golden = tflm_golden(bundled_model(name), clf.quantize(images))
    assert raw.dtype == np.int8 and raw.shape == golden.shape
    return raw, golden


@needs_cc
def test_seed_cnn_matches_tflm_on_200_images(mnist, tflm_golden) -> None:
    raw, golden = _check_against_tflm("seed-cnn", mnist[2][:200], tflm_golden)
    assert np.array_equal(raw, golden)


@needs_cc
@pytest.mark.slow
@pytest.mark.parametrize("name", ["micro", "standard"])
def test_bundled_model_matches_tflm_on_all_test_images(name: str, mnist, tflm_golden) -> None:
    raw, golden = _check_against_tflm(name, mnist[2], tflm_golden)
    assert len(raw) == 10_000
    mismatched = int(np.any(raw != golden, axis=1).sum())
    assert mismatched == 0, f"{mismatched} of 10000 images differ from TFLM"
    assert (raw.argmax(1) == mnist[3]).mean() > 0.99


@needs_cc
@pytest.mark.slow
def test_the_portable_path_matches_tflm_on_all_test_images(mnist, tflm_golden, tmp_path: Path) -> None:
    """Without instruction-set flags the dot-product kernel runs its plain C loops: bit-exact too (the
    SIMD paths are checked where they run: here by the test above, on ARM by test_native_arm.py)."""
    path = bundled_model("micro")
    session = native.NativeSession(path, flags=native.FLAGS, root=tmp_path)
    assert session.path == "scalar"
    x = int8.quantize_images(mnist[2], session.input.scale, session.input.zero_point)[..., None]
    raw = session.run(x)
    golden = tflm_golden(path, x[..., 0])
    assert int(np.any(raw != golden, axis=1).sum()) == 0


def test_isa_flags_follow_the_cpu_that_builds(tmp_path: Path) -> None:
    zen4 = tmp_path / "cpuinfo-x86"
    zen4.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw avx512vl avx512_vnni\n\n"
                    "processor\t: 1\nflags\t\t: fpu sse2 avx2 avx512f avx512bw avx512vl avx512_vnni\n")
    assert native.host_flags("x86_64-linux-gnu", zen4) == (*native.FLAGS, "-mavx512f", "-mavx512bw", "-mavx512vl",
                                                            "-mavx512vnni")
    avx2 = tmp_path / "cpuinfo-avx2"
    avx2.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n")
    assert native.host_flags("x86_64-linux-gnu", avx2) == native.FLAGS
    pi4 = tmp_path / "cpuinfo-pi4"
    pi4.write_text("processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n"
                   "CPU part\t: 0xd08\n")
    pi5 = tmp_path / "cpuinfo-pi5"
    pi5.write_text("processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp "
                   "cpuid asimdrdm lrcpc dcpop asimddp\nCPU part\t: 0xd0b\n")
    assert native.host_flags("aarch64-linux-gnu", pi4) == native.FLAGS
    assert native.host_flags("aarch64-linux-gnu", pi5) == (*native.FLAGS, "-march=armv8.2-a+dotprod")
    assert native.host_flags("aarch64-linux-gnu", tmp_path / "missing") == native.FLAGS


@needs_cc
def test_every_dot_path_compiles_without_warnings(tmp_path: Path) -> None:
    """The kernel's SIMD paths are compiled (not run) here for each target this compiler can emit."""
    from edge_digits.engine.generate import generate

    gen = generate(bundled_model("micro"), tmp_path / "gen", dot=True)
    strict = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", "-c"]
    cc = compiler.require()
    if not compiler.identify(cc).machine.startswith("x86_64"):
        pytest.skip("the x86 paths are checked on x86-64 hosts")
    for isa in ([], ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512vnni"]):
        proc = subprocess.run([*cc, *strict, *isa, "-I", gen.out_dir, str(Path(gen.out_dir) / "ed_conv_dot.c"),
                               "-o", str(tmp_path / "dot.o")], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


# --- the session ---------------------------------------------------------------------------------------


@needs_cc
def test_session_follows_the_protocol(mnist) -> None:
    from edge_digits.runtime.interpreter import InterpreterSession

    pytest.importorskip("ai_edge_litert")
    path = bundled_model("micro")
    session = native.open_model(path, 1)
    reference = InterpreterSession("litert", path, 1, default_delegates=False)
    assert session.input == reference.input and session.output == reference.output
    assert session.input == TensorQuant(np.dtype(np.int8), session.input.scale, session.input.zero_point)
    assert session.input_shape == (1, 28, 28, 1) and session.output_shape == (1, 10)
    assert session.dynamic_batch is True
    assert re.fullmatch(r"native C engine \((gcc|clang) [\d.]+, -O3, (avx512-vnni|neon-dotprod|neon|scalar)\)",
                        session.delegate), session.delegate
    assert session.path == ("avx512-vnni" if "-mavx512vnni" in session.build.flags else
                            "neon-dotprod" if "-march=armv8.2-a+dotprod" in session.build.flags else session.path)
    x = int8.quantize_images(mnist[2][:64], session.input.scale, session.input.zero_point)[..., None]
    batch = session.run(x)
    assert np.array_equal(batch, reference.run(x))   # TFLite's builtin kernels are TFLM's arithmetic too
    assert np.array_equal(np.concatenate([session.run(x[i:i + 1]) for i in range(64)]), batch)
    assert np.array_equal(session.run(np.asfortranarray(x[::2])), batch[::2])   # strided input is copied
    assert session.run(x[:0]).shape == (0, 10)
    with pytest.raises(InferenceError, match="int8"):
        session.run(x.astype(np.float32))
    with pytest.raises(InferenceError, match="784 values per image"):
        session.run(x[:, :14])


@needs_cc
def test_sessions_of_one_library_run_safely_from_many_threads(mnist) -> None:
    """ctypes loads a library once per process, so every session of a model shares the engine's static scratch."""
    first, second = native_classifier("micro"), native_classifier("micro")
    images = mnist[2][:200]
    expected = first.predict_raw(images)
    results: list[bool] = []

    def work(clf: Classifier) -> None:
        for start in range(0, 200, 25):
            results.append(np.array_equal(clf.predict_raw(images[start:start + 25]), expected[start:start + 25]))

    threads = [threading.Thread(target=work, args=(c,)) for c in (first, second, first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 32 and all(results)


@needs_cc
def test_the_batch_entry_checks_every_length() -> None:
    """``ed_invoke_batch`` reads and writes nothing unless both buffers hold exactly n images."""
    import ctypes

    session = native.open_model(bundled_model("micro"), 1)
    call = session._invoke
    x = np.zeros((3, 784), np.int8)
    out = np.full((3, 10), 7, np.int8)
    ptr_x, ptr_out = x.ctypes.data, out.ctypes.data
    assert call(ptr_x, 3 * 784, ptr_out, 3 * 10, 3) == 0 and not (out == 7).any()
    out[:] = 7
    for args in ((ptr_x, 3 * 784 - 1, ptr_out, 30, 3), (ptr_x, 3 * 784, ptr_out, 29, 3),
                 (ptr_x, 3 * 784, ptr_out, 40, 3), (ptr_x, 2 * 784, ptr_out, 20, 3),
                 (ptr_x, 0, ptr_out, 0, 2 ** (8 * ctypes.sizeof(ctypes.c_size_t)) // 784 + 1)):
        assert call(*args) == -2, args
    assert call(None, 3 * 784, ptr_out, 30, 3) == -1 and call(ptr_x, 3 * 784, None, 30, 3) == -1
    assert call(None, 0, None, 0, 0) == 0
    assert (out == 7).all()   # nothing was written by a refused call


# --- the cache -----------------------------------------------------------------------------------------


@needs_cc
def test_second_open_reuses_the_library_in_this_process_and_the_next(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(native.CACHE_ENV, str(tmp_path))
    before = native.builds
    first = native.open_model(bundled_model("micro"), 1)
    assert native.builds == before + 1
    library = first.folder / native.LIBRARY
    stamp = (library.stat().st_ino, library.stat().st_mtime_ns)
    second = native.open_model(bundled_model("micro"), 1)
    assert native.builds == before + 1 and second.folder == first.folder
    assert (library.stat().st_ino, library.stat().st_mtime_ns) == stamp
    code = ("from pathlib import Path; from edge_digits.runtime import native; from edge_digits.models import "
            "bundled_model; s = native.open_model(bundled_model('micro'), 1); print(native.builds, s.folder)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0", str(first.folder)]
    assert (library.stat().st_ino, library.stat().st_mtime_ns) == stamp
    assert entries(tmp_path) == [first.folder]
    assert first.folder.parent == tmp_path / "native"
    facts = json.loads((first.folder / native.BUILD_JSON).read_text())
    assert facts["model_sha256"] == hashlib.sha256(bundled_model("micro").read_bytes()).hexdigest()
    assert facts["flags"] == list(native.host_flags(compiler.identify().machine))


@needs_cc
def test_processes_building_one_model_at_once_leave_one_intact_entry(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(native.CACHE_ENV, str(tmp_path))
    code = ("from edge_digits.runtime import native; from edge_digits.models import bundled_model; "
            "import numpy as np; s = native.open_model(bundled_model('micro'), 1); "
            "print(native.builds, s.run(np.zeros((1, 28, 28, 1), np.int8)).tolist())")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=REPO) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    assert len({out.split(" ", 1)[1] for out, _ in outs}) == 1   # the same scores from every process
    assert len(entries(tmp_path)) == 1 and list((tmp_path / "native").iterdir()) == entries(tmp_path)
    assert native.read_entry(entries(tmp_path)[0], entries(tmp_path)[0].name) is not None


@needs_cc
def test_the_key_follows_model_compiler_and_flags(tmp_path: Path, monkeypatch) -> None:
    cc = compiler.identify()
    sha = "ab" * 32
    key = native.cache_key(sha, cc, native.FLAGS)
    assert key == native.cache_key(sha, cc, list(native.FLAGS))
    others = {
        native.cache_key("cd" * 32, cc, native.FLAGS),
        native.cache_key(sha, cc, ("-std=c99", "-O2", "-fPIC", "-shared")),
        native.cache_key(sha, compiler.CompilerId(cc.command, cc.machine, cc.version + " (patched)"), native.FLAGS),
        native.cache_key(sha, compiler.CompilerId(cc.command, "aarch64-linux-gnu", cc.version), native.FLAGS),
    }
    assert key not in others and len(others) == 4
    monkeypatch.setenv(native.CACHE_ENV, str(tmp_path))
    o3 = native.NativeSession(bundled_model("micro"))
    strict = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", "-fPIC", "-shared")
    o2 = native.NativeSession(bundled_model("micro"), flags=strict)   # the batch entry is warning-free too
    other_model = native.NativeSession(bundled_model("seed-cnn"))
    assert len({o3.folder, o2.folder, other_model.folder}) == 3
    assert entries(tmp_path) == sorted([o3.folder, o2.folder, other_model.folder])
    assert o2.delegate.endswith(", -O2, scalar)")


@needs_cc
def test_a_build_that_dies_halfway_is_never_loaded(tmp_path: Path, monkeypatch) -> None:
    real_cc = compiler.find()
    assert real_cc is not None
    wrapper = tmp_path / "cc-that-dies"
    # the real compiler's answers to -dumpmachine and --version (so the key is the real compiler's); a build
    # writes half a library and the process that asked for it dies, as in a power cut
    wrapper.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        case "$1" in -dumpmachine|--version) exec {real_cc[0]} "$@";; esac
        out=""
        while [ $# -gt 0 ]; do [ "$1" = "-o" ] && out="$2"; shift; done
        head -c 1000 /dev/urandom > "$out"
        kill -9 $PPID
        """))
    wrapper.chmod(0o755)
    cache = tmp_path / "cache"
    monkeypatch.setenv(native.CACHE_ENV, str(cache))
    code = ("from edge_digits.runtime import native; from edge_digits.models import bundled_model; "
            "native.open_model(bundled_model('micro'), 1)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env=dict(os.environ, CC=str(wrapper)))
    assert proc.returncode == -9, (proc.returncode, proc.stderr)
    left = list((cache / "native").iterdir())
    assert left and all(p.name.startswith(".build-") for p in left)   # only the dead build's temp folder
    assert any(p.stat().st_size == 1000 for p in left[0].rglob(native.LIBRARY))
    session = native.open_model(bundled_model("micro"), 1)   # the real compiler: built anew, loaded intact
    assert session.folder.name == native.cache_key(
        hashlib.sha256(bundled_model("micro").read_bytes()).hexdigest(), compiler.identify(),
        native.host_flags(compiler.identify().machine))
    assert native.read_entry(session.folder, session.folder.name) is not None
    assert session.run(np.zeros((2, 28, 28, 1), np.int8)).shape == (2, 10)


@needs_cc
def test_a_damaged_entry_is_built_again_and_stale_temp_folders_go(tmp_path: Path, monkeypatch, mnist) -> None:
    reference = native.open_model(bundled_model("micro"), 1)   # from the module's cache
    x = int8.quantize_images(mnist[2][:20], reference.input.scale, reference.input.zero_point)[..., None]
    expected = reference.run(x)
    monkeypatch.setenv(native.CACHE_ENV, str(tmp_path))
    folder, _ = native.ensure_library(bundled_model("micro").read_bytes(), "micro_int8.tflite")   # not loaded
    library = folder / native.LIBRARY
    library.write_bytes(library.read_bytes()[:4096])   # truncated, as by a full disk or a bad copy
    stale = tmp_path / "native" / ".build-old"
    stale.mkdir()
    old = time.time() - native.STALE_BUILD_S - 60
    os.utime(stale, (old, old))
    fresh = tmp_path / "native" / ".build-running"
    fresh.mkdir()
    before = native.builds
    again = native.open_model(bundled_model("micro"), 1)
    assert native.builds == before + 1 and again.folder == folder
    assert native.read_entry(folder, folder.name) is not None
    assert not stale.exists() and fresh.exists()   # a build still under way elsewhere is left alone
    (folder / native.BUILD_JSON).unlink()          # an entry without its record is not trusted either
    assert native.read_entry(folder, folder.name) is None
    native.open_model(bundled_model("micro"), 1)
    assert native.builds == before + 2
    assert np.array_equal(native.open_model(bundled_model("micro"), 1).run(x), expected)


# --- errors --------------------------------------------------------------------------------------------


def test_no_compiler_is_a_clear_error(monkeypatch, mnist_cache: Path) -> None:
    monkeypatch.setenv("CC", "/nonexistent/bin/cc")
    with pytest.raises(InferenceError, match=r"no C compiler '/nonexistent/bin/cc' on PATH: install one "
                                             r"\(apt install gcc\)"):
        native_classifier("micro")
    result = CliRunner().invoke(main, ["eval", "micro", "--backend", "native", "--limit", "10",
                                       "--cache-dir", str(mnist_cache)])
    assert result.exit_code == 1 and "apt install gcc" in result.output and "Traceback" not in result.output


def _with_op_renamed(model: bytes, old: int, new: int) -> bytes:
    """The flatbuffer with every use of builtin op ``old`` turned into ``new`` (same options table layout)."""
    import struct

    import tflite

    data = bytearray(model)
    root = tflite.Model.GetRootAsModel(data, 0)
    for i in range(root.OperatorCodesLength()):
        code = root.OperatorCodes(i)
        if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) != old:
            continue
        tab = code._tab
        for slot, fmt in ((4, "<b"), (10, "<i")):   # deprecated_builtin_code (int8), builtin_code (int32)
            offset = tab.Offset(slot)
            if offset:
                struct.pack_into(fmt, data, tab.Pos + offset, new)
    return bytes(data)


@needs_cc
def test_a_model_the_engine_cannot_run_gives_the_generators_message(tmp_path: Path, monkeypatch) -> None:
    import tflite

    monkeypatch.setenv(native.CACHE_ENV, str(tmp_path / "cache"))
    model = tmp_path / "tanh.tflite"
    model.write_bytes(_with_op_renamed(bundled_model("micro").read_bytes(), tflite.BuiltinOperator.SOFTMAX,
                                       tflite.BuiltinOperator.TANH))
    with pytest.raises(InferenceError, match=r"the native engine cannot run tanh.tflite: layer \d+ \(TANH\): "
                                             r"op not supported by the native engine"):
        Classifier(model, backend="native")
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"\0" * 64)
    with pytest.raises(InferenceError, match="cannot run garbage.tflite: not a TFLite flatbuffer"):
        Classifier(garbage, backend="native")
    assert entries(tmp_path / "cache") == [] and not list((tmp_path / "cache" / "native").iterdir())


# --- the commands --------------------------------------------------------------------------------------


@needs_cc
def test_cli_eval_native_scores_as_the_reference_kernels(mnist, mnist_cache: Path) -> None:
    """The native engine and TFLite's builtin kernels compute TFLM's arithmetic: same int8 outputs, same
    accuracy. XNNPACK (litert's default) rounds some requantizations differently (a few scores off by
    one step), so its accuracy may differ by the images where its argmax differs from the builtin kernels'."""
    pytest.importorskip("ai_edge_litert")
    from edge_digits.runtime.interpreter import InterpreterSession

    runner = CliRunner()

    def run_eval(backend: str) -> dict:
        result = runner.invoke(main, ["eval", "standard", "--backend", backend, "--limit", "500", "--json",
                                      "--cache-dir", str(mnist_cache)])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    native_doc, litert_doc = run_eval("native"), run_eval("litert")
    assert native_doc["backend"] == "native" and native_doc["count"] == 500
    path = bundled_model("standard")
    x, y = mnist[2][:500], mnist[3][:500]
    clf = Classifier(path, backend="litert")
    q = clf.quantize(x)
    builtin = InterpreterSession("litert", path, 1, default_delegates=False).run(q).argmax(1)
    assert native_doc["accuracy"] == pytest.approx(float(np.mean(builtin == y)))
    from edge_digits.scoring import confusion

    assert native_doc["confusion"] == confusion(y, builtin).tolist()
    xnnpack = clf.session.run(q).argmax(1)
    assert abs(native_doc["accuracy"] - litert_doc["accuracy"]) * 500 <= int((xnnpack != builtin).sum()) + 1e-9


@needs_cc
def test_cli_run_native_reads_the_demo_clip_as_litert() -> None:
    pytest.importorskip("ai_edge_litert")
    runner = CliRunner()

    def run(backend: str) -> list[dict]:
        result = runner.invoke(main, ["run", "--backend", backend, "--max-frames", "20", "--json"])
        assert result.exit_code == 0, result.output
        return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]

    native_frames, litert_frames = run("native"), run("litert")
    assert len(native_frames) == len(litert_frames) == 20
    for a, b in zip(native_frames, litert_frames):
        assert a["lines"] == b["lines"] and a["stable_lines"] == b["stable_lines"]
        assert [d["class"] for d in a["digits"]] == [d["class"] for d in b["digits"]]
    assert any(f["lines"] for f in native_frames)


@needs_cc
def test_cli_eval_photos_native_scores_the_real_photos_as_litert() -> None:
    pytest.importorskip("ai_edge_litert")
    from edge_digits.vision.photos import default_photos_dir

    if not (default_photos_dir() / "truth.json").is_file():
        pytest.skip(f"no photos in {default_photos_dir()}")
    runner = CliRunner()
    docs = {}
    for backend in ("native", "litert"):
        result = runner.invoke(main, ["eval-photos", "--backend", backend, "--json"])
        assert result.exit_code == 0, result.output
        docs[backend] = json.loads(result.stdout)
    keys = ("digits", "digit_errors", "lines", "lines_exact", "phantom_digits")
    assert {k: docs["native"][k] for k in keys} == {k: docs["litert"][k] for k in keys}
    assert docs["native"]["digit_accuracy"] >= 0.97


@needs_cc
def test_cli_bench_measures_native_beside_litert(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["bench", "--model", "micro", "--backend", "native", "--threads", "1",
                                       "--batch", "1,4", "--runs", "5", "--warmup", "1", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "bench.json").read_text())
    used = {(r["backend_used"], r["delegate"]) for r in report["results"]}
    assert len(used) == 1 and next(iter(used))[0] == "native" and "native C engine" in next(iter(used))[1]


@needs_cc
def test_serve_native_answers_as_the_native_classifier(shared_cache: Path, mnist) -> None:
    import http.client

    images = mnist[2][:12]
    expected = native_classifier("standard").predict(images)   # also builds the library the server loads
    env = dict(os.environ, PYTHONPATH=str(REPO), **{native.CACHE_ENV: str(shared_cache)})
    proc = subprocess.Popen([sys.executable, "-m", "edge_digits", "serve", "--port", "0", "--backend", "native",
                             "--max-batch", "8"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=REPO)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert match, (line, proc.stderr.read() if proc.stderr else "")
        import base64

        body = json.dumps({"images": [base64.b64encode(np.ascontiguousarray(i).tobytes()).decode()
                                      for i in images[:8]]}).encode()
        conn = http.client.HTTPConnection("127.0.0.1", int(match.group(1)), timeout=30)
        conn.request("POST", "/v1/classify", body=body, headers={"Content-Type": "application/json"})
        doc = json.loads(conn.getresponse().read())
        conn.request("GET", "/v1/model")
        info = json.loads(conn.getresponse().read())
        conn.close()
    finally:
        proc.terminate()
        proc.wait(10)
    assert [p["digit"] for p in doc["predictions"]] == expected[:8].argmax(1).tolist()
    assert np.allclose([p["scores"] for p in doc["predictions"]], expected[:8], atol=1e-6)
    assert info["backend"] == "native" and info["delegate"].startswith("native C engine")
    assert info["batch_sizes"] == [8]   # any batch runs as it comes: no buckets, no padding
