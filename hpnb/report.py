"""``hpnb report``: execute every chapter with a parameter profile, render HTML, write the index.

outputs/<profile>/notebooks/<chapter>.ipynb   executed notebooks (also when a chapter fails)
outputs/<profile>/html/<chapter>.html         self-contained chapters: figures embedded, code folded
outputs/<profile>/results/<chapter>.json      what each chapter measured (written by the notebook)
outputs/<profile>/index.html                  chapters, the reproduction scorecard and the environment
"""
from __future__ import annotations

import html
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import yaml

from . import paths
from .chapters import validate_file
from .registry import ConfigError

PROFILES = ("quick", "paper", "smoke")


@dataclass
class Chapter:
    name: str
    notebook: Path
    params: Path
    title: str = ""
    status: str = "pending"
    seconds: float = 0.0
    error: str = ""
    results: dict = field(default_factory=dict)
    plan: object = None  # the chapter's validated plan (hpnb.chapters.load)


# --------------------------------------------------------------------------- planning (fails fast)
def resolve_profile(profile: str, root: Path) -> tuple[str, Path]:
    """A profile name under params/, or a path to a folder of parameter files."""
    folder = root / "params" / profile if profile in PROFILES or (root / "params" / profile).is_dir() else Path(profile)
    if not folder.is_dir():
        raise ConfigError(f"--profile {profile!r}: no folder {folder}; use one of {', '.join(PROFILES)} or a path")
    return folder.name, folder


def plan(profile: str, only: Optional[list[str]] = None, root: Optional[Path] = None) -> tuple[str, list[Chapter]]:
    """The chapters to run, each with a parameter file whose keys the notebook declares."""
    root = root or paths.project_root()
    name, folder = resolve_profile(profile, root)
    notebooks = sorted((root / "notebooks").glob("*.ipynb"))
    if only:
        picked = [nb for nb in notebooks if any(nb.stem == o or nb.stem.startswith(o) for o in only)]
        unknown = [o for o in only if not any(nb.stem == o or nb.stem.startswith(o) for nb in notebooks)]
        if unknown:
            raise ConfigError(f"--chapter {unknown[0]!r}: no such chapter; chapters: "
                              f"{', '.join(nb.stem for nb in notebooks)}")
        notebooks = picked
    chapters = []
    for nb in notebooks:
        params = folder / f"{nb.stem}.yaml"
        if not params.is_file():
            raise ConfigError(f"{params}: missing; every chapter needs a parameter file in {folder}")
        checked = validate_file(nb.stem, nb, params)  # the notebook's own check, so it fails before any work
        chapters.append(Chapter(nb.stem, nb, params, title=chapter_title(nb), plan=checked))
    return name, chapters


