"""What the commands share: the group and its error, output-path checks, and the options several commands take."""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from edge_digits import __version__, power
from edge_digits.runtime import registry as runtime_registry

if TYPE_CHECKING:
    from edge_digits.power import PowerMeter
    from edge_digits.vision.reader import DigitClassifier


class EdgeDigitsError(click.ClickException):
    """An expected failure: printed as ``Error: message`` with exit code 1."""


# Requirements whose import name is not their distribution name (the rest import as the name with - as _).
_IMPORT_NAMES = {"pyserial": "serial", "scikit-learn": "sklearn", "pyyaml": "yaml", "tensorflow-cpu": "tensorflow",
                 "paho-mqtt": "paho", "opencv-python-headless": "cv2"}


def _import_name(requirement: str) -> str:
    """The top-level module a requirement such as ``psycopg[binary]>=3.2`` installs.

    >>> _import_name("tflite-micro"), _import_name("pyserial>=3.5"), _import_name("psycopg[binary]>=3.2")
    ('tflite_micro', 'serial', 'psycopg')
    """
    name = re.split(r"[\s\[<>=!~(]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")
    return _IMPORT_NAMES.get(name, name.replace("-", "_").replace(".", "_"))


def install_hint(module: str) -> str | None:
    """What to install for a missing third-party ``module``, read from edge-digits' installed requirements
    (pyproject.toml's dependencies and extras): the lightest extra that brings it, or the requirement itself
    for a base dependency; None for a module no requirement brings (or without installed metadata)."""
    from importlib import metadata

    try:
        requirements = metadata.requires("edge-digits") or []
    except metadata.PackageNotFoundError:
        return None
    top = module.partition(".")[0]
    sizes: Counter[str] = Counter()
    bringing: list[str] = []
    base: str | None = None
    for line in requirements:
        spec, _, marker = line.partition(";")
        found = re.search(r"""extra\s*==\s*["']([^"']+)["']""", marker)
        extra = found.group(1) if found else None
        if extra is not None:
            sizes[extra] += 1
        if _import_name(spec) == top:
            if extra is None:
                base = spec.strip()
            else:
                bringing.append(extra)
    if bringing:
        return f"pip install 'edge-digits[{min(bringing, key=lambda e: sizes[e])}]'"
    if base is not None:
        return f"pip install '{base}' (a dependency of edge-digits: reinstalling edge-digits brings it)"
    return None


