"""The native C engine computes exactly what TensorFlow Lite Micro computes.

Generated C is built with the system compiler (warnings as errors, and once
under AddressSanitizer/UBSan) and run on all 10,000 MNIST test images; the
golden int8 outputs come from the ``tflite_micro`` runtime (TFLM's reference
kernels), never from the engine. Models: the bundled ``micro`` and
``standard`` models when present, look-alikes of both, and one randomly-shaped
model per supported op, all built once per session.
"""

from __future__ import annotations

import doctest
import importlib.resources
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

tflite_micro = pytest.importorskip("tflite_micro")
pytest.importorskip("tflite")

from edge_digits import int8  # noqa: E402
from edge_digits.engine import cgen, plan, quant  # noqa: E402
from edge_digits.engine.dot import with_patch_room  # noqa: E402
from edge_digits.engine.generate import GenerateResult, generate, model_c  # noqa: E402
from edge_digits.engine.graph import (  # noqa: E402
    Layer,
    UnsupportedModelError,
    fusable_conv_maxpool,
    fuse_conv_maxpool,
    read_graph,
)

ROOT = Path(__file__).resolve().parents[1]
HOST = ROOT / "firmware" / "host" / "ed_host.c"
CC = os.environ.get("CC", "cc")
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2"]
SANITIZE = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O1", "-g", "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
BUNDLED = ("micro_int8.tflite", "standard_int8.tflite")
ORACLE_ARENA = 4 * 1024 * 1024

pytestmark = pytest.mark.slow   # trains, searches or runs all 10,000 test images: `make test` only


@dataclass(frozen=True)
class Checked:
    """Outputs of the engine and the oracle for one model on the whole test set."""

    engine: np.ndarray
    oracle: np.ndarray

    @property
    def mismatched(self) -> int:
        return int(np.any(self.engine != self.oracle, axis=1).sum())


def bundled_model(name: str) -> Path | None:
    """A model shipped in ``edge_digits/models/``, or None while it is not there yet."""
    path = Path(str(importlib.resources.files("edge_digits") / "models" / name))
    return path if path.is_file() else None


@pytest.fixture(scope="session")
def test_models(tmp_path_factory: pytest.TempPathFactory, mnist) -> dict[str, Path]:
    """Every made-up test model as a .tflite file, built once (about half a minute of TensorFlow)."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    import engine_models as em

    x_train, y_train = mnist[0], mnist[1]
    x = (x_train[..., None] / 255.0).astype(np.float32)
    calibration = x[:200]
    folder = tmp_path_factory.mktemp("engine_models")
    models: dict[str, Path] = {}
    for name, builder, steps in (("micro_like", em.micro_like, 60), ("standard_like", em.standard_like, 30)):
        model = builder()
        em.quick_fit(model, x, y_train, steps)
        models[name] = folder / f"{name}.tflite"
        models[name].write_bytes(em.to_int8_tflite(model, calibration))
    for case in em.random_op_cases():
        models[case.name] = folder / f"{case.name}.tflite"
        models[case.name].write_bytes(em.to_int8_tflite(case.build(), calibration))
    models["unsupported_add"] = folder / "unsupported_add.tflite"
    models["unsupported_add"].write_bytes(em.to_int8_tflite(em.add_model(), calibration))
    return models


def _op_case_names() -> list[str]:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    import engine_models as em

    return [c.name for c in em.random_op_cases()]


def build_engine(model: Path, work: Path, flags: list[str]) -> tuple[Path, GenerateResult]:
    """Generate C for the model and build it with the stream harness."""
    out = work / "gen"
    result = generate(model, out)
    exe = work / "engine"
    sources = sorted(str(p) for p in out.glob("*.c"))
    subprocess.run([CC, *flags, "-I", str(out), *sources, str(HOST), "-o", str(exe)], check=True,
                   capture_output=True, text=True)
    return exe, result


def run_engine(exe: Path, images: np.ndarray, out_size: int) -> np.ndarray:
    """All images through one engine process (stdin -> stdout)."""
    proc = subprocess.run([str(exe)], input=images.tobytes(), capture_output=True, check=True)
    return np.frombuffer(proc.stdout, dtype=np.int8).reshape(len(images), out_size)


def run_oracle(model: Path, images: np.ndarray) -> np.ndarray:
    """The golden outputs: TFLM's reference kernels through the tflite_micro runtime."""
    from tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(model.read_bytes(), arena_size=ORACLE_ARENA)
    shape = (1, *images.shape[1:])
    outputs = []
    for image in images:
        interp.set_input(image.reshape(shape), 0)
        interp.invoke()
        outputs.append(interp.get_output(0).reshape(-1).copy())
    return np.stack(outputs)


