"""A profile's chapters in three stages, each usable alone:

- **plan**: every parameter file checked against its chapter (before any work), and every chapter's runs;
- **execute**: train what the store lacks, round after round (a chapter whose later sweeps depend on results
  gets them planned once those results are in), as ensembles across all chapters;
- **render** (``hpnb.report``): run the notebooks, which then only read finished runs from the store.

``hpnb report`` does all three on this machine; ``hpnb submit`` does plan and execute on a cluster.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Callable, Optional

from . import paths
from .config import RunConfig
from .registry import ConfigError
from .progress import progress_bar
from .runner import Outcome, as_store, train_runs
from .store import RunStore
from .studies import load as load_study
from .studies import validate_file
from .studies.base import StudyPlan

PROFILES = ("quick", "paper", "smoke")


@dataclass
class Chapter:
    name: str
    notebook: Path
    params_file: Path
    study: ModuleType
    params: object  # the study's validated Params
    title: str = ""
    # filled by execute and render
    trained: int = 0
    cached: int = 0
    failed: int = 0
    status: str = "pending"
    seconds: float = 0.0
    error: str = ""
    results: dict = field(default_factory=dict)

    def plan(self, store: Optional[RunStore]) -> StudyPlan:
        return self.study.plan(self.params, store)


def resolve_profile(profile: str, root: Path) -> tuple[str, Path]:
    """A profile name under params/, or a path to a folder of parameter files."""
    named = root / "params" / profile
    folder = named if named.is_dir() else Path(profile)
    if not folder.is_dir():
        raise ConfigError(f"--profile {profile!r}: no folder {folder}; use one of {', '.join(PROFILES)} or a path")
    return folder.name, folder


def plan(profile: str, only: Optional[list[str]] = None, root: Optional[Path] = None) -> tuple[str, list[Chapter]]:
    """The chapters to run, each with its parameter file validated (so a bad file fails before any work)."""
    root = root or paths.project_root()
    name, folder = resolve_profile(profile, root)
    notebooks = sorted((root / "notebooks").glob("*.ipynb"))
    stems = [nb.stem for nb in notebooks]
    strays = sorted(f.name for f in folder.glob("*.y*ml") if f.stem not in stems)
    if strays:
        raise ConfigError(f"{folder / strays[0]}: no chapter of that name; a profile holds one file per chapter: "
                          f"{', '.join(s + '.yaml' for s in stems)}")
    if only:
        unknown = [o for o in only if not any(s == o or s.startswith(o) for s in stems)]
        if unknown:
            raise ConfigError(f"--chapter {unknown[0]!r}: no such chapter; chapters: {', '.join(stems)}")
        notebooks = [nb for nb in notebooks if any(nb.stem == o or nb.stem.startswith(o) for o in only)]
    chapters = []
    for nb in notebooks:
        params_file = folder / f"{nb.stem}.yaml"
        if not params_file.is_file():
            raise ConfigError(f"{params_file}: missing; every chapter needs a parameter file in {folder}")
        study = load_study(nb)
        params = validate_file(nb, params_file, profile=name)
        chapters.append(Chapter(nb.stem, nb, params_file, study, params, title=study.TITLE))
    return name, chapters


def pending(chapters: list[Chapter], store: RunStore) -> tuple[dict[str, StudyPlan], dict[str, list[RunConfig]]]:
    """Per chapter: its plan as far as the store lets it go, and the planned runs the store lacks."""
    plans = {ch.name: ch.plan(store) for ch in chapters}
    todo = {name: [cfg for cfg in p.configs() if store.load(cfg, quarantine=False) is None]
            for name, p in plans.items()}
    return plans, todo


def execute(chapters: list[Chapter], store=None, progress: bool = True,
            log: Callable[[str], None] = print, on_ready: Optional[Callable[[Chapter], None]] = None) -> list[Chapter]:
    """Train every planned run the store lacks, in rounds, on this machine; each chapter gets its counts
    (trained, reused, failed) and, if some of its sweeps could never be planned, why. ``on_ready(chapter)`` is
    called once per chapter as soon as everything it plans is in the store (or failed), while the others
    still train, so its notebook can run meanwhile; a chapter still waiting at the end is not reported."""
    run_store = as_store(store if store is not None else "default")
    start, failed, reported = time.time(), set(), set()

    def hand_over_if_ready(ch: Chapter) -> None:
        """Nothing left to train this round and no sweep waiting to be planned: the chapter is complete."""
        if on_ready is None or ch.name in reported or left[ch.name] or plans[ch.name].waiting:
            return
        reported.add(ch.name)
        on_ready(ch)

    for round_number in range(1, 100):
        plans, todo = pending(chapters, run_store)
        configs = [cfg for cfgs in todo.values() for cfg in cfgs if cfg.hash not in failed]
        left = {ch.name: sum(cfg.hash not in failed for cfg in todo[ch.name]) for ch in chapters}
        for ch in chapters:
            hand_over_if_ready(ch)
        if not configs:
            break
        total = sum(len(p.configs()) for p in plans.values())
        log(f"execute, round {round_number}: {len(configs)} run(s) to train, {total - len(configs)} of {total} "
            f"planned already in the store ({(time.time() - start) / 60:.1f} min so far)")
        chapter_of = {cfg.hash: ch for ch in chapters for cfg in todo[ch.name]}

        def count(outcome: Outcome) -> None:
            ch = chapter_of[outcome.config.hash]
            if outcome.error:
                ch.failed += 1
                failed.add(outcome.config.hash)
                log(f"    failed: {ch.name} run {outcome.config.hash}: {outcome.error}")
            elif not outcome.cached:
                ch.trained += 1
            left[ch.name] -= 1
            hand_over_if_ready(ch)

        train_runs(configs, run_store, progress=progress, on_outcome=_with_bar(count, len(configs), progress))
    else:  # every round used and still work left: plan once more for the final counts
        plans, _ = pending(chapters, run_store)
    for ch in chapters:
        ch.cached = len(plans[ch.name].configs()) - ch.trained - ch.failed
        if plans[ch.name].waiting:  # a sweep whose inputs never finished (their runs failed)
            ch.error = "; ".join(f"sweep {s} waits for {why}" for s, why in plans[ch.name].waiting.items())
    return chapters


def _with_bar(count: Callable[[Outcome], None], total: int, progress: bool) -> Callable[[Outcome], None]:
    bar = progress_bar(progress, total=total, desc="runs", unit="run")
    if bar is None:
        return count

    def counted(outcome: Outcome) -> None:
        count(outcome)
        bar.update(1)
        if bar.n >= total:
            bar.close()

    return counted


__all__ = ["Chapter", "plan", "pending", "execute", "resolve_profile", "PROFILES"]
