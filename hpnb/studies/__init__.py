"""The studies: one module per chapter, found from its notebook.

A study module holds everything about its study: ``NAME`` and ``TITLE``; ``Params``, a frozen dataclass of its
parameters (validated by ``hpnb.schema``); ``plan(params, store=None)``, its sweeps as far as they are known
(a sweep that depends on results waits for them); its reference numbers, claims, analysis and figures. A
notebook names its study in its metadata (``"hpnb": {"study": "<module>"}``) and holds the narrative.
"""
from __future__ import annotations

import ast
import importlib
import json
from pathlib import Path
from types import ModuleType
from typing import Optional

from ..config import read_yaml_mapping
from ..registry import ConfigError
from .base import StudyPlan


def notebook_study(notebook: Path) -> str:
    """The module a notebook names as its study."""
    try:
        meta = json.loads(Path(notebook).read_text())["metadata"]
        return meta["hpnb"]["study"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(f"{notebook}: the notebook's metadata names no study (\"hpnb\": {{\"study\": "
                          f"\"<module>\"}})") from None


def load(notebook: Path) -> ModuleType:
    """The study module of ``notebook``, checked to provide what the pipeline needs."""
    name = notebook_study(notebook)
    try:
        module = importlib.import_module(name)
    except ImportError as err:
        raise ConfigError(f"{notebook}: cannot import its study module {name!r}: {err}") from None
    missing = [attr for attr in ("NAME", "TITLE", "Params", "plan") if not hasattr(module, attr)]
    if missing:
        raise ConfigError(f"{name}: a study module must define {', '.join(missing)}")
    if module.NAME != Path(notebook).stem:
        raise ConfigError(f"{name}: NAME is {module.NAME!r} but its notebook is {Path(notebook).name}")
    return module


def notebook_defaults(notebook: Path) -> dict:
    """The values in a notebook's ``parameters`` cell."""
    nb = json.loads(Path(notebook).read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            namespace: dict = {}
            for node in ast.parse("".join(cell["source"])).body:
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    namespace[node.targets[0].id] = ast.literal_eval(node.value)
            return namespace
    raise ConfigError(f"{notebook}: no cell tagged 'parameters'")


def validate_file(notebook: Path, params_file: Path, profile: Optional[str] = None):
    """A chapter's parameters from its notebook's defaults overridden by ``params_file``, validated: known keys
    only, every value typed and in range; errors name the file and the key."""
    study = load(notebook)
    values = read_yaml_mapping(params_file, what="chapter parameters")
    defaults = notebook_defaults(notebook)
    for key in values:
        if key not in defaults:
            raise ConfigError(f"{params_file}: unknown parameter {key!r}; {Path(notebook).name} declares: "
                              f"{', '.join(defaults)}")
    merged = {**defaults, **values, **({"profile": profile} if profile else {})}
    return study.Params.from_mapping(merged, source=str(params_file))


def plan_of(notebook: Path, params, store=None) -> StudyPlan:
    return load(notebook).plan(params, store)


__all__ = ["load", "notebook_study", "notebook_defaults", "validate_file", "plan_of", "StudyPlan"]