_golden: dict[str, np.ndarray] = {}


def check_model(model: Path, work: Path, x_test: np.ndarray, flags: list[str] = STRICT) -> Checked:
    """Build the engine for a model and compare it with the oracle on every test image."""
    exe, result = build_engine(model, work, flags)
    images = int8.quantize_images(x_test, result.input_scale, result.input_zero_point)[..., None]
    key = str(model)
    if key not in _golden:
        _golden[key] = run_oracle(model, images)
    return Checked(run_engine(exe, images, result.output_size), _golden[key])


@pytest.mark.parametrize("name", ["micro_like", "standard_like", *_op_case_names()])
def test_engine_matches_tflm_on_all_test_images(name: str, test_models, mnist, tmp_path: Path) -> None:
    x_test = mnist[2]
    checked = check_model(test_models[name], tmp_path, x_test)
    assert len(checked.engine) == 10_000
    assert checked.mismatched == 0, f"{checked.mismatched} of 10000 images differ from TFLM"


@pytest.mark.slow
@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_model_matches_tflm_on_all_test_images(name: str, mnist, tmp_path: Path) -> None:
    model = bundled_model(name)
    if model is None:
        pytest.skip(f"bundled model edge_digits/models/{name} is not in this checkout yet (made by training)")
    checked = check_model(model, tmp_path, mnist[2])
    assert checked.mismatched == 0, f"{checked.mismatched} of 10000 images differ from TFLM"
    assert (checked.engine.argmax(1) == mnist[3]).mean() > 0.9


def test_engine_is_clean_under_address_and_undefined_sanitizers(test_models, mnist, tmp_path: Path) -> None:
    if shutil.which(CC) is None:
        pytest.skip(f"no C compiler {CC}")
    names = _op_case_names()
    for name in ("micro_like", next(n for n in names if n.startswith("conv2d")),
                 next(n for n in names if n.startswith("dwconv"))):
        checked = check_model(test_models[name], tmp_path / name, mnist[2], SANITIZE)
        assert checked.mismatched == 0, name


def test_unsupported_op_fails_at_generation_naming_layer_and_op(test_models, tmp_path: Path) -> None:
    out = tmp_path / "gen"
    with pytest.raises(UnsupportedModelError, match=r"layer \d+ \(ADD\): op not supported"):
        generate(test_models["unsupported_add"], out)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_float_model_is_rejected_with_advice(tmp_path: Path) -> None:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow as tf
    import tf_keras as k

    inp = k.Input((28, 28, 1))
    model = k.Model(inp, k.layers.Dense(10)(k.layers.Flatten()(inp)))
    data = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    with pytest.raises(UnsupportedModelError, match="int8"):
        read_graph(bytes(data))


def _aliases(graph) -> set[frozenset[int]]:
    """Pairs of tensors that RESHAPE lets share bytes."""
    return {frozenset((lay.inputs[0], lay.output)) for lay in graph.layers if lay.kernel == "reshape"}


def test_memory_plan_never_overlaps_live_tensors_and_reaches_the_bound(test_models) -> None:
    for name, path in test_models.items():
        if name.startswith("unsupported"):
            continue
        unfused = read_graph(path.read_bytes())
        for graph, mp in ((unfused, plan.plan_memory(unfused)), plan.best_plan(unfused)):
            _check_plan(name, graph, mp)
    for name in ("micro_like", "standard_like"):
        mp = plan.plan_memory(read_graph(test_models[name].read_bytes()))
        assert mp.scratch_bytes < mp.disjoint_bound, name


