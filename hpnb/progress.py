"""Progress bars for long work: widgets in Jupyter when ipywidgets is installed, text otherwise; off with
HPNB_PROGRESS=0 (the tests and the cluster jobs set it)."""
from __future__ import annotations

import os


def progress_bar(enabled: bool = True, **options):
    """A tqdm bar, or None when progress is off. ``options`` go to tqdm (total, desc, unit, ...)."""
    if not enabled or os.environ.get("HPNB_PROGRESS", "1") == "0":
        return None
    try:
        import ipywidgets  # noqa: F401

        from tqdm.auto import tqdm
    except ImportError:  # tqdm.auto would warn "IProgress not found" in every notebook: use text bars instead
        from tqdm import tqdm
    return tqdm(dynamic_ncols=True, **options)


__all__ = ["progress_bar"]
