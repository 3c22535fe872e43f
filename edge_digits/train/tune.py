"""Constrained search: Optuna's TPE sampler over int8 CNNs and their training, under device budgets.

Two search spaces: ``micro`` (3x3 convolutions between max pools, the microcontroller shape) and ``pi``
(stride-2 convolutions straight to 7x7 and global average pooling, the shape XNNPACK runs fastest per MAC).
Every trial is measured as it would ship: its int8 .tflite bytes (flash), the TFLM arena it needs, its
MACs and, given a latency budget, its per-image latency over a reference model's (XNNPACK, one thread,
batch 1 and 20, the two models called alternately so machine noise hits both). Before training they are
measured on the untrained network (flash and arena a lower bound: the converter stores identical untrained
constants once; latency the trained graph's), so a trial surely over budget costs seconds and is marked infeasible
for the sampler; a trial within budget is trained with quantization-aware fine-tuning, measured again as
exported, and scored by its int8 TFLite accuracy on the held-out validation split (the test set only
reports). The study lives in a relational database: a local SQLite file by default, or a shared server
(``postgresql://...``) so that workers on several machines add trials to one study.
"""

from __future__ import annotations

import re
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from edge_digits import fileio
from edge_digits.fileio import atomic_write_bytes, atomic_write_json
from edge_digits.train.recipe import Recipe, RecipeError, read_recipe_data, recipe_from_dict

if TYPE_CHECKING:
    from edge_digits.train.trainer import MnistData

FILTERS = {"c1": (4, 6, 8, 10, 12), "c2": (8, 12, 16, 20, 24), "c3": (0, 8, 12, 16, 24, 32),
           "c5": (0, 16, 24, 32), "c4": (24, 32, 40, 48, 64)}
PI_FILTERS = {"c1": (8, 12, 16, 24), "k1": (3, 5), "c2": (16, 24, 32, 48), "c3": (32, 48, 64, 80),
              "c4": (0, 32, 64, 96)}
LATENCY_BATCHES = (1, 20)
LEARNING_RATE = (0.002, 0.012)
TRAINING = {"label_smoothing": (0.0, 0.05, 0.1), "l2": (0.0, 1e-5, 1e-4)}


class TuneError(ValueError):
    """A budget, base recipe or storage the search cannot use; the message says what to give instead."""


def parse_bytes(text: str) -> int:
    """:func:`fileio.parse_bytes`, raising TuneError for a budget that is not a size."""
    try:
        return fileio.parse_bytes(text)
    except ValueError as exc:
        raise TuneError(str(exc)) from exc


@dataclass(frozen=True)
class Budget:
    """Limits a trial must meet; ``None`` leaves that figure free."""

    max_flash: int | None = None
    max_arena: int | None = None
    max_macs: int | None = None
    max_latency_ratio: float | None = None   # per-image latency over the reference model's
    latency_reference: str = "seed-cnn"

    def violations(self, flash: int, arena: int, macs: int, latency_ratio: float | None = None) -> list[float]:
        """Optuna constraint values: positive where a limit is exceeded, by the fraction it is exceeded."""
        out = []
        for value, limit in ((flash, self.max_flash), (arena, self.max_arena), (macs, self.max_macs),
                             (latency_ratio, self.max_latency_ratio)):
            out.append((value - limit) / limit if limit and value is not None else -1.0)
        return out


@dataclass
class TrialResult:
    """One trial as the study recorded it."""

    number: int
    params: dict[str, Any]
    state: str
    feasible: bool
    flash_bytes: int | None = None
    arena_bytes: int | None = None
    macs: int | None = None
    val_accuracy: float | None = None
    test_accuracy: float | None = None
    seconds: float | None = None
    host: str = ""
    run_dir: str = ""
    latency_ratio: float | None = None


@dataclass
class TuneResult:
    """The whole study after this worker's trials: every trial, the Pareto front and the best feasible one."""

    study_name: str
    storage: str
    budget: Budget
    trials: list[TrialResult]
    pareto: list[TrialResult]
    best: TrialResult | None
    files: list[Path] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"study": self.study_name, "storage": _redact(self.storage), "budget": asdict(self.budget),
                "trials": [asdict(t) for t in self.trials], "pareto": [t.number for t in self.pareto],
                "best": self.best.number if self.best else None}