def test_fusing_conv_and_max_pool_is_chosen_where_it_saves_ram() -> None:
    from edge_digits.models import bundled_model

    graph = read_graph(bundled_model("micro").read_bytes())
    fused, mp = plan.best_plan(graph)
    n_fused = [layer.kernel for layer in fused.layers].count("ed_conv2d_maxpool")
    assert n_fused >= 1 and len(fused.layers) == len(graph.layers) - n_fused
    assert mp.scratch_bytes < plan.plan_memory(graph).scratch_bytes
    every_pair = fuse_conv_maxpool(graph, set(fusable_conv_maxpool(graph)))
    assert mp.scratch_bytes <= plan.plan_memory(every_pair).scratch_bytes
    conv = next(layer for layer in fused.layers if layer.pool is not None)
    # one int16 receptive field (two where generation asks for the DSP path), then a pooling window of conv rows
    assert plan.patch_bytes(conv) == 2 * 3 * 3 * conv.params["in_c"] + 2 * conv.params["out_w"] * conv.params["out_c"]
    two = with_patch_room(fused, "dsp").layers[fused.layers.index(conv)]
    assert plan.patch_bytes(two) == 4 * 3 * 3 * conv.params["in_c"] + 2 * conv.params["out_w"] * conv.params["out_c"]


def _check_plan(name: str, graph, mp) -> None:
    """No two live tensors share bytes, except where a kernel's lead lets its output overlap its input."""
    live: dict[int, tuple[int, int]] = {}
    for step, layer in enumerate(graph.layers):
        for t in [*layer.inputs, layer.output]:
            lo, hi = live.get(t, (step, step))
            live[t] = (min(lo, step), max(hi, step))
    scratch = [t for t in live if mp.placements[t].region == "scratch"]
    producers = {layer.output: layer.index for layer in graph.layers}
    for a in scratch:
        pa = mp.placements[a]
        assert pa.offset + pa.size <= mp.scratch_bytes
        for b in scratch:
            pb = mp.placements[b]
            if a >= b or frozenset((a, b)) in _aliases(graph):
                continue
            if not (live[a][0] <= live[b][1] and live[b][0] <= live[a][1]):
                continue
            disjoint = pa.offset + pa.size <= pb.offset or pb.offset + pb.size <= pa.offset
            pair = (a, b) if (a, b) in mp.leads else (b, a) if (b, a) in mp.leads else None
            if pair is None or disjoint:
                assert disjoint, (name, a, b)
                continue
            out, src = mp.placements[pair[0]], mp.placements[pair[1]]
            if producers[pair[0]] in mp.reversed_layers:
                assert out.offset - src.offset >= mp.revs[pair], (name, pair, "rows last to first")
            else:
                assert src.offset - out.offset >= mp.leads[pair], (name, pair)


