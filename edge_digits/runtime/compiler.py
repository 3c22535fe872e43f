"""The host C compiler that the ``native`` backend builds the generated engine with: which one, and who it is.

``$CC`` names it (split as a shell would, so ``ccache gcc`` works), else
``cc``. Its identity (``-dumpmachine`` and the first line of ``--version``)
goes into the native cache key, so a new compiler builds a new library.
Nothing here imports numpy or the generator: the registry asks
:func:`available` when it lists the backends.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT = "cc"
INSTALL_HINT = "install one (apt install gcc) or set $CC to a C compiler"


class CompilerError(RuntimeError):
    """No C compiler is on PATH, or it does not answer as one."""


def command(env: Mapping[str, str] | None = None) -> list[str]:
    """The compiler command as configured in ``env`` (default: the environment): ``$CC`` split into words,
    else ``cc``.

    >>> command({"CC": "ccache gcc"}), command({})
    (['ccache', 'gcc'], ['cc'])
    """
    return shlex.split((os.environ if env is None else env).get("CC", "")) or [DEFAULT]


def find() -> list[str] | None:
    """The compiler command with its program resolved on PATH, or None when the program is not there."""
    cmd = command()
    program = shutil.which(cmd[0])
    return [program, *cmd[1:]] if program else None


def available() -> bool:
    """Whether a C compiler is on PATH (the ``native`` backend's availability probe)."""
    return find() is not None


def require() -> list[str]:
    """The resolved compiler command, or :class:`CompilerError` saying how to get one."""
    found = find()
    if found is None:
        raise CompilerError(f"the native backend compiles the model's C engine, but there is no C compiler "
                            f"{' '.join(command())!r} on PATH: {INSTALL_HINT}")
    return found


@dataclass(frozen=True)
class CompilerId:
    """Who a compiler is: its command, target triple (``-dumpmachine``) and ``--version`` first line."""

    command: tuple[str, ...]
    machine: str
    version: str

    @property
    def short(self) -> str:
        """Family and version for people (see :func:`describe`)."""
        return describe(self.version)


def describe(version: str) -> str:
    """A compiler's family and version from the first line of its ``--version``.

    >>> describe("cc (Debian 12.2.0-14+deb12u1) 12.2.0"), describe("Debian clang version 14.0.6")
    ('gcc 12.2.0', 'clang 14.0.6')
    """
    clang = re.search(r"clang version (\d+(?:\.\d+)*)", version)
    if clang:
        return f"clang {clang.group(1)}"
    words = version.split()
    if words and re.fullmatch(r"\d+(?:\.\d+)+", words[-1]):
        return f"gcc {words[-1]}"
    return version


def _ask(cmd: tuple[str, ...], flag: str) -> str:
    try:
        proc = subprocess.run([*cmd, flag], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CompilerError(f"the C compiler {' '.join(cmd)!r} did not answer {flag}: {exc}") from exc
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise CompilerError(f"the C compiler {' '.join(cmd)!r} did not answer {flag}: "
                            f"{(proc.stderr or proc.stdout).strip()[-300:]}")
    return lines[0].strip()


@functools.lru_cache(maxsize=16)
def _identify(cmd: tuple[str, ...]) -> CompilerId:
    return CompilerId(cmd, _ask(cmd, "-dumpmachine"), _ask(cmd, "--version"))


def identify(cmd: list[str] | None = None) -> CompilerId:
    """The identity of ``cmd`` (default: :func:`require`), asked once per process and command."""
    return _identify(tuple(cmd if cmd is not None else require()))
