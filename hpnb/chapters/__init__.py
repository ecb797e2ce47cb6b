"""Per-chapter parameter validation and study-specific logic, shared by the notebooks and ``hpnb report``.

Each notebook's first cell holds its parameters (papermill's convention); its second cell passes them to
``load(chapter, globals())``, which checks every key and value and builds the chapter's run configs, so a bad
parameter fails in seconds. ``hpnb report`` runs the same check on the parameter files before executing.
"""
from __future__ import annotations

import ast
import copy
import importlib
from pathlib import Path

import yaml

from ..registry import ConfigError

CHAPTERS = {
    "01_init_and_schedules": "init_and_schedules",
    "02_mobilenet_cifar100": "mobilenet_cifar100",
    "03_lr_decay_sequences": "lr_decay_sequences",
    "04_ldlt_lipschitz_init": "ldlt_lipschitz_init",
}


def module(chapter: str):
    if chapter not in CHAPTERS:
        raise ConfigError(f"unknown chapter {chapter!r}; chapters: {', '.join(CHAPTERS)}")
    return importlib.import_module(f"{__name__}.{CHAPTERS[chapter]}")


def load(chapter: str, namespace: dict, source: str | None = None):
    """Validate a chapter's parameters (taken from ``namespace``) and return its plan."""
    mod = module(chapter)
    params = {key: copy.deepcopy(namespace[key]) for key in mod.PARAMETERS if key in namespace}
    missing = [key for key in mod.PARAMETERS if key not in params]
    if missing:
        raise ConfigError(f"{source or chapter}: parameter(s) {', '.join(missing)} not set")
    try:
        return mod.plan(params)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}" if source else str(err)) from None


def notebook_defaults(notebook: Path) -> dict:
    """The values in a notebook's ``parameters`` cell."""
    import json

    nb = json.loads(Path(notebook).read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            namespace: dict = {}
            for node in ast.parse("".join(cell["source"])).body:
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    namespace[node.targets[0].id] = ast.literal_eval(node.value)
            return namespace
    raise ConfigError(f"{notebook}: no cell tagged 'parameters'")


def validate_file(chapter: str, notebook: Path, params_file: Path):
    """Check a parameter file against the chapter: known keys only, every value valid."""
    values = yaml.safe_load(Path(params_file).read_text()) or {}
    if not isinstance(values, dict):
        raise ConfigError(f"{params_file}: expected a mapping of parameter names to values")
    defaults = notebook_defaults(notebook)
    for key in values:
        if key not in defaults:
            raise ConfigError(f"{params_file}: unknown parameter {key!r}; {Path(notebook).name} declares: "
                              f"{', '.join(defaults)}")
    return load(chapter, {**defaults, **values}, source=str(params_file))


def planned_runs(chapter: str, chapter_plan) -> list:
    """Every distinct RunConfig the chapter's notebook trains under ``chapter_plan`` (choices made from
    results, such as chapter 2's learning rate, take the value the plan validated)."""
    seen, runs = set(), []
    for cfg in module(chapter).planned_runs(chapter_plan):
        if cfg.hash not in seen:
            seen.add(cfg.hash)
            runs.append(cfg)
    return runs


def check_keys(section: str, value, allowed: set) -> None:
    unknown = set(value) - allowed
    if unknown:
        raise ConfigError(f"{section}: unknown entry {sorted(unknown)[0]!r}; allowed: {', '.join(sorted(allowed))}")


def check_seeds(seeds) -> list[int]:
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise ConfigError(f"seeds: got {seeds!r}, expected a non-empty list of integers >= 0")
    return seeds

