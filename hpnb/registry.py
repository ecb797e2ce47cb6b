"""Name → constructor registries with option validation from type hints.

Every component a config can name (model, init, optimizer, schedule, strategy) is registered here, so one
mechanism checks option names, types and ranges before any work starts.
"""
from __future__ import annotations

import inspect
import math
import re
import types
import typing
from typing import Any, Callable, Literal, Union


class ConfigError(ValueError):
    """A configuration value is unknown, of the wrong type or out of range."""


class YamlTrap(str):
    """A scalar YAML 1.1 would silently read as something else than most people mean (``010`` is octal 8,
    ``1:30`` is 90). The strict loader in :mod:`hpnb.config` keeps its text with an explanation, so
    :func:`coerce` can reject it naming the key; where a string is expected it is just that text."""

    def __new__(cls, text: str, hint: str):
        obj = super().__new__(cls, text)
        obj.hint = hint
        return obj


INT64 = 2**63  # every integer must fit torch's and numpy's int64 (seeds, sizes, counts)


def _out_of_range(message: str) -> ConfigError:
    """An error about a value of the right type (so a Union does not go on to try other types)."""
    err = ConfigError(message)
    err.of_right_type = True
    return err


def checks(**rules: tuple[Callable[[Any], bool], str]):
    """Attach range rules to a constructor: ``@checks(lr=(lambda v: v > 0, "> 0"))``."""

    def decorate(fn):
        fn.__hpnb_checks__ = {**getattr(fn, "__hpnb_checks__", {}), **rules}
        return fn

    return decorate


