"""Training recipes: YAML files in ``training/recipes/``, checked completely before any training starts.

A recipe names the model's layers, the training schedule, the augmentation
and the quantization-aware fine-tuning. Every key is known and every value is
checked here, so a typo fails in a second with the key and the allowed
values, not after twenty minutes of training.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, cast

RECIPE_DIR = Path(__file__).resolve().parents[2] / "training" / "recipes"

LAYER_TYPES = ("conv", "dwconv", "maxpool", "avgpool", "gap", "flatten", "dense", "dropout")
ACTIVATIONS = ("relu", "relu6", "none")
OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("cosine", "plateau", "constant")
KINDS = ("keras", "logreg")


class RecipeError(ValueError):
    """A recipe key is unknown or a value is out of range; the message names both."""


@dataclass(frozen=True)
class Layer:
    type: str
    filters: int = 0
    units: int = 0
    kernel: int = 3
    stride: int = 1
    padding: str = "same"
    batchnorm: bool = False
    activation: str = "relu"
    size: int = 2
    rate: float = 0.0
    depth_multiplier: int = 1


@dataclass(frozen=True)
class Augmentation:
    rotation: float = 0.0
    zoom: tuple[float, float] = (1.0, 1.0)
    aspect: tuple[float, float] = (1.0, 1.0)
    shift: float = 0.0
    shear: float = 0.0
    elastic_alpha: float = 0.0
    elastic_sigma: float = 4.0
    elastic_p: float = 0.0
    thickness_p: float = 0.0
    contrast: tuple[float, float] = (1.0, 1.0)
    noise: float = 0.0
    noise_max: float = 0.0
    fade: tuple[float, float] = (1.0, 1.0)
    fade_p: float = 0.0
    blur: float = 0.0
    blur_p: float = 0.0
    p: float = 1.0


@dataclass(frozen=True)
class Training:
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "adam"
    learning_rate: float = 0.001
    schedule: str = "cosine"
    warmup_epochs: int = 0
    l2: float = 0.0
    label_smoothing: float = 0.0
    validation: int = 5000
    early_stopping_patience: int = 0
    class_weights: bool = False
    subset: int = 0


@dataclass(frozen=True)
class Qat:
    enabled: bool = True
    epochs: int = 1
    learning_rate: float = 0.0002
    calibration: int = 1000


@dataclass(frozen=True)
class Adversarial:
    """FGSM adversarial training: ``ratio`` of every batch is replaced by its FGSM image at ``epsilon`` (0..1 scale)."""

    epsilon: float = 0.0
    ratio: float = 0.5


@dataclass(frozen=True)
class Distillation:
    """Knowledge distillation from ``teacher`` (a bundled model name, a .tflite, a Keras model or a run folder).

    The loss is ``alpha`` x cross-entropy on the labels + (1 - alpha) x T^2 x KL(teacher || student) at
    temperature T, the teacher's logits read from the input of its final SOFTMAX.
    """

    teacher: str = ""
    temperature: float = 4.0
    alpha: float = 0.3


@dataclass(frozen=True)
class Pruning:
    """Magnitude pruning (tensorflow-model-optimization): sparsity rises polynomially from 0 to ``sparsity``
    between ``begin_epoch`` and ``end_epoch`` of the float phase (0: the last epoch), kept through QAT."""

    sparsity: float = 0.0
    begin_epoch: int = 0
    end_epoch: int = 0
    frequency: int = 50


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str = ""
    kind: str = "keras"
    layers: tuple[Layer, ...] = ()
    training: Training = field(default_factory=Training)
    augmentation: Augmentation = field(default_factory=Augmentation)
    qat: Qat = field(default_factory=Qat)
    adversarial: Adversarial = field(default_factory=Adversarial)
    distillation: Distillation = field(default_factory=Distillation)
    pruning: Pruning = field(default_factory=Pruning)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_keys(section: str, data: dict[str, Any], cls: type) -> None:
    allowed = [f.name for f in fields(cls)]
    for key in data:
        if key not in allowed:
            raise RecipeError(f"unknown key '{section}{key}': allowed keys are {', '.join(allowed)}")


def _number(where: str, value: Any, lo: float, hi: float, integer: bool = False) -> Any:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise RecipeError(f"'{where}' must be {'an integer' if integer else 'a number'}, not {value!r}")
    if not lo <= value <= hi:
        raise RecipeError(f"'{where}' is {value}: allowed values are {lo} to {hi}")
    return value


def _choice(where: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise RecipeError(f"'{where}' is {value!r}: allowed values are {', '.join(allowed)}")
    return cast(str, value)  # one of the allowed strings


def _pair(where: str, value: Any, lo: float, hi: float) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise RecipeError(f"'{where}' must be a pair [low, high], not {value!r}")
    a, b = (_number(f"{where}[{i}]", v, lo, hi) for i, v in enumerate(value))
    if a > b:
        raise RecipeError(f"'{where}' must have low <= high, not {value!r}")
    return float(a), float(b)


def _bool(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise RecipeError(f"'{where}' must be true or false, not {value!r}")
    return value


def _layer(i: int, data: Any) -> Layer:
    where = f"layers[{i}]"
    if not isinstance(data, dict):
        raise RecipeError(f"'{where}' must be a mapping with a 'type' key")
    _check_keys(f"{where}.", data, Layer)
    kind = _choice(f"{where}.type", data.get("type"), LAYER_TYPES)
    layer = Layer(**data)
    if kind == "conv":
        _number(f"{where}.filters", layer.filters, 1, 1024, integer=True)
    if kind == "dense":
        _number(f"{where}.units", layer.units, 1, 4096, integer=True)
    if kind in ("conv", "dwconv"):
        _number(f"{where}.kernel", layer.kernel, 1, 7, integer=True)
        _number(f"{where}.stride", layer.stride, 1, 3, integer=True)
        _choice(f"{where}.padding", layer.padding, ("same", "valid"))
        _number(f"{where}.depth_multiplier", layer.depth_multiplier, 1, 8, integer=True)
    if kind in ("maxpool", "avgpool"):
        _number(f"{where}.size", layer.size, 1, 7, integer=True)
    if kind == "dropout":
        _number(f"{where}.rate", layer.rate, 0.0, 0.9)
    _choice(f"{where}.activation", layer.activation, ACTIVATIONS)
    _bool(f"{where}.batchnorm", layer.batchnorm)
    return layer


def recipe_from_dict(data: dict[str, Any], name: str = "recipe") -> Recipe:
    """Build and validate a Recipe; raises RecipeError naming the first bad key or value."""
    if not isinstance(data, dict):
        raise RecipeError("a recipe must be a mapping of keys to values")
    _check_keys("", data, Recipe)
    kind = _choice("kind", data.get("kind", "keras"), KINDS)
    sections: dict[str, Any] = {}
    for key, cls in (("training", Training), ("augmentation", Augmentation), ("qat", Qat),
                     ("adversarial", Adversarial), ("distillation", Distillation), ("pruning", Pruning)):
        section = data.get(key, {}) or {}
        if not isinstance(section, dict):
            raise RecipeError(f"'{key}' must be a mapping")
        _check_keys(f"{key}.", section, cls)
        sections[key] = section

    t = sections["training"]
    training = Training(**t)
    _number("training.epochs", training.epochs, 1, 500, integer=True)
    _number("training.batch_size", training.batch_size, 1, 8192, integer=True)
    _choice("training.optimizer", training.optimizer, OPTIMIZERS)
    _number("training.learning_rate", training.learning_rate, 1e-6, 1.0)
    _choice("training.schedule", training.schedule, SCHEDULES)
    _number("training.warmup_epochs", training.warmup_epochs, 0, training.epochs, integer=True)
    _number("training.l2", training.l2, 0.0, 0.1)
    _number("training.label_smoothing", training.label_smoothing, 0.0, 0.5)
    _number("training.validation", training.validation, 0, 20000, integer=True)
    _number("training.early_stopping_patience", training.early_stopping_patience, 0, 100, integer=True)
    _bool("training.class_weights", training.class_weights)
    _number("training.subset", training.subset, 0, 60000, integer=True)

    a = dict(sections["augmentation"])
    for pair, lo, hi in (("zoom", 0.5, 2.0), ("aspect", 0.5, 2.0), ("contrast", 0.05, 1.0), ("fade", 0.05, 1.0)):
        if pair in a:
            a[pair] = _pair(f"augmentation.{pair}", a[pair], lo, hi)
    aug = Augmentation(**a)
    _number("augmentation.rotation", aug.rotation, 0.0, 45.0)
    _number("augmentation.shift", aug.shift, 0.0, 0.3)
    _number("augmentation.shear", aug.shear, 0.0, 30.0)
    _number("augmentation.elastic_alpha", aug.elastic_alpha, 0.0, 40.0)
    _number("augmentation.elastic_sigma", aug.elastic_sigma, 1.0, 10.0)
    for key in ("elastic_p", "thickness_p", "fade_p", "blur_p", "p"):
        _number(f"augmentation.{key}", getattr(aug, key), 0.0, 1.0)
    _number("augmentation.noise", aug.noise, 0.0, 0.5)
    _number("augmentation.noise_max", aug.noise_max, 0.0, 0.5)
    if aug.noise_max and aug.noise_max < aug.noise:
        raise RecipeError(f"augmentation.noise_max ({aug.noise_max}) is below augmentation.noise ({aug.noise}): "
                          "noise_max is the top of the range the noise level is drawn from")
    _number("augmentation.blur", aug.blur, 0.0, 3.0)

    qat = Qat(**sections["qat"])
    _bool("qat.enabled", qat.enabled)
    _number("qat.epochs", qat.epochs, 0, 50, integer=True)
    _number("qat.learning_rate", qat.learning_rate, 1e-7, 0.1)
    _number("qat.calibration", qat.calibration, 10, 60000, integer=True)

    adversarial = Adversarial(**sections["adversarial"])
    _number("adversarial.epsilon", adversarial.epsilon, 0.0, 0.5)
    _number("adversarial.ratio", adversarial.ratio, 0.0, 1.0)

    distillation = Distillation(**sections["distillation"])
    if not isinstance(distillation.teacher, str):
        raise RecipeError(f"'distillation.teacher' must be a model name or path, not {distillation.teacher!r}")
    _number("distillation.temperature", distillation.temperature, 1.0, 20.0)
    _number("distillation.alpha", distillation.alpha, 0.0, 1.0)

    pruning = Pruning(**sections["pruning"])
    _number("pruning.sparsity", pruning.sparsity, 0.0, 0.95)
    _number("pruning.begin_epoch", pruning.begin_epoch, 0, training.epochs - 1, integer=True)
    _number("pruning.end_epoch", pruning.end_epoch, 0, training.epochs, integer=True)
    if pruning.end_epoch and pruning.end_epoch <= pruning.begin_epoch:
        raise RecipeError(f"'pruning.end_epoch' is {pruning.end_epoch}: it must be after begin_epoch "
                          f"({pruning.begin_epoch}), or 0 for the last epoch")
    _number("pruning.frequency", pruning.frequency, 1, 10000, integer=True)

    raw_layers = data.get("layers", [])
    if not isinstance(raw_layers, list):
        raise RecipeError("'layers' must be a list of layer mappings")
    layers = tuple(_layer(i, layer) for i, layer in enumerate(raw_layers))
    if kind == "keras":
        if not layers or layers[-1].type != "dense" or layers[-1].units != 10:
            raise RecipeError("'layers' must end with a dense layer of 10 units (one per digit)")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise RecipeError("'description' must be text")
    if kind == "logreg" and (adversarial.epsilon or distillation.teacher or pruning.sparsity):
        raise RecipeError("'adversarial', 'distillation' and 'pruning' need kind: keras (logreg trains with "
                          "scikit-learn)")
    return Recipe(str(data.get("name", name)), description, kind, layers, training, aug, qat, adversarial,
                  distillation, pruning)


def recipe_names() -> list[str]:
    """Names of the recipes that ship with edge-digits."""
    return sorted(p.stem for p in RECIPE_DIR.glob("*.yaml")) if RECIPE_DIR.is_dir() else []


def find_recipe(name_or_path: str) -> Path:
    """A recipe file by path, or by name in training/recipes/."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise RecipeError(f"recipe file {path} does not exist")
        return path
    candidate = RECIPE_DIR / f"{name_or_path}.yaml"
    if candidate.is_file():
        return candidate
    raise RecipeError(f"no recipe named {name_or_path!r}: allowed names are {', '.join(recipe_names())}, "
                      "or give a path to a .yaml file")


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``: mappings merge key by key, anything else (lists too) is replaced."""
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def read_recipe_data(name_or_path: str, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A recipe file's mapping, with its ``base`` recipe (a name or a path beside it) merged underneath."""
    import yaml

    path = find_recipe(name_or_path).resolve()
    if path in seen:
        raise RecipeError(f"recipe {path} is its own base: {' -> '.join(str(p) for p in (*seen, path))}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        return cast(dict[str, Any], data)  # not a mapping: returned as it is, for recipe_from_dict to reject
    data.setdefault("name", path.stem)
    if "base" not in data:
        return data
    base = data.pop("base")
    if not isinstance(base, str):
        raise RecipeError(f"'base' in {path} must be a recipe name or path, not {base!r}")
    beside = path.parent / base
    parent = read_recipe_data(str(beside) if beside.suffix in (".yaml", ".yml") else base, (*seen, path))
    return _merge(parent, data)


def load_recipe(name_or_path: str) -> Recipe:
    """Read and validate a recipe by name or path; ``base: NAME`` starts from another recipe and changes
    only what the file says (how the model-lab variants of ``micro`` are written)."""
    return recipe_from_dict(read_recipe_data(name_or_path))
