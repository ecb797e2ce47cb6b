"""Typed parameter schemas: a frozen dataclass per chapter, validated by the same machinery as ``RunConfig``.

Field types say what a value must be (``int``, ``float``, ``Literal[...]``, ``tuple[int, ...]``,
``dict[str, float]``, nested dataclasses); ``Annotated[..., Rule]`` adds ranges and shapes. Leaf values go
through ``registry.coerce``, so numbers must be finite, booleans are not integers, and YAML traps are
explained. Every error names the source (file or notebook), the key and what is allowed.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Callable, Mapping

from .registry import ConfigError, coerce


@dataclass(frozen=True)
class Rule:
    """A check on an already-typed value: ``ok(value)`` must hold; ``text`` says what is allowed."""

    ok: Callable[[Any], bool]
    text: str

    def __call__(self, value, where: str) -> None:
        if not self.ok(value):
            raise ConfigError(f"{where}: got {_show(value)}, expected {self.text}")


def at_least(low, what: str = "a number") -> Rule:
    return Rule(lambda v: v >= low, f"{what} >= {low:g}")


def positive(what: str = "a number") -> Rule:
    return Rule(lambda v: v > 0, f"{what} > 0")


NON_EMPTY = Rule(lambda v: len(v) > 0, "at least one entry")
ALL_POSITIVE = Rule(lambda v: all(x > 0 for x in v), "positive numbers")
ALL_NON_NEGATIVE = Rule(lambda v: all(x >= 0 for x in v), "numbers >= 0")
DISTINCT = Rule(lambda v: len(set(v)) == len(v), "no repeated entries")


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def validate(tp, value: Any, where: str) -> Any:
    """``value`` converted to type ``tp`` (recursively), or a ConfigError naming ``where``."""
    origin = typing.get_origin(tp)
    if origin is Annotated:
        base, *rules = typing.get_args(tp)
        value = validate(base, value, where)
        for rule in rules:
            rule(value, where)
        return value
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where)
    if origin in (dict, Mapping, typing.Mapping):
        key_type, value_type = typing.get_args(tp) or (str, Any)
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: got {_show(value)}, expected a mapping")
        return {coerce(k, key_type, f"{where} (key {k!r})"): validate(value_type, v, f"{where}.{k}")
                for k, v in value.items()}
    if origin in (list, tuple) and _deep(typing.get_args(tp)):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: got {_show(value)}, expected a list")
        return tuple(validate(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    return coerce(value, tp, where)


def _deep(args) -> bool:
    """Whether list elements need more than ``coerce`` (rules, mappings, nested lists, dataclasses)."""
    return any(typing.get_origin(a) in (Annotated, dict, list, tuple) or dataclasses.is_dataclass(a)
               for a in args if a is not Ellipsis)


def build(cls, raw: Any, where: str = ""):
    """An instance of the frozen dataclass ``cls`` from a mapping: unknown keys rejected with the allowed ones,
    missing keys named, every value validated, then ``cls.check()`` (cross-field rules) if it has one."""
    prefix = f"{where}: " if where else ""
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix}expected a mapping, got {_show(raw)}")
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in raw if k not in fields]
    if unknown:
        raise ConfigError(f"{prefix}unknown parameter {unknown[0]!r}; allowed: {', '.join(fields)}")
    required = [f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [k for k in required if k not in raw]
    if missing:
        raise ConfigError(f"{prefix}parameter(s) {', '.join(missing)} not set")
    values = {k: validate(hints[k], v, f"{where}.{k}" if where else k) for k, v in raw.items()}
    obj = cls(**values)
    check = getattr(obj, "check", None)
    if check is not None:
        check()
    return obj


__all__ = ["Rule", "validate", "build", "at_least", "positive", "NON_EMPTY", "ALL_POSITIVE",
           "ALL_NON_NEGATIVE", "DISTINCT"]