def _redact(storage: str) -> str:
    """The storage URL without its password, for reports."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", storage)


def space_layers(params: dict[str, Any]) -> list[dict[str, Any]]:
    """The micro-shaped network of a trial: conv c1, pool, conv c2, [conv c3], pool, [conv c5], conv c4,
    7x7 max pool, dense 10; each conv 3x3 with batch norm and ReLU (ops TFLM and the C engine run well)."""
    conv: Callable[[Any], dict[str, Any]]
    conv = lambda n: {"type": "conv", "filters": int(n), "batchnorm": True}  # noqa: E731
    layers = [conv(params["c1"]), {"type": "maxpool", "size": 2}, conv(params["c2"])]
    if params["c3"]:
        layers.append(conv(params["c3"]))
    layers.append({"type": "maxpool", "size": 2})
    if params["c5"]:
        layers.append(conv(params["c5"]))
    layers += [conv(params["c4"]), {"type": "maxpool", "size": 7}, {"type": "flatten"},
               {"type": "dense", "units": 10, "activation": "none"}]
    return layers


def pi_layers(params: dict[str, Any]) -> list[dict[str, Any]]:
    """The Pi-shaped network of a trial: a stride-2 k1 x k1 conv c1 on the 28x28 input, a stride-2 3x3 conv
    c2, a 3x3 conv c3 at 7x7, [a 1x1 conv c4], global average pooling, dropout 0.1, dense 10; batch norm and
    ReLU after each conv. No 28x28 output map and few ops: XNNPACK's per-op cost stays small."""
    def conv(filters: Any, kernel: int = 3, stride: int = 1) -> dict[str, Any]:
        return {"type": "conv", "filters": int(filters), "kernel": int(kernel), "stride": stride, "batchnorm": True}

    layers = [conv(params["c1"], params["k1"], 2), conv(params["c2"], 3, 2), conv(params["c3"])]
    if params["c4"]:
        layers.append(conv(params["c4"], 1))
    return layers + [{"type": "gap"}, {"type": "dropout", "rate": 0.1},
                     {"type": "dense", "units": 10, "activation": "none"}]


SPACES: dict[str, tuple[dict[str, tuple[int, ...]], Callable[[dict[str, Any]], list[dict[str, Any]]]]] = {
    "micro": (FILTERS, space_layers), "pi": (PI_FILTERS, pi_layers)}


def _space(name: str) -> tuple[dict[str, tuple[int, ...]], Callable[[dict[str, Any]], list[dict[str, Any]]]]:
    if name not in SPACES:
        raise TuneError(f"unknown search space {name!r}: choose from {', '.join(SPACES)}")
    return SPACES[name]


def _pi_point(recipe: Recipe) -> dict[str, Any] | None:
    """The pi-space filters of a recipe's convs, if its conv sequence has that shape."""
    convs = [layer for layer in recipe.layers if layer.type == "conv"]
    if len(convs) not in (3, 4) or [c.stride for c in convs[:3]] != [2, 2, 1]:
        return None
    return {"c1": convs[0].filters, "k1": convs[0].kernel, "c2": convs[1].filters, "c3": convs[2].filters,
            "c4": convs[3].filters if len(convs) == 4 else 0}


def base_params(recipe: Recipe, space: str = "micro") -> dict[str, Any] | None:
    """The point of ``space`` of a recipe whose layers have that space's shape (micro does for "micro", the
    bundled standard for "pi"), else None."""
    filters, layers_of = _space(space)
    if space == "pi":
        point = _pi_point(recipe)
        if point is None:
            return None
        params: dict[str, Any] = dict(point)
    else:
        convs = [layer.filters for layer in recipe.layers if layer.type == "conv"]
        pools = [i for i, layer in enumerate(recipe.layers) if layer.type == "maxpool"]
        if len(convs) < 3 or len(pools) != 3:
            return None
        before = sum(1 for layer in recipe.layers[pools[0]:pools[1]] if layer.type == "conv")
        after = sum(1 for layer in recipe.layers[pools[1]:pools[2]] if layer.type == "conv")
        params = {"c1": convs[0], "c2": convs[1], "c3": convs[2] if before == 2 else 0,
                  "c5": convs[-2] if after == 2 else 0, "c4": convs[-1]}
    params["learning_rate"] = recipe.training.learning_rate
    params.update({k: getattr(recipe.training, k) for k in TRAINING})
    if any(params[k] not in choices for k, choices in (*filters.items(), *TRAINING.items())):
        return None
    if not LEARNING_RATE[0] <= params["learning_rate"] <= LEARNING_RATE[1]:
        return None
    recipe_layers = recipe_from_dict({"name": "x", "layers": layers_of(params)}).layers
    return params if recipe_layers == recipe.layers else None


