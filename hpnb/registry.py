"""Name → constructor registries with option validation from type hints.

Every component a config can name (model, init, optimizer, schedule, strategy) is registered here, so one
mechanism checks option names, types and ranges before any work starts.
"""
from __future__ import annotations

import inspect
import types
import typing
from typing import Any, Callable, Literal, Union


class ConfigError(ValueError):
    """A configuration value is unknown, of the wrong type or out of range."""


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


def coerce(value: Any, tp, where: str) -> Any:
    """Return ``value`` converted to the hinted type, or raise ConfigError naming ``where``."""
    if tp is Any or tp is inspect.Parameter.empty:
        return value
    origin = typing.get_origin(tp)
    bad = ConfigError(f"{where}: got {value!r}, expected {_type_name(tp)}")
    if origin is Literal:
        if value in typing.get_args(tp) and type(value) in {type(a) for a in typing.get_args(tp)}:
            return value
        raise bad
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return coerce(value, arg, where)
            except ConfigError:
                continue
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
            return value
        raise bad
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise bad
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad
    if tp is dict:
        if isinstance(value, dict):
            return dict(value)
        raise bad
    return value


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
            if not ok(value):
                raise ConfigError(f"{where}.{key}: got {value!r}, expected {text}")
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
