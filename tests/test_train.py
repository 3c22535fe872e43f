"""The trainer end to end on a tiny recipe, recipe validation, augmentation, and the runtime classifier."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_digits.augment import augment_batch
from edge_digits.recipe import Augmentation, RecipeError, load_recipe, recipe_from_dict

TINY = {
    "name": "tiny",
    "layers": [
        {"type": "conv", "filters": 8, "batchnorm": True, "stride": 2},
        {"type": "maxpool", "size": 2},
        {"type": "flatten"},
        {"type": "dense", "units": 10, "activation": "none"},
    ],
    "training": {"epochs": 2, "batch_size": 64, "learning_rate": 0.01, "validation": 500, "subset": 3000},
    "augmentation": {"rotation": 10, "zoom": [0.9, 1.1], "shift": 0.05, "elastic_alpha": 5, "elastic_p": 0.3,
                     "thickness_p": 0.2, "contrast": [0.8, 1.0], "noise": 0.02},
    "qat": {"enabled": True, "epochs": 1, "calibration": 200},
}


@pytest.mark.parametrize("patch, message", [
    ({"trainnig": {}}, "unknown key 'trainnig': allowed keys are name, description, kind, layers"),
    ({"training": {"epochs": 0}}, "'training.epochs' is 0: allowed values are 1 to 500"),
    ({"training": {"optimizer": "adamw"}}, "'training.optimizer' is 'adamw': allowed values are adam, sgd"),
    ({"training": {"schedule": "step"}}, "allowed values are cosine, plateau, constant"),
    ({"augmentation": {"zoom": [1.2, 0.8]}}, "'augmentation.zoom' must have low <= high"),
    ({"augmentation": {"rotaton": 5}}, "unknown key 'augmentation.rotaton'"),
    ({"qat": {"enabled": "yes"}}, "'qat.enabled' must be true or false"),
    ({"layers": [{"type": "lstm"}]}, "'layers[0].type' is 'lstm': allowed values are conv, dwconv"),
    ({"layers": [{"type": "conv", "filters": 8, "kernal": 3}]}, "unknown key 'layers[0].kernal'"),
    ({"layers": [{"type": "conv", "filters": 8}]}, "must end with a dense layer of 10 units"),
])
def test_recipe_errors_name_the_key_and_allowed_values(patch: dict, message: str) -> None:
    data = json.loads(json.dumps(TINY))
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    with pytest.raises(RecipeError) as err:
        recipe_from_dict(data)
    assert message in str(err.value)


def test_shipped_recipes_load() -> None:
    for name in ("standard", "micro", "seed-cnn", "logreg"):
        recipe = load_recipe(name)
        assert recipe.name == name
    assert load_recipe("seed-cnn").training.epochs == 15 and load_recipe("seed-cnn").training.batch_size == 64
    with pytest.raises(RecipeError, match="no recipe named 'nope': allowed names are logreg, micro, seed-cnn"):
        load_recipe("nope")


def test_augmentation_changes_digits_but_keeps_them_digits(mnist) -> None:
    images = mnist[0][:64]
    aug = Augmentation(rotation=15, zoom=(0.9, 1.1), shift=0.1, shear=10, elastic_alpha=6, elastic_p=1.0,
                       thickness_p=0.5, contrast=(0.6, 1.0), noise=0.05)
    out = augment_batch(images, seed=1, aug=aug)
    assert out.shape == images.shape and out.dtype == np.uint8
    assert np.array_equal(out, augment_batch(images, seed=1, aug=aug)), "same seed, same batch"
    assert not np.array_equal(out, augment_batch(images, seed=2, aug=aug))
    changed = np.mean(np.abs(out.astype(int) - images.astype(int)) > 30, axis=(1, 2))
    assert (changed > 0.01).all()
    ink_ratio = (out > 100).sum(axis=(1, 2)) / np.maximum((images > 100).sum(axis=(1, 2)), 1)
    assert 0.3 < np.median(ink_ratio) < 2.0
    assert np.array_equal(augment_batch(images, 3, Augmentation()), images), "no augmentation is the identity"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, mnist):
    from edge_digits.train import train

    out = tmp_path_factory.mktemp("train") / "tiny"
    return train(recipe_from_dict(TINY), out, seed=3, verbose=0, data=mnist)


def test_tiny_recipe_trains_quantizes_and_reports(tiny_run) -> None:
    out = tiny_run.out_dir
    for name in ("model_int8.tflite", "model_float.tflite", "model.keras", "model_qat.h5", "report.json",
                 "curves.png", "confusion.png", "errors.png"):
        assert (out / name).stat().st_size > 0, name
    for png in ("curves.png", "confusion.png", "errors.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((out / "report.json").read_text())
    acc = report["accuracy"]
    assert acc["int8_tflite"] > 0.85, "far above chance after two small epochs"
    assert abs(acc["int8_tflite"] - acc["qat_keras"]) < 0.02
    assert report["recipe"]["name"] == "tiny" and report["test_images"] == 10000
    assert report["parameters"] == 8 * 9 + 8 * 2 + 8 * 2 + 7 * 7 * 8 * 10 + 10 + 8 * 2 - 16
    assert len(report["history"]["float_loss"]) == 2 and len(report["history"]["qat_loss"]) == 1
    assert sum(map(sum, report["confusion_int8"])) == 10000


def test_int8_export_is_full_integer(tiny_run) -> None:
    from edge_digits.convert import summarize_model

    summary = summarize_model((tiny_run.out_dir / "model_int8.tflite").read_bytes())
    assert summary.inputs[0].dtype == "int8" and summary.outputs[0].dtype == "int8"
    assert summary.inputs[0].scale > 0 and summary.outputs[0].scale == pytest.approx(1 / 256)
    assert summary.float_tensors == []
    assert summary.ops == ["CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]


def test_saved_keras_models_load_back_and_convert(tiny_run, mnist_cache) -> None:
    from edge_digits.convert import load_model_bytes, summarize_model
    from edge_digits.robustness import keras_beside

    out = tiny_run.out_dir
    assert keras_beside(out / "model_int8.tflite") == out / "model_qat.h5"
    data, _ = load_model_bytes(out / "model_qat.h5", 50, mnist_cache)
    summary = summarize_model(data)
    assert summary.inputs[0].dtype == "int8" and summary.float_tensors == []
    data, _ = load_model_bytes(out / "model.keras", 50, mnist_cache)
    assert summarize_model(data).outputs[0].dtype == "int8"


def test_fgsm_from_the_keras_model_fools_the_int8_model_far_more_than_random_signs(tiny_run, mnist) -> None:
    from edge_digits.robustness import fgsm_images
    from edge_digits.runtime import Classifier

    x, y = mnist[2][:500], mnist[3][:500]
    clf = Classifier(tiny_run.out_dir / "model_int8.tflite")
    adv = fgsm_images(tiny_run.out_dir / "model_qat.h5", x, y, (0.0, 0.2))
    assert np.array_equal(adv[0.0], x)
    signs = np.random.default_rng(0).choice([-1.0, 1.0], x.shape)
    rand = np.clip(np.rint(x + 0.2 * 255 * signs), 0, 255).astype(np.uint8)
    assert np.abs(adv[0.2].astype(int) - x).max() <= 51
    clean, attacked, random = (float(np.mean(clf.predict_batched(i).argmax(axis=1) == y)) for i in (x, adv[0.2], rand))
    assert attacked < clean - 0.3 and attacked < random - 0.2, (clean, attacked, random)


def test_resume_continues_from_the_last_checkpoint(tiny_run, mnist) -> None:
    from edge_digits.train import train

    state = json.loads((tiny_run.out_dir / "checkpoints" / "state.json").read_text())
    assert state["phase"] == "qat" and state["epoch"] == 1
    assert 0 < state["seconds"] <= tiny_run.report["training_seconds"]
    again = train(recipe_from_dict(TINY), tiny_run.out_dir, seed=3, resume=True, verbose=0, data=mnist)
    assert again.report["history"]["float_loss"] == tiny_run.report["history"]["float_loss"]
    assert len(again.report["history"]["qat_loss"]) == 1
    assert again.report["training_seconds"] >= state["seconds"]  # time before the interruption is counted


def test_classifier_batches_agree_and_backends_match(tiny_run, mnist) -> None:
    from edge_digits.runtime import Classifier

    model = tiny_run.out_dir / "model_int8.tflite"
    images = mnist[2][:40]
    litert = Classifier(model)
    batch = litert.predict_raw(images)
    singles = np.concatenate([litert.predict_raw(images[i:i + 1]) for i in range(len(images))])
    np.testing.assert_array_equal(batch, singles)
    tflm = Classifier(model, backend="tflm").predict_raw(images)
    assert np.mean(np.all(tflm == batch, axis=1)) > 0.9
    assert np.mean(tflm.argmax(axis=1) == batch.argmax(axis=1)) >= 0.95
    # LiteRT's int8 softmax (a lookup table) and TFLM's (fixed-point exp) round differently: a few 1/256 steps.
    assert (np.abs(tflm.astype(int) - batch.astype(int)) <= 4).all()
    assert litert.backend == "litert" and litert.dynamic_batch