def trial_recipe(base: dict[str, Any], params: dict[str, Any], name: str, space: str = "micro") -> dict[str, Any]:
    """The base recipe's training, augmentation and QAT with the trial's layers and learning rate."""
    data: dict[str, Any] = {"name": name, "description": f"found by edge-digits tune: {params}",
                            "layers": _space(space)[1](params)}
    data.update({k: v for k, v in base.items() if k not in ("layers", "name", "description")})
    data["training"] = dict(base.get("training") or {}, learning_rate=float(params["learning_rate"]),
                            **{k: params[k] for k in TRAINING if k in params})
    return data


def measure_shape(recipe: Recipe, calibration: np.ndarray) -> tuple[int, int, int]:
    """Flash (int8 .tflite bytes), TFLM arena bytes and MACs of a recipe's untrained network, exported as
    training would export it (through the QAT wrapper when the recipe uses QAT). Flash and arena are lower
    bounds of the trained model's (a few per cent under: untrained biases are all zero and share a buffer)."""
    int8, arena, macs = export_untrained(recipe, calibration)
    return len(int8), arena, macs


def export_untrained(recipe: Recipe, calibration: np.ndarray) -> tuple[bytes, int, int]:
    """The int8 .tflite of a recipe's untrained network (as :func:`measure_shape` exports it), its TFLM
    arena bytes and its MACs: the same graph as the trained model's, so its latency is the trained one's."""
    from edge_digits.runtime import tflm
    from edge_digits.train.techniques import quantize_model
    from edge_digits.train.tflite import to_tflite_int8
    from edge_digits.train.trainer import build_model, count_macs

    model = build_model(recipe)
    exported = quantize_model(model, keep_sparsity=False) if recipe.qat.enabled and recipe.qat.epochs else model
    int8 = to_tflite_int8(exported, calibration)
    return int8, tflm.measure_arena(int8).total_bytes, count_macs(model)


def latency_ratio(model: bytes, reference: bytes, batches: tuple[int, ...] = LATENCY_BATCHES,
                  rounds: int = 60, calls: int = 5) -> float:
    """The model's per-image latency over the reference's, the worse of ``batches``: each on the first
    TFLite interpreter installed (LiteRT with XNNPACK), one thread, median over ``rounds`` in which the two
    models run ``calls`` times each, alternately, so that a busy machine slows both alike."""
    import tempfile

    from edge_digits.runtime import BACKENDS, resolve_backend

    backend = BACKENDS[resolve_backend()]
    with tempfile.TemporaryDirectory(prefix="tune-latency-") as tmp:
        paths = [Path(tmp) / "model.tflite", Path(tmp) / "reference.tflite"]
        for path, data in zip(paths, (model, reference)):
            path.write_bytes(data)
        sessions = [backend.open(path, 1) for path in paths]
        worst = 0.0
        for batch in batches:
            x = np.zeros((batch, 28, 28, 1), np.int8)
            times: list[list[float]] = [[], []]
            for session in sessions:
                session.run(x)   # warm-up: the first call plans and packs
            for _ in range(rounds):
                for session, out in zip(sessions, times):
                    start = time.perf_counter()
                    for _ in range(calls):
                        session.run(x)
                    out.append(time.perf_counter() - start)
            worst = max(worst, float(np.median(times[0]) / np.median(times[1])))
    return worst


def _sampler(seed: int | None) -> Any:
    """TPE that starts from 6 random trials; constant liar keeps parallel workers off each other's points,
    and the trials' constraints (set with ``Trial.set_constraint``) steer it away from infeasible ones."""
    import optuna

    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=6)


def _storage(storage: str | None, out: Path) -> str:
    if storage:
        if not re.match(r"^(sqlite|postgresql(\+\w+)?|mysql(\+\w+)?)://", storage):
            raise TuneError(f"storage {_redact(storage)!r} is not a database URL: give sqlite:///PATH.db or "
                            "postgresql://USER:PASSWORD@HOST:PORT/DATABASE")
        return storage
    return f"sqlite:///{(out / 'study.db').resolve()}"