def chapter_title(notebook: Path) -> str:
    nb = json.loads(notebook.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return notebook.stem


# --------------------------------------------------------------------------- executing
def execute(chapter: Chapter, profile: str, out_dir: Path) -> None:
    import papermill

    parameters = yaml.safe_load(chapter.params.read_text()) or {}
    parameters["profile"] = profile
    target = out_dir / "notebooks" / f"{chapter.name}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    start = time.time()
    try:
        papermill.execute_notebook(str(chapter.notebook), str(target), parameters=parameters,
                                   kernel_name="python3", cwd=str(chapter.notebook.parent), progress_bar=True,
                                   log_output=os.environ.get("HPNB_LOG_OUTPUT", "1") == "1")
        chapter.status = "ok"
    except Exception as err:  # a failed chapter is reported, and the others still run
        chapter.status = "failed"
        chapter.error = _short_error(err)
    chapter.seconds = time.time() - start
    results = paths.results_dir(profile) / f"{chapter.name}.json"
    if results.is_file() and results.stat().st_mtime >= start:
        chapter.results = json.loads(results.read_text())


def _short_error(err: Exception) -> str:
    ename, evalue = getattr(err, "ename", type(err).__name__), getattr(err, "evalue", str(err))
    return f"{ename}: {evalue}".strip()[:2000]


# --------------------------------------------------------------------------- rendering
CSS = """
body{font:16px/1.55 -apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif;color:#1d2329;
 max-width:1080px;margin:0 auto;padding:1.5rem 2rem 4rem;background:#fff}
h1{font-size:1.9rem;border-bottom:2px solid #e4e7eb;padding-bottom:.3rem}h2{margin-top:2.2rem}
a{color:#1a5fb4}.anchor-link{display:none}
nav.top{font-size:.9rem;margin-bottom:1rem;color:#5c6670}
table{border-collapse:collapse;margin:.8rem 0;font-size:.88rem}
th,td{border:1px solid #d5dae0;padding:.28rem .6rem;text-align:left;vertical-align:top}th{background:#f3f5f7}
img{max-width:100%;height:auto}
pre{background:#f6f8fa;padding:.6rem .8rem;overflow-x:auto;font-size:.82rem;border-radius:4px}
details.code{margin:.4rem 0;font-size:.85rem}details.code summary{cursor:pointer;color:#5c6670}
.output_stdout pre,.output_text pre{background:none;padding:0}
.prompt{display:none}.output_error pre{background:#fdecea}
.status-ok{color:#1e7b34;font-weight:600}.status-failed{color:#b3261e;font-weight:600}
.supported{color:#1e7b34}.contradicted{color:#b3261e}.inconclusive{color:#8a6d00}
"""


def page(title: str, body: str, nav: str = "") -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><link rel=\"icon\" href=\"data:,\"><style>{CSS}</style></head>\n"
            f"<body>\n{nav}\n{body}\n</body></html>\n")


def _fold_code(nb) -> None:
    """Put each code cell's source, folded in a <details> block, before its outputs; drop stderr (progress).

    The fold travels as an HTML output rather than a raw cell, because nbconvert sanitises raw HTML cells.
    """
    import nbformat

    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = cell.get("metadata", {}).get("tags", [])
        label = ("parameters (this profile)" if "injected-parameters" in tags
                 else "parameters (defaults)" if "parameters" in tags else "code")
        outputs = [o for o in cell.get("outputs", [])
                   if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]
        if cell.source.strip():
            folded = f'<details class="code"><summary>{label}</summary><pre>{html.escape(cell.source)}</pre></details>'
            outputs.insert(0, nbformat.v4.new_output("display_data", data={"text/html": folded}))
        cell.outputs = outputs


def render(executed: Path, target: Path, title: str, profile: str) -> None:
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(executed), as_version=4)
    _fold_code(nb)
    exporter = HTMLExporter(template_name="basic", exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb)
    nav = (f'<nav class="top"><a href="../index.html">← hpnb report ({html.escape(profile)} profile)</a> · '
           f'<a href="../notebooks/{executed.name}">executed notebook</a></nav>')
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page(title, body, nav))


