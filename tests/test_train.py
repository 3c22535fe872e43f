"""The trainer end to end on a tiny recipe, recipe validation, augmentation, and the runtime classifier."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_digits.train.augment import augment_batch
from edge_digits.train.recipe import Augmentation, RecipeError, load_recipe, recipe_from_dict

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

pytestmark = pytest.mark.slow   # trains, searches or runs all 10,000 test images: `make test` only


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
    ({"adversarial": {"epsilon": 0.8}}, "'adversarial.epsilon' is 0.8: allowed values are 0.0 to 0.5"),
    ({"adversarial": {"eps": 0.1}}, "unknown key 'adversarial.eps': allowed keys are epsilon, ratio"),
    ({"distillation": {"teacher": 3}}, "'distillation.teacher' must be a model name or path, not 3"),
    ({"distillation": {"temperature": 0.5}}, "'distillation.temperature' is 0.5: allowed values are 1.0 to 20.0"),
    ({"pruning": {"sparsity": 0.99}}, "'pruning.sparsity' is 0.99: allowed values are 0.0 to 0.95"),
    ({"pruning": {"begin_epoch": 1, "end_epoch": 1}}, "'pruning.end_epoch' is 1: it must be after begin_epoch (1)"),
    ({"kind": "logreg", "pruning": {"sparsity": 0.5}}, "need kind: keras"),
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


def test_lab_recipes_change_only_their_technique_over_micro(tmp_path) -> None:
    from dataclasses import replace

    from edge_digits.train.recipe import RECIPE_DIR, Adversarial, Distillation, Pruning

    micro = load_recipe("micro")
    lab = {p.stem: load_recipe(str(p)) for p in sorted((RECIPE_DIR / "lab").glob("*.yaml"))}
    assert sorted(lab) == ["micro-adversarial", "micro-class-weights", "micro-distilled", "micro-pruned"]
    for name, recipe in lab.items():
        assert recipe.name == name and recipe.layers == micro.layers and recipe.qat == micro.qat
        plain = replace(recipe, name="micro", description=micro.description, adversarial=Adversarial(),
                        distillation=Distillation(), pruning=Pruning(),
                        training=replace(recipe.training, class_weights=False))
        assert plain == micro, name
    assert lab["micro-distilled"].distillation.teacher == "standard"
    assert lab["micro-pruned"].pruning.sparsity == 0.5 and lab["micro-class-weights"].training.class_weights

    (tmp_path / "a.yaml").write_text("base: b.yaml\ntraining: {epochs: 3}\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(RecipeError, match="is its own base"):
        load_recipe(str(tmp_path / "a.yaml"))
    (tmp_path / "c.yaml").write_text("base: micro\ntraining: {epochs: 3, learning_rate: 7}\n")
    with pytest.raises(RecipeError, match="'training.learning_rate' is 7"):
        load_recipe(str(tmp_path / "c.yaml"))


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
    from edge_digits.train.trainer import train

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
    from edge_digits.flatbuffer import summarize_model

    summary = summarize_model((tiny_run.out_dir / "model_int8.tflite").read_bytes())
    assert summary.inputs[0].dtype == "int8" and summary.outputs[0].dtype == "int8"
    assert summary.inputs[0].scale > 0 and summary.outputs[0].scale == pytest.approx(1 / 256)
    assert summary.float_tensors == []
    assert summary.ops == ["CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]


def test_saved_keras_models_load_back_and_convert(tiny_run, mnist_cache) -> None:
    from edge_digits.deploy.convert import load_model_bytes
    from edge_digits.flatbuffer import summarize_model
    from edge_digits.train.robustness import keras_beside

    out = tiny_run.out_dir
    assert keras_beside(out / "model_int8.tflite") == out / "model_qat.h5"
    data, _ = load_model_bytes(out / "model_qat.h5", 50, mnist_cache)
    summary = summarize_model(data)
    assert summary.inputs[0].dtype == "int8" and summary.float_tensors == []
    data, _ = load_model_bytes(out / "model.keras", 50, mnist_cache)
    assert summarize_model(data).outputs[0].dtype == "int8"


def test_fgsm_from_the_keras_model_fools_the_int8_model_far_more_than_random_signs(tiny_run, mnist) -> None:
    from edge_digits.runtime import Classifier
    from edge_digits.train.robustness import fgsm_images

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
    from edge_digits.train.trainer import train

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


def _fgsm_accuracy(run: Path, x: np.ndarray, y: np.ndarray, epsilon: float) -> float:
    from edge_digits.runtime import Classifier
    from edge_digits.train.robustness import fgsm_images

    adv = fgsm_images(run / "model_qat.h5", x, y, (epsilon,))[epsilon]
    return float(np.mean(Classifier(run / "model_int8.tflite").predict_batched(adv).argmax(axis=1) == y))


def test_adversarial_training_resists_fgsm_better_than_the_same_recipe_without_it(tiny_run, mnist, tmp_path) -> None:
    from edge_digits.train.trainer import train

    data = dict(json.loads(json.dumps(TINY)), adversarial={"epsilon": 0.1, "ratio": 0.5})
    run = train(recipe_from_dict(data), tmp_path / "adv", seed=3, verbose=0, data=mnist)
    assert run.report["techniques"] == {"adversarial": {"epsilon": 0.1, "ratio": 0.5}}
    x, y = mnist[2][:1000], mnist[3][:1000]
    plain, hardened = (_fgsm_accuracy(r, x, y, 0.1) for r in (tiny_run.out_dir, run.out_dir))
    assert hardened > plain + 0.1, (plain, hardened)  # measured here: 0.43 -> 0.62
    assert run.report["accuracy"]["int8_tflite"] > 0.8


def test_teacher_logits_are_the_teachers_pre_softmax_values(mnist) -> None:
    from edge_digits.runtime import Classifier
    from edge_digits.train.techniques import TeacherLogits, teacher_tflite

    images = mnist[2][:64]
    teacher = TeacherLogits(teacher_tflite("standard"))
    logits = teacher(images)
    assert logits.shape == (64, 10) and logits.dtype == np.float32 and teacher.from_softmax
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    from edge_digits.models import bundled_model

    reference = Classifier(bundled_model("standard")).predict(images)
    assert np.abs(probs - reference).max() < 3 / 256  # the int8 softmax output is in steps of 1/256
    assert np.array_equal(logits.argmax(axis=1), reference.argmax(axis=1))
    assert np.ptp(logits, axis=1).min() > 5, "real logits, not a flat or clipped copy of the probabilities"
    np.testing.assert_array_equal(teacher(images[:7]), logits[:7])  # batch size changes resize the interpreter


def test_distillation_alone_teaches_the_student_without_labels(mnist, tmp_path) -> None:
    from edge_digits.train.trainer import train

    data = dict(json.loads(json.dumps(TINY)), distillation={"teacher": "standard", "alpha": 0.0})
    run = train(recipe_from_dict(data), tmp_path / "kd", seed=3, verbose=0, data=mnist)
    history = run.report["history"]
    assert history["float_distill_loss"][-1] < history["float_distill_loss"][0]
    assert "float_val_distill_loss" not in history
    assert run.report["accuracy"]["int8_tflite"] > 0.85, "alpha 0: the labels weigh nothing, the teacher all"


def test_bad_teacher_fails_before_training(mnist, tmp_path) -> None:
    from edge_digits.train.techniques import TeacherError
    from edge_digits.train.trainer import train

    data = dict(json.loads(json.dumps(TINY)), distillation={"teacher": str(tmp_path / "nope.tflite")})
    with pytest.raises(TeacherError, match="does not exist: give a bundled name"):
        train(recipe_from_dict(data), tmp_path / "kd", seed=3, verbose=0, data=mnist)
    assert not (tmp_path / "kd" / "checkpoints").exists()


def test_pruning_keeps_its_sparsity_through_qat_into_the_int8_model(tiny_run, mnist, tmp_path) -> None:
    from edge_digits.train.trainer import train

    data = dict(json.loads(json.dumps(TINY)), pruning={"sparsity": 0.6, "frequency": 10})
    run = train(recipe_from_dict(data), tmp_path / "pruned", seed=3, verbose=0, data=mnist)
    report, plain = run.report, tiny_run.report
    assert report["weight_sparsity_int8"] > 0.55 and plain["weight_sparsity_int8"] < 0.05
    # int8 TFLite stores weights dense: the same bytes, fewer only when compressed
    assert abs(report["tflite_int8_bytes"] - plain["tflite_int8_bytes"]) < 200
    assert report["tflite_int8_zlib_bytes"] < 0.85 * plain["tflite_int8_zlib_bytes"]
    assert report["accuracy"]["int8_tflite"] > 0.75