def _result(trial: Any) -> TrialResult:
    a = trial.user_attrs
    return TrialResult(trial.number, dict(trial.params), trial.state.name, bool(a.get("feasible", False)),
                       a.get("flash_bytes"), a.get("arena_bytes"), a.get("macs"), a.get("val_accuracy"),
                       a.get("test_accuracy"), a.get("seconds"), a.get("host", ""), a.get("run_dir", ""),
                       a.get("latency_ratio"))


def _scored(trials: list[TrialResult]) -> list[TrialResult]:
    """Trials that met the budget and were trained and scored."""
    return [t for t in trials if t.feasible and t.val_accuracy is not None]


def pareto_front(trials: list[TrialResult]) -> list[TrialResult]:
    """Feasible trained trials that no other beats on validation accuracy, flash, arena and MACs at once."""
    done = _scored(trials)

    def dominates(a: TrialResult, b: TrialResult) -> bool:
        # _scored keeps trials that met the budget and were scored: all four figures are set
        ka = (-cast(float, a.val_accuracy), cast(int, a.flash_bytes), cast(int, a.arena_bytes), cast(int, a.macs))
        kb = (-cast(float, b.val_accuracy), cast(int, b.flash_bytes), cast(int, b.arena_bytes), cast(int, b.macs))
        return all(x <= y for x, y in zip(ka, kb)) and ka != kb

    front = [t for t in done if not any(dominates(o, t) for o in done)]
    return sorted(front, key=lambda t: (t.flash_bytes, -cast(float, t.val_accuracy)))


def best_trial(trials: list[TrialResult]) -> TrialResult | None:
    """The feasible trial with the highest validation accuracy; fewer flash bytes break ties."""
    done = _scored(trials)
    return max(done, key=lambda t: (t.val_accuracy, -cast(int, t.flash_bytes), -t.number)) if done else None