def environment(profile: str) -> dict:
    import numpy
    import pandas
    import sklearn
    import torch
    import torchvision

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=paths.project_root(),
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {"profile": profile, "date": time.strftime("%Y-%m-%d %H:%M %Z"), "commit": commit or "unknown",
            "device": device, "python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "numpy": numpy.__version__, "pandas": pandas.__version__,
            "scikit-learn": sklearn.__version__, "platform": platform.platform()}


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _num(value, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def write_index(out_dir: Path, profile: str, chapters: list[Chapter], env: dict, seconds: float) -> Path:
    e = html.escape
    rows = []
    for ch in chapters:
        runs = ch.results.get("runs", {})
        link = f'<a href="html/{ch.name}.html">{e(ch.title)}</a>'
        status = f'<span class="status-{ch.status}">{ch.status}</span>'
        if ch.error:
            status += f'<br><small>{e(ch.error[:300])}</small><br><a href="notebooks/{ch.name}.ipynb">partly executed notebook</a>'
        rows.append([link, status, f"{ch.seconds:.0f} s",
                     f"{runs.get('trained', 0) + runs.get('cached', 0)} / {runs.get('trained', 0)}" if runs else "—"])
    chapters_html = _table(["chapter", "status", "wall time", "runs used / trained"], rows)

    claim_rows, ref_rows = [], []
    for ch in chapters:
        for c in ch.results.get("claims", []):
            claim_rows.append([e(ch.title.split(":")[0]), e(c["claim"]),
                               f'<span class="{c["verdict"]}">{c["verdict"]}</span>', e(c["evidence"])])
        for r in ch.results.get("references", []):
            ref_rows.append([e(ch.title.split(":")[0]), e(r["item"]), _num(r["reference"]), _num(r["reproduced"]),
                             _num(r["std"], 2), _num(r["difference"], 3), str(r["n_seeds"])])
    verdicts = [c[2] for c in claim_rows]
    tally = ", ".join(f"{sum(v.count(k) for v in verdicts)} {k}" for k in ("supported", "contradicted", "inconclusive"))
    body = [f"<h1>hpnb report — {e(profile)} profile</h1>",
            f"<p>{len(chapters)} chapters in {seconds / 60:.1f} minutes. Every number below is computed from this "
            f"profile's runs; write-up numbers are labelled as such. The quick profile shrinks each study to CPU "
            f"scale on stand-in data, so its reproduced values are not expected to match the write-ups.</p>",
            "<h2>Chapters</h2>", chapters_html,
            f"<h2>Scorecard: the write-ups' claims</h2><p>{tally}.</p>",
            _table(["chapter", "claim", "verdict", "evidence"], claim_rows) if claim_rows else "<p>No claims recorded.</p>",
            "<h2>Scorecard: reference numbers</h2>",
            _table(["chapter", "item", "write-up", "reproduced (mean)", "std over seeds", "difference", "seeds"],
                   ref_rows) if ref_rows else "<p>No reference numbers recorded.</p>",
            "<h2>Environment</h2>", _table(["", ""], [[e(k), e(str(v))] for k, v in env.items()])]
    path = out_dir / "index.html"
    path.write_text(page(f"hpnb report ({profile})", "\n".join(body)))
    return path


# --------------------------------------------------------------------------- the command
def build_report(profile: str = "quick", only: Optional[list[str]] = None,
                 root: Optional[Path] = None) -> tuple[Path, list[Chapter]]:
    name, chapters = plan(profile, only, root)  # every parameter file checked before any chapter runs
    out_dir = paths.outputs_dir() / name
    start = time.time()
    for i, ch in enumerate(chapters, 1):
        elapsed = time.time() - start
        eta = f", about {elapsed / (i - 1) * (len(chapters) - i + 1) / 60:.1f} min left" if i > 1 else ""
        print(f"[{i}/{len(chapters)}] {ch.name} ({name} profile; {elapsed / 60:.1f} min elapsed{eta})", flush=True)
        execute(ch, name, out_dir)
        render(out_dir / "notebooks" / f"{ch.name}.ipynb", out_dir / "html" / f"{ch.name}.html", ch.title, name)
        runs = ch.results.get("runs", {})
        print(f"    {ch.status} in {ch.seconds:.0f} s; runs trained {runs.get('trained', '?')}, "
              f"reused {runs.get('cached', '?')}" + (f"; {ch.error}" if ch.error else ""), flush=True)
    index = write_index(out_dir, name, chapters, environment(name), time.time() - start)
    print(f"report: {index}")
    return index, chapters


def add_report_parser(sub) -> None:
    p = sub.add_parser("report", help="execute the chapters with a profile and render the HTML report")
    p.add_argument("--profile", default="quick", help="quick | paper | smoke | a folder of parameter files")
    p.add_argument("--chapter", nargs="*", default=None, help="chapter names (or prefixes such as 01) to run")
    p.set_defaults(func=_report_command)


def _report_command(args) -> int:
    try:
        _, chapters = build_report(args.profile, args.chapter)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0 if all(ch.status == "ok" for ch in chapters) else 1