def _conv_cases(seed: int, n: int) -> list[Layer]:
    """Random CONV_2D shapes (SAME and VALID, strides 1 and 2) as engine layers."""
    rng = np.random.default_rng(seed)
    layers = []
    while len(layers) < n:
        in_h, in_w, k_h, k_w = (int(v) for v in rng.integers([2, 2, 1, 1], [10, 10, 4, 4]))
        stride, same = int(rng.integers(1, 3)), bool(rng.integers(0, 2))
        if k_h > in_h or k_w > in_w:
            continue
        out_h = -(-in_h // stride) if same else (in_h - k_h) // stride + 1
        out_w = -(-in_w // stride) if same else (in_w - k_w) // stride + 1
        pad_h = max((out_h - 1) * stride + k_h - in_h, 0) // 2 if same else 0
        pad_w = max((out_w - 1) * stride + k_w - in_w, 0) // 2 if same else 0
        layers.append(Layer(len(layers), "CONV_2D", "ed_conv2d", [0], 1, dict(
            in_h=in_h, in_w=in_w, in_c=int(rng.integers(1, 5)), out_h=out_h, out_w=out_w,
            out_c=int(rng.integers(1, 7)), k_h=k_h, k_w=k_w, stride_h=stride, stride_w=stride,
            pad_h=pad_h, pad_w=pad_w)))
    return layers


def _clobbers(layer: Layer, shift: int, pixel_order: list[list[int]]) -> bool:
    """Whether a conv writing its output ``shift`` bytes from its input's start overwrites input it
    still reads, the pixels taken in the given groups (each group gathered, then written)."""
    p = layer.params
    reads: dict[int, list[int]] = {}
    for pixel in range(p["out_h"] * p["out_w"]):
        oy, ox = divmod(pixel, p["out_w"])
        taps = []
        for ky in range(p["k_h"]):
            for kx in range(p["k_w"]):
                iy, ix = oy * p["stride_h"] - p["pad_h"] + ky, ox * p["stride_w"] - p["pad_w"] + kx
                if 0 <= iy < p["in_h"] and 0 <= ix < p["in_w"]:
                    start = (iy * p["in_w"] + ix) * p["in_c"]
                    taps += range(start, start + p["in_c"])
        reads[pixel] = taps
    last_read = {}
    for step, group in enumerate(pixel_order):
        for pixel in group:
            for byte in reads[pixel]:
                last_read[byte] = step
    for step, group in enumerate(pixel_order):
        for pixel in group:
            for byte in range(pixel * p["out_c"], (pixel + 1) * p["out_c"]):
                if last_read.get(byte + shift, -1) > step:
                    return True
    return False


def _raster_groups(layer: Layer, block: int) -> list[list[int]]:
    n = layer.params["out_h"] * layer.params["out_w"]
    return [list(range(i, min(n, i + block))) for i in range(0, n, block)]


def _rows_last_to_first_groups(layer: Layer, block: int) -> list[list[int]]:
    h, w = layer.params["out_h"], layer.params["out_w"]
    return [list(range(oy * w + i, oy * w + min(w, i + block))) for oy in range(h - 1, -1, -1)
            for i in range(0, w, block)]


def test_in_place_leads_keep_every_input_byte_until_it_is_read() -> None:
    """The plan's leads against a byte-level simulation of the kernels' order: pixels one at a time,
    in pairs (DSP and Helium) and in eights (the dot-product kernel), raster order or rows last to
    first; the reverse bound is also tight (one byte less clobbers) where a row has more pixels than
    a pair."""
    for layer in _conv_cases(seed=7, n=150):
        lead, rev = plan.raster_lead(layer), plan.reverse_lead(layer)
        assert lead is not None and rev is not None
        for block in (1, 2, 8):
            assert not _clobbers(layer, -lead, _raster_groups(layer, block)), (layer.params, block)
        for block in (1, 2):
            assert not _clobbers(layer, rev, _rows_last_to_first_groups(layer, block)), (layer.params, block)
        if layer.params["out_w"] > 2:
            assert _clobbers(layer, rev - 1, _rows_last_to_first_groups(layer, 2)), layer.params


def test_rows_last_to_first_shrink_the_bundled_standard_plan() -> None:
    from edge_digits.models import bundled_model

    graph = read_graph(bundled_model("standard").read_bytes())
    forward_only = plan.plan_memory(graph, reverse=False)
    mp = plan.plan_memory(graph)
    assert mp.reversed_layers and mp.scratch_bytes < forward_only.scratch_bytes
    _check_plan("standard", graph, mp)
    c_code = model_c(graph, mp, "standard")
    assert c_code.count("ed_conv2d_rows(") == len(mp.reversed_layers)


def test_generated_folder_is_self_contained_and_summarized(test_models, tmp_path: Path) -> None:
    result = generate(test_models["micro_like"], tmp_path / "gen")
    files = sorted(p.name for p in (tmp_path / "gen").iterdir())
    assert files == result.files
    header = (tmp_path / "gen" / "model.h").read_text()
    for macro in ("ED_INPUT_SIZE 784", "ED_OUTPUT_SIZE 10", f"ED_SCRATCH_BYTES {result.scratch_bytes}"):
        assert f"#define {macro}" in header
    assert "int ed_invoke(const int8_t *input, int8_t *output);" in header
    summary = __import__("json").loads((tmp_path / "gen" / "summary.json").read_text())
    assert summary["scratch_bytes"] == result.scratch_bytes
    assert summary["macs"] == sum(layer["macs"] for layer in summary["layers"]) > 0
    source = (tmp_path / "gen" / "model.c").read_text()
    assert "static const int8_t ed_l0_weights" in source and "malloc" not in source


def test_cli_generate_prints_summary_and_reports_unsupported_ops(test_models, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from edge_digits.cli import main

    runner = CliRunner()
    ok = runner.invoke(main, ["firmware", "generate", str(test_models["micro_like"]), "--out", str(tmp_path / "g")])
    assert ok.exit_code == 0, ok.output
    assert "scratch RAM" in ok.output and (tmp_path / "g" / "model.c").is_file()
    bad = runner.invoke(main, ["firmware", "generate", str(test_models["unsupported_add"]), "--out",
                               str(tmp_path / "b")])
    assert bad.exit_code == 1
    assert "(ADD)" in bad.output and not (tmp_path / "b").exists()


@pytest.mark.parametrize("module", [cgen, quant, plan])
def test_doctests(module) -> None:
    assert doctest.testmod(module).failed == 0