def _open_study(name: str, url: str, sampler_seed: int | None, attempts: int = 6) -> Any:
    """Create or load the study. Workers that start together on a new database race to create its tables
    (PostgreSQL answers one of them with a unique-key violation, or, when both create the tables at once,
    with DuplicateTable: "relation ... already exists"); the loser waits a moment and loads."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    for attempt in range(attempts):
        try:
            return optuna.create_study(study_name=name, storage=url, load_if_exists=True,
                                       directions=["maximize", "minimize"], sampler=_sampler(sampler_seed))
        except SQLAlchemyError as exc:
            lost_race = "IntegrityError" in type(exc).__name__ or "already exists" in str(exc)
            racing = lost_race and attempt + 1 < attempts
            if racing:
                time.sleep(0.5 * (attempt + 1))
                continue
            raise TuneError(f"cannot open the study in {_redact(url)}: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
        except (ImportError, ValueError) as exc:  # no driver for the URL, or a URL SQLAlchemy cannot parse
            raise TuneError(f"cannot open the study in {_redact(url)}: {type(exc).__name__}: {exc}") from exc
    raise TuneError(f"cannot open the study in {_redact(url)} after {attempts} attempts")


def _judge(trial: Any, budget: Budget, flash: int, arena: int, macs: int, latency: float | None = None) -> bool:
    """Record the trial's constraints and whether it meets the budget (once per trial: Optuna keeps the
    first constraint value it is given)."""
    constraints = budget.violations(flash, arena, macs, latency)
    for key, value in zip(("flash", "arena", "macs", "latency"), constraints):
        trial.set_constraint(key, value)
    feasible = all(c <= 0 for c in constraints)
    trial.set_user_attr("feasible", feasible)
    return feasible


def run_tune(base: str, out: Path, trials: int, budget: Budget, epochs: int | None = None,
             storage: str | None = None, study_name: str = "edge-digits", seed: int = 0,
             sampler_seed: int | None = None, data: MnistData | None = None, verbose: int = 0,
             include_base: bool = True, space: str = "micro") -> TuneResult:
    """Add ``trials`` trials to the study (created or continued) and write its report, plot and best recipe."""
    import optuna

    from edge_digits.data import load_mnist
    from edge_digits.runtime import tflm
    from edge_digits.train.trainer import split_data, tflite_predictions, train

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        base_dict = read_recipe_data(base)
        base_recipe = recipe_from_dict(base_dict)
    except RecipeError as exc:
        raise TuneError(f"base recipe: {exc}") from exc
    if base_recipe.kind != "keras":
        raise TuneError(f"base recipe {base!r} is kind {base_recipe.kind}: tune searches Keras CNNs")
    filters, _ = _space(space)
    reference = None
    if budget.max_latency_ratio is not None:
        from edge_digits.models import ModelNotFound, resolve_model

        try:
            reference = Path(resolve_model(budget.latency_reference)).read_bytes()
        except (ModelNotFound, OSError) as exc:
            raise TuneError(f"latency reference {budget.latency_reference!r}: {exc}") from exc
    url = _storage(storage, out)
    data = data if data is not None else load_mnist()
    x_train, y_train, x_test, y_test = data
    _, _, xv, yv = split_data(x_train, y_train, base_recipe.training.validation, seed, base_recipe.training.subset)
    if not len(xv):
        raise TuneError("the base recipe holds out no validation images (training.validation: 0): trials are "
                        "scored on the validation split, never on the test set")
    calibration = x_train[np.random.default_rng(seed).choice(len(x_train), 200, replace=False)]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    study = _open_study(study_name, url, sampler_seed)
    start = base_params(base_recipe, space) if include_base else None
    if start is not None and not study.trials:
        study.enqueue_trial(start, user_attrs={"enqueued": f"base recipe {base_recipe.name}"}, skip_if_exists=True)
    host = socket.gethostname()

    def objective(trial: Any) -> tuple[float, float]:
        params = {k: trial.suggest_categorical(k, v) for k, v in filters.items()}
        params["learning_rate"] = trial.suggest_float("learning_rate", *LEARNING_RATE, log=True)
        params.update({k: trial.suggest_categorical(k, v) for k, v in TRAINING.items()})
        recipe = recipe_from_dict(trial_recipe(base_dict, params, f"{base_recipe.name}-t{trial.number}", space))
        untrained, arena, macs = export_untrained(recipe, calibration)
        flash = len(untrained)
        latency = latency_ratio(untrained, reference) if reference is not None else None
        for key, value in (("flash_bytes", flash), ("arena_bytes", arena), ("macs", macs),
                           ("latency_ratio", latency), ("host", host)):
            trial.set_user_attr(key, value)
        if any(c > 0 for c in budget.violations(flash, arena, macs, latency)):
            _judge(trial, budget, flash, arena, macs, latency)  # surely over budget: not trained
            return 0.0, float(flash)
        run_dir = out / f"trial-{trial.number:03d}"
        started = time.time()
        result = train(recipe, run_dir, seed=seed, verbose=verbose, data=data, epochs=epochs)
        int8 = (run_dir / "model_int8.tflite").read_bytes()
        flash, arena = len(int8), tflm.measure_arena(int8).total_bytes  # exact, as exported
        trial.set_user_attr("flash_bytes", flash)
        trial.set_user_attr("arena_bytes", arena)
        _judge(trial, budget, flash, arena, macs, latency)  # latency: of the same graph, untrained
        val = float(np.mean(tflite_predictions(int8, xv) == yv))
        trial.set_user_attr("val_accuracy", val)
        trial.set_user_attr("test_accuracy", result.report["accuracy"]["int8_tflite"])
        trial.set_user_attr("seconds", round(time.time() - started, 1))
        trial.set_user_attr("run_dir", str(run_dir.resolve()))
        return val, float(flash)

    study.optimize(objective, n_trials=trials, catch=(RecipeError,))
    results = [_result(t) for t in study.get_trials(deepcopy=False)]
    front = pareto_front(results)
    best = best_trial(results)
    tune = TuneResult(study_name, url, budget, results, front, best)
    tune.files = write_report(tune, base_dict, base_recipe, epochs, out, space)
    return tune


def _kb(value: int | None) -> str:
    return "-" if value is None else f"{value / 1024:.1f} KB"


def _network(params: dict[str, Any]) -> str:
    """A trial's layer choices in one cell, e.g. ``c1=16 k1=5 c2=32 c3=64 c4=64``."""
    return " ".join(f"{k}={v}" for k, v in params.items() if k in FILTERS or k in PI_FILTERS)


