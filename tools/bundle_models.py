"""Copy trained runs into the package as the bundled models, with measured model cards.

    python tools/bundle_models.py standard=runs/standard micro=runs/micro

For each NAME=RUN_DIR: RUN_DIR/model_int8.tflite becomes
edge_digits/models/NAME_int8.tflite, and edge_digits/models/NAME.json records
what was measured again here (int8 accuracy on all 10,000 MNIST test images
through LiteRT and through TFLM, size, ops, TFLM arena) together with the
training report's figures, the recipe and the commit that made it.
MODEL_CARD.md is rewritten from all the cards.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

from edge_digits.fileio import atomic_write_json, atomic_write_text
from edge_digits.flatbuffer import summarize_model
from edge_digits.measure.evaluate import evaluate_tflite
from edge_digits.models import MODEL_DIR
from edge_digits.runtime import tflm
from edge_digits.train.recipe import find_recipe

ROOT = Path(__file__).resolve().parents[1]


def git_commit() -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def card(name: str, run: Path) -> dict:
    model = run / "model_int8.tflite"
    report = json.loads((run / "report.json").read_text())
    data = model.read_bytes()
    summary = summarize_model(data)
    litert = evaluate_tflite(model, backend="auto")
    micro = evaluate_tflite(model, backend="tflm")
    recipe = find_recipe(report["recipe"]["name"])
    return {
        "name": name,
        "file": f"{name}_int8.tflite",
        "sha256": hashlib.sha256(data).hexdigest(),
        "tflite_bytes": len(data),
        "parameters": report["parameters"],
        "macs": report["macs"],
        "ops": summary.ops,
        "tflm_arena_bytes": tflm.measure_arena(data).total_bytes,
        "accuracy_int8": litert.accuracy,
        "accuracy_int8_tflm": micro.accuracy,
        "accuracy_float": report["accuracy"]["float_keras"],
        "accuracy_qat": report["accuracy"]["qat_keras"],
        "test_images": litert.count,
        "training_seconds": report["training_seconds"],
        **({"training_note": report["training_note"]} if "training_note" in report else {}),
        "seed": report["seed"],
        "recipe": report["recipe"]["name"],
        "recipe_sha256": hashlib.sha256(recipe.read_bytes()).hexdigest(),
        "trained_at_commit": git_commit(),
        "versions": report["versions"],
    }


def model_card_markdown(cards: list[dict]) -> str:
    rows = "\n".join(
        f"| `{c['name']}` | {c['accuracy_int8']:.2%} | {c['accuracy_int8_tflm']:.2%} | {c['tflite_bytes']:,} | "
        f"{c['tflm_arena_bytes']:,} | {c['parameters']:,} | {c['macs']:,} | {', '.join(c['ops'])} | "
        f"`training/recipes/{c['recipe']}.yaml` | {c['training_seconds'] / 60:.1f} min | "
        f"`{c['trained_at_commit'][:10]}` |"
        for c in cards)
    notes = "".join(f"\n- `{c['name']}` training time: {c['training_note']}." for c in cards if c.get("training_note"))
    return f"""# Bundled models

Both are full-integer int8 TFLite models (int8 weights per channel, int8
activations, int8 input and output). Input: a 28x28 digit, white ink on black,
as pixel/255 quantized with the input tensor's scale and zero point. Output:
10 softmax scores. Accuracy is measured on all 10,000 MNIST test images, by
`tools/bundle_models.py` when the model was bundled, and checked again by the
test suite (`tests/test_models.py`).

| model | int8 accuracy (LiteRT) | int8 accuracy (TFLM) | .tflite bytes | TFLM arena bytes | parameters | MACs | ops | recipe | training time | recipe and trainer at commit |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
{rows}

- `standard` is the Raspberry Pi model (`edge-digits run`, `eval`, `bench`).
- `micro` is the microcontroller model (`edge-digits firmware build`, `convert`):
  only CONV_2D, MAX_POOL_2D, RESHAPE, FULLY_CONNECTED and SOFTMAX.
- Every one of them reads camera frames with the rejection model `reject_int8.tflite` in front of it
  (glyphs that are not digits are dropped before classification); see `REJECT.md`.

Training time is wall-clock on the 2-core development machine, with other
jobs sharing it. Per-model JSON cards beside this file hold every figure,
the recipe's SHA-256 and the library versions.
{notes}
"""


def main(args: list[str]) -> int:
    cards = []
    for arg in args:
        name, run = arg.split("=", 1)
        c = card(name, Path(run))
        shutil.copyfile(Path(run) / "model_int8.tflite", MODEL_DIR / c["file"])
        atomic_write_json(MODEL_DIR / f"{name}.json", c)
        print(f"{name}: int8 {c['accuracy_int8']:.2%} (TFLM {c['accuracy_int8_tflm']:.2%}), {c['tflite_bytes']} bytes, "
              f"arena {c['tflm_arena_bytes']} bytes")
    # digit-model cards only: reject.json is the rejection model's, whose card is REJECT.md
    cards = [c for c in (json.loads(p.read_text()) for p in sorted(MODEL_DIR.glob("*.json"))) if "accuracy_int8" in c]
    atomic_write_text(MODEL_DIR / "MODEL_CARD.md", model_card_markdown(cards))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