class _Main(click.Group):
    """The command group: a file or disk error that a command did not expect (a full disk, a folder that
    vanished) is one line naming the path, exit 1, not a traceback; so is a Python module that an extra (or
    a dependency) brings and that is not installed, with the ``pip install`` that brings it."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except OSError as exc:
            where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
            raise EdgeDigitsError(f"{where}{exc.strerror or exc}") from exc
        except ModuleNotFoundError as exc:
            hint = install_hint(exc.name or "")
            if hint is None:   # not one of our requirements (a bug, say): the traceback says more
                raise
            raise EdgeDigitsError(f"the Python module {exc.name} is not installed: {hint}") from exc


def _nearest_existing(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _writable(value: Path | None, flag: str, folder: bool) -> Path | None:
    """Check an output path before any work: its folder is (or can be made) a writable folder."""
    if value is None:
        return None
    path = Path(value)
    if folder and path.exists() and not path.is_dir():
        raise EdgeDigitsError(f"{flag} {path}: it is a file, not a folder")
    if not folder and path.is_dir():
        raise EdgeDigitsError(f"{flag} {path}: it is a folder; give a file name")
    base = _nearest_existing(path if folder else path.parent)
    if not base.is_dir():
        raise EdgeDigitsError(f"{flag} {path}: {base} is a file, not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        raise EdgeDigitsError(f"{flag} {path}: {base} is not writable")
    return path


def check_out_dir(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    return _writable(value, "/".join(param.opts), folder=True)


def check_out_file(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    return _writable(value, "/".join(param.opts), folder=False)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="edge-digits")
def main() -> None:
    """Handwritten-digit recognition from training to a Pi camera and a microcontroller."""


# the runtime registry (it imports neither numpy nor an interpreter, so `--help` stays light)
BACKEND_CHOICES = list(runtime_registry.CHOICES)
SERVE_BACKEND_CHOICES = list(runtime_registry.SERVE_CHOICES)
cache_option = click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the IDX files live (default: $EDGE_DIGITS_DATA, else the user cache folder).",
)


def parse_size(ctx: click.Context, param: click.Parameter | None, value: str | None) -> int | None:
    from edge_digits.fileio import parse_bytes

    try:
        return parse_bytes(value) if value is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param=param) from exc


def resolve_model_arg(model: Path | str | None, default: str) -> Path:
    from edge_digits.models import ModelNotFound, resolve_model

    try:
        return resolve_model(model, default)
    except ModelNotFound as exc:
        raise EdgeDigitsError(str(exc)) from exc


POWER_OPTIONS = [
    click.option("--power-meter", type=click.Choice(list(power.METERS)),
                 default="none", show_default=True,
                 help="Where power readings come from (auto: the first meter that reads)."),
    click.option("--i2c-bus", type=int, default=1, show_default=True, help="I2C bus of an INA219/INA260."),
    click.option("--i2c-address", type=lambda v: int(v, 0), default="0x40", show_default=True),
    click.option("--shunt-ohms", type=float, default=0.1, show_default=True, help="INA219 shunt resistor."),
]


def with_power_options(f: Callable[..., None]) -> Callable[..., None]:
    """Add --power-meter, --i2c-bus, --i2c-address and --shunt-ohms to a command."""
    for option in reversed(POWER_OPTIONS):
        f = option(f)
    return f


def open_meter_or_warn(kind: str, i2c_bus: int, i2c_address: int, shunt_ohms: float) -> PowerMeter | None:
    """The chosen power meter, or None with a warning when it cannot be read."""
    try:
        meter = power.open_meter(kind, i2c_bus, i2c_address, shunt_ohms)
    except power.PowerMeterError as exc:
        click.echo(f"warning: {exc}; running without power figures", err=True)
        return None
    if meter is not None:
        click.echo(f"power meter: {meter.name}", err=True)
    return meter


def parse_int_list(ctx: click.Context, param: click.Parameter, value: str) -> list[int]:
    try:
        items = [int(v) for v in value.split(",") if v.strip()]
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers") from exc
    if not items or min(items) < 1:
        raise click.BadParameter("give positive integers, e.g. 1,2,4")
    return items


MODEL_OPTIONS = [
    click.option("--model", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="An int8 .tflite (or .onnx) digit model, or standard/micro (default: standard)."),
    click.option("--backend", type=click.Choice(BACKEND_CHOICES), default="auto", show_default=True,
                 help="Interpreter: auto tries ai-edge-litert, then tflite-runtime, then tensorflow.lite, then "
                      "native (the generated C engine, compiled with the system C compiler on first use; "
                      "onnxruntime for an .onnx model)."),
    click.option("--threads", type=click.IntRange(1, 64), default=1, show_default=True,
                 help="Interpreter threads (XNNPACK; the native engine runs one)."),
]


def page_options(f: Callable[..., None]) -> Callable[..., None]:
    """Add --page, --reject and --stable (how a camera scene is read) to a command."""
    f = click.option("--stable", type=(click.IntRange(1, 100), click.IntRange(1, 100)), default=(3, 5),
                     show_default=True, metavar="K N",
                     help="Live sources: a string is settled when read in K of the last N frames.")(f)
    f = click.option("--reject", default="auto", show_default=True, metavar="auto|off|MODEL",
                     help="Drop glyphs that are not digits: the bundled rejection model, none, or a .tflite "
                          "from train-reject.")(f)
    return click.option("--page", default="auto", show_default=True, metavar="auto|off|x0,y0,...,x3,y3",
                        help="Read only the sheet of paper: find and track it, the whole frame, or a fixed "
                             "mount's page corners in frame pixels.")(f)


def with_model_options(f: Callable[..., None]) -> Callable[..., None]:
    """Add --model, --backend and --threads to a command."""
    for option in reversed(MODEL_OPTIONS):
        f = option(f)
    return f


def load_digit_classifier(model: Path | None, backend: str, threads: int) -> DigitClassifier:
    """Load the classifier and say on stderr which backend and delegate run it."""
    from edge_digits.vision.reader import ReaderError, load_classifier

    try:
        clf = load_classifier(model, backend=backend, threads=threads)
    except (ReaderError, OSError, ValueError, RuntimeError) as exc:
        raise EdgeDigitsError(str(exc)) from exc
    delegate = getattr(clf, "delegate", None)
    click.echo(f"backend: {getattr(clf, 'backend', type(clf).__name__)}"
               + (f", delegate: {delegate}" if delegate else "") + f", threads: {threads}", err=True)
    return clf