def report_markdown(result: TuneResult) -> str:
    """The study as Markdown: budgets, the Pareto front and every trial."""
    b = result.budget
    latency = f"{b.max_latency_ratio}x {b.latency_reference}'s" if b.max_latency_ratio else "-"
    lines = [f"# tune: study {result.study_name}", "",
             f"Budgets: flash {_kb(b.max_flash)}, arena {_kb(b.max_arena)}, "
             f"MACs {b.max_macs if b.max_macs else '-'}, latency {latency} (XNNPACK, one thread, the worse of "
             "batch 1 and 20). Score: int8 TFLite accuracy on the validation split; test accuracy only reported.",
             ""]
    header = ["| trial | network | lr | smoothing | l2 | flash | arena | MACs | latency | val int8 | test int8 | s |",
              "|" + " ---: |" * 12]

    def row(t: TrialResult) -> str:
        p = t.params
        acc: Callable[[float | None], str] = lambda v: "-" if v is None else f"{v:.2%}"  # noqa: E731
        mark = "" if t.feasible else " (over budget)" if t.flash_bytes is not None else f" ({t.state.lower()})"
        lat = "-" if t.latency_ratio is None else f"{t.latency_ratio:.2f}x"
        return (f"| {t.number}{mark} | {_network(p)} | {p.get('learning_rate', 0):.4f} | "
                f"{p.get('label_smoothing', '-')} | {p.get('l2', '-')} | {_kb(t.flash_bytes)} | "
                f"{_kb(t.arena_bytes)} | {t.macs if t.macs is not None else '-'} | {lat} | {acc(t.val_accuracy)} | "
                f"{acc(t.test_accuracy)} | {t.seconds if t.seconds is not None else '-'} |")

    if result.best:
        lines += [f"Best feasible trial: {result.best.number} (val {result.best.val_accuracy:.2%}, "
                  f"test {result.best.test_accuracy:.2%}, {_kb(result.best.flash_bytes)} flash, "
                  f"{_kb(result.best.arena_bytes)} arena), written as best.yaml.", ""]
    else:
        lines += ["No trial met the budgets and finished training.", ""]
    lines += ["## Pareto front (validation accuracy up; flash, arena, MACs down)", "", *header,
              *(row(t) for t in result.pareto), "", "## All trials", "", *header, *(row(t) for t in result.trials)]
    return "\n".join(lines) + "\n"


def write_report(result: TuneResult, base_dict: dict[str, Any], base_recipe: Recipe, epochs: int | None,
                 out: Path, space: str = "micro") -> list[Path]:
    """tune.json, tune.md, pareto.png, and best.yaml (the best trial's recipe at the base's full epochs)."""
    import yaml

    from edge_digits import plots

    files = [atomic_write_json(out / "tune.json", result.to_dict()),
             atomic_write_bytes(out / "tune.md", report_markdown(result).encode())]
    trained = [t for t in result.trials if t.val_accuracy is not None]
    files.append(plots.pareto(
        [(t.flash_bytes, t.val_accuracy, t.feasible) for t in result.trials if t.flash_bytes is not None],
        [(cast(int, t.flash_bytes), cast(float, t.val_accuracy)) for t in result.pareto],  # the front is scored
        result.budget.max_flash, out / "pareto.png",
        f"{len(trained)} trained of {len(result.trials)} trials"))
    if result.best:
        recipe = trial_recipe(base_dict, result.best.params, f"{base_recipe.name}-tuned", space)
        note = (f"# Found by edge-digits tune (study {result.study_name}, trial {result.best.number}, "
                f"{epochs or base_recipe.training.epochs} epochs per trial): validation int8 "
                f"{result.best.val_accuracy:.2%}, flash {result.best.flash_bytes} B, arena "
                f"{result.best.arena_bytes} B. Train it: edge-digits train --recipe best.yaml --out DIR\n")
        text = note + yaml.safe_dump(recipe, sort_keys=False)
        files.append(atomic_write_bytes(out / "best.yaml", text.encode()))
    return files


__all__ = ["SPACES", "Budget", "TrialResult", "TuneError", "TuneResult", "base_params", "best_trial",
           "export_untrained", "latency_ratio", "measure_shape", "parse_bytes", "pareto_front", "pi_layers",
           "run_tune", "space_layers", "trial_recipe"]
