"""Tiny pure functions that return C source text; the generator is assembled from these.

Each returns a string and has no side effects, so the emitted C is easy to test
(see the doctests) and the generator stays a list of string joins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def constant(name: str, value: int | str) -> str:
    """A ``#define`` line.

    >>> constant("ED_INPUT_SIZE", 784)
    '#define ED_INPUT_SIZE 784'
    """
    return f"#define {name} {value}"


def int_literal(value: int, ctype: str) -> str:
    """An integer literal valid in C99 for the type; INT32_MIN is written as an expression.

    >>> int_literal(-2147483648, "int32_t"), int_literal(-5, "int8_t")
    ('(-2147483647 - 1)', '-5')
    """
    if ctype == "int32_t" and value == -(2**31):
        return "(-2147483647 - 1)"
    return str(int(value))


def array_declare(name: str, ctype: str, values: Iterable[int], *, const: bool = True, static: bool = True,
                  per_line: int = 16) -> str:
    """A C array definition with its length and initializer, ``per_line`` values to a line.

    >>> print(array_declare("w", "int8_t", [1, -2, 3], per_line=2))
    static const int8_t w[3] = {
        1, -2,
        3
    };
    """
    vals = [int_literal(v, ctype) for v in values]
    lines = [", ".join(vals[i:i + per_line]) for i in range(0, len(vals), per_line)]
    qual = ("static " if static else "") + ("const " if const else "")
    body = ",\n    ".join(lines)
    return f"{qual}{ctype} {name}[{len(vals)}] = {{\n    {body}\n}};"


def struct_declare(name: str, ctype: str, fields: Mapping[str, int]) -> str:
    """A const struct with designated initializers.

    >>> print(struct_declare("p0", "ed_pool_params", {"c": 8, "f_h": 2}))
    static const ed_pool_params p0 = {
        .c = 8,
        .f_h = 2
    };
    """
    body = ",\n    ".join(f".{k} = {int_literal(v, 'int32_t')}" for k, v in fields.items())
    return f"static const {ctype} {name} = {{\n    {body}\n}};"


def static_assert(name: str, condition: str) -> str:
    """A C99 compile-time assertion (a typedef of a negative-size array fails to compile).

    >>> static_assert("fits", "8 <= ED_SCRATCH_BYTES")
    'typedef char ed_assert_fits[(8 <= ED_SCRATCH_BYTES) ? 1 : -1];'
    """
    return f"typedef char ed_assert_{name}[({condition}) ? 1 : -1];"


def call(function: str, args: Iterable[str]) -> str:
    """A statement calling a function.

    >>> call("ed_softmax", ["&p3", "x", "y"])
    'ed_softmax(&p3, x, y);'
    """
    return f"{function}({', '.join(args)});"


def comment(text: str) -> str:
    """A one-line C comment (``*/`` in the text is defused).

    >>> comment("layer 0: CONV_2D")
    '/* layer 0: CONV_2D */'
    """
    return "/* " + text.replace("*/", "* /") + " */"