POSITIVE = (lambda v: v > 0, "a number > 0")
NON_NEGATIVE = (lambda v: v >= 0, "a number >= 0")
UNIT_INTERVAL = (lambda v: 0 <= v < 1, "a number in [0, 1)")


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return f"a list of {_type_name(args[0])}" if args else "a list"
    if tp is type(None):
        return "null"
    return {int: "an integer", float: "a number", bool: "true/false", str: "a string", dict: "a mapping"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def show(value: Any) -> str:
    """A value as a YAML user would recognise it in an error message."""
    if value is None:
        return "null"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**20:
        return f"an integer of {len(str(abs(value)))} digits"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


_NUMBER = re.compile(r"[-+]?(\d[\d_]*\.?[\d_]*|\.\d[\d_]*)([eE][-+]?\d+)?")


def _yaml11_float(text: str) -> str:
    """How to write the number ``text`` so that YAML 1.1 reads a float: a dot and a signed exponent."""
    mantissa, _, exponent = text.replace("E", "e").partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    elif mantissa.endswith("."):
        mantissa += "0"
    if exponent and exponent[0] not in "+-":
        exponent = "+" + exponent
    return mantissa + ("e" + exponent if exponent else "")


def _hint(value: Any, tp) -> str:
    """Why a value that looks right to its author is not what the key takes (YAML 1.1 traps)."""
    if isinstance(value, YamlTrap):
        return f" ({value.hint})"
    wants = set(_leaf_types(tp))
    if isinstance(value, str) and wants & {int, float} and _NUMBER.fullmatch(value.strip()):
        text = value.strip()
        if "e" in text.lower():
            if float in wants:
                return f" (a string: YAML 1.1 reads {text} as text; write {_yaml11_float(text)})"
            number = float(text.replace("_", ""))
            if number.is_integer() and abs(number) < 1e15:
                return f" (a string: YAML 1.1 reads {text} as text; write the integer {int(number)})"
            return f" (a string: YAML 1.1 reads {text} as text)"
        return f" (a string: write {text} without quotes)"
    if isinstance(value, str) and bool in wants and value.strip().lower() in ("true", "false", "yes", "no"):
        return " (a string: write true or false without quotes)"
    if isinstance(value, bool) and wants & {str, "literal-str"}:
        return " (YAML 1.1 reads yes/no/on/off as true/false: put the text in quotes)"
    return ""


def _leaf_types(tp) -> list:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return [t for a in typing.get_args(tp) for t in _leaf_types(a)]
    if origin is Literal:
        return ["literal-str" if isinstance(a, str) else type(a) for a in typing.get_args(tp)]
    return [tp]


def check_plain(value: Any, where: str, _seen: set | None = None) -> Any:
    """Reject what no option may hold, whatever its type: non-finite floats (also inside lists and
    mappings), integers beyond int64, YAML 1.1 traps and self-containing structures."""
    if isinstance(value, YamlTrap):
        raise ConfigError(f"{where}: got {show(str(value))} ({value.hint})")
    if isinstance(value, float) and not math.isfinite(value):
        raise _out_of_range(f"{where}: got {show(value)}, expected a finite number")
    if isinstance(value, int) and not isinstance(value, bool) and not -INT64 <= value < INT64:
        raise _out_of_range(f"{where}: got {show(value)}, expected an integer that fits in 64 bits")
    if isinstance(value, (list, tuple, dict)):
        seen = _seen if _seen is not None else set()
        if id(value) in seen:
            raise ConfigError(f"{where}: contains itself (a recursive YAML alias)")
        seen.add(id(value))
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            check_plain(item, f"{where}.{key}" if isinstance(value, dict) else f"{where}[{key}]", seen)
        seen.discard(id(value))
    return value


def coerce(value: Any, tp, where: str) -> Any:
    """Return ``value`` converted to the hinted type, or raise ConfigError naming ``where``.

    Numbers must be finite (NaN and ±infinity are rejected wherever a float is taken, also inside lists),
    integers must fit in 64 bits, booleans are not integers, and numeric-looking strings are rejected with
    how to write them (YAML 1.1 reads ``1e-3`` as text).
    """
    if tp is Any or tp is inspect.Parameter.empty:
        return check_plain(value, where)
    if isinstance(value, YamlTrap) and str not in _leaf_types(tp):
        raise ConfigError(f"{where}: got {show(str(value))} ({value.hint}), expected {_type_name(tp)}")
    origin = typing.get_origin(tp)
    bad = ConfigError(f"{where}: got {show(value)}{_hint(value, tp)}, expected {_type_name(tp)}")
    if origin is Literal:
        if value in typing.get_args(tp) and type(value) in {type(a) for a in typing.get_args(tp)}:
            return value
        raise bad
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return coerce(value, arg, where)
            except ConfigError as err:
                if getattr(err, "of_right_type", False):
                    raise
        raise bad
    if tp is type(None):
        if value is None:
            return None
        raise bad
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise bad
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        inner = args[0] if args else Any
        return tuple(coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return check_plain(value, where)
        raise bad
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an integer beyond the float range
                number = math.inf
            if not math.isfinite(number):
                raise _out_of_range(f"{where}: got {show(value)}, expected a finite number")
            return number
        raise bad
    if tp is str:
        if isinstance(value, str):
            return str(value)  # a YamlTrap is plain text where text is expected
        raise bad
    if tp is dict:
        if isinstance(value, dict):
            return dict(check_plain(value, where))
        raise bad
    return check_plain(value, where)


def user_options(fn: Callable, context: frozenset[str]) -> dict[str, inspect.Parameter]:
    """The keyword options of ``fn`` a user may set (context arguments are filled in by hpnb)."""
    target = fn.__init__ if inspect.isclass(fn) else fn
    params = inspect.signature(target).parameters
    return {
        name: p
        for name, p in params.items()
        if name not in context and name not in ("self", "params", "optimizer", "model")
        and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    }


def validate_options(fn: Callable, options: dict, where: str, context: frozenset[str]) -> dict:
    """Check option names, types and ranges against ``fn``'s signature; return them coerced."""
    allowed = user_options(fn, context)
    target = fn.__init__ if inspect.isclass(fn) else fn
    hints = typing.get_type_hints(target)
    rules = getattr(fn, "__hpnb_checks__", {})
    out = {}
    for key, value in options.items():
        if key not in allowed:
            names = ", ".join(sorted(allowed)) or "none"
            raise ConfigError(f"{where}: unknown option {key!r}; allowed options: {names}")
        value = coerce(value, hints.get(key, Any), f"{where}.{key}")
        if key in rules and value is not None:
            ok, text = rules[key]
            try:
                passed = bool(ok(value))
            except (TypeError, ValueError, IndexError):  # a rule written for well-formed values
                passed = False
            if not passed:
                raise ConfigError(f"{where}.{key}: got {show(value)}, expected {text}")
        out[key] = value
    missing = [n for n, p in allowed.items() if p.default is inspect.Parameter.empty and n not in out]
    if missing:
        raise ConfigError(f"{where}: missing required option(s) {', '.join(missing)}")
    # Resolve defaults so the config (and its hash) states every value the run used.
    for name, p in allowed.items():
        if name not in out:
            out[name] = tuple(p.default) if isinstance(p.default, list) else p.default
    return dict(sorted(out.items()))


class Registry:
    """A name → constructor table that validates the options a config passes to it."""

    def __init__(self, kind: str, context: tuple[str, ...] = ()):
        self.kind = kind
        self.context = frozenset(context)
        self._entries: dict[str, Callable] = {}

    def register(self, name: str):
        def decorate(fn):
            self._entries[name] = fn
            return fn

        return decorate

    def names(self) -> list[str]:
        return sorted(self._entries)

    def get(self, name: str, where: str | None = None) -> Callable:
        if name not in self._entries:
            raise ConfigError(
                f"{where or self.kind}: unknown {self.kind} {name!r}; allowed: {', '.join(self.names())}"
            )
        return self._entries[name]

    def validate(self, name: str, options: dict, where: str) -> dict:
        return validate_options(self.get(name, f"{where}.name"), options, where, self.context)

    def build(self, name: str, options: dict, /, *args, **context):
        fn = self.get(name)
        opts = validate_options(fn, options, self.kind, self.context)
        accepted = user_options(fn, frozenset()).keys()
        ctx = {k: v for k, v in context.items() if k in accepted}
        return fn(*args, **opts, **ctx)
