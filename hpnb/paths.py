"""Where things live: the project root (found from the working directory) and the outputs under it."""
from __future__ import annotations

import os
from pathlib import Path


def project_root(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: cwd) holding this project's ``pyproject.toml``,
    so notebooks run from ``notebooks/`` in JupyterLab write to the same outputs as the report."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "hpnb" / "__init__.py").is_file():
            return folder
    return here


def outputs_dir() -> Path:
    return Path(os.environ.get("HPNB_OUTPUTS") or project_root() / "outputs")


def store_dir() -> Path:
    """$HPNB_STORE, else ``outputs/runs`` of the project."""
    return Path(os.environ.get("HPNB_STORE") or outputs_dir() / "runs")


def results_dir(profile: str) -> Path:
    return outputs_dir() / profile / "results"
