"""``hpnb report``: plan, execute and render a profile's chapters into a self-contained HTML report.

outputs/<profile>/notebooks/<chapter>.ipynb   executed notebooks (also when a chapter fails)
outputs/<profile>/html/<chapter>.html         chapter pages: figures embedded, code folded, a table of contents,
                                              how to reproduce, links to the chapter's data
outputs/<profile>/results/<chapter>.json|csv  what each chapter measured, and its runs as tidy per-epoch data
outputs/<profile>/index.html                  chapters, the claims and reference numbers, the environment
"""
from __future__ import annotations

import html
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import yaml

from . import paths, pipeline
from .claims import tally, tally_text
from .pipeline import Chapter
from .registry import ConfigError
from .scorecard import LEGEND, reference_table, tally_html, verdict_table
from .workers import cpu_workers, usable_cores

e = html.escape

CSS = """
body{font:16px/1.55 -apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif;color:#1d2329;
 max-width:1100px;margin:0 auto;padding:1.5rem 2rem 4rem;background:#fff}
h1{font-size:1.9rem;border-bottom:2px solid #e4e7eb;padding-bottom:.3rem}h2{margin-top:2.2rem}
a{color:#1a5fb4}.anchor-link{display:none}
nav.top,nav.toc,.reproduce{font-size:.9rem;color:#5c6670}
nav.toc{border:1px solid #e4e7eb;border-radius:4px;padding:.4rem 1rem;margin:1rem 0}
nav.toc ul{margin:.2rem 0;padding-left:.4rem;list-style:none}nav.toc li.h3{margin-left:1.4rem}
.reproduce{background:#f6f8fa;border-radius:4px;padding:.5rem 1rem}.reproduce code{font-size:.82rem}
table{border-collapse:collapse;margin:.8rem 0;font-size:.86rem}
th,td{border:1px solid #d5dae0;padding:.28rem .6rem;text-align:left;vertical-align:top}th{background:#f3f5f7}
img{max-width:100%;height:auto}figure{margin:1.2rem 0}figcaption,.caption{font-size:.9rem;color:#3d4650}
.table-note{font-size:.82rem;color:#5c6670;max-width:900px}.hpnb-table-block{overflow-x:auto}
pre{background:#f6f8fa;padding:.6rem .8rem;overflow-x:auto;font-size:.82rem;border-radius:4px}
details.code{margin:.4rem 0;font-size:.85rem}details.code summary{cursor:pointer;color:#5c6670}
.output_stdout pre,.output_text pre{background:none;padding:0}
.prompt{display:none}.output_error pre{background:#fdecea}
.status-ok{color:#1e7b34;font-weight:600}.status-failed{color:#b3261e;font-weight:600}
.supported{color:#1e7b34}.contradicted{color:#b3261e}.inconclusive{color:#8a6d00}.not-measurable{color:#5c6670}
.verdict{font-weight:600}small.rule,small.source{color:#5c6670}.flag{color:#b3261e;font-weight:600}
"""


def page(title: str, body: str, nav: str = "") -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{e(title)}</title><link rel=\"icon\" href=\"data:,\"><style>{CSS}</style></head>\n"
            f"<body>\n{nav}\n{body}\n</body></html>\n")


# --------------------------------------------------------------------------- running a notebook
def run_notebook(chapter: Chapter, profile: str, out_dir: Path) -> None:
    """Execute the chapter's notebook with its parameter file (papermill); a failure is recorded, not raised.
    Safe to call from several threads: the kernel starts in the notebook's folder without a process-wide chdir."""
    import papermill

    parameters = {**(yaml.safe_load(chapter.params_file.read_text()) or {}), "profile": profile}
    target = out_dir / "notebooks" / f"{chapter.name}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    start = time.time()
    try:
        papermill.execute_notebook(str(chapter.notebook), str(target), parameters=parameters,
                                   kernel_name="python3", progress_bar=False,
                                   resources={"metadata": {"path": str(chapter.notebook.parent)}},
                                   log_output=os.environ.get("HPNB_LOG_OUTPUT", "0") == "1")
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


# --------------------------------------------------------------------------- chapter pages
WIDGET = "application/vnd.jupyter.widget-view+json"


def _fold_code(nb) -> None:
    """Put each code cell's source, folded in a <details> block, before its outputs; drop progress (stderr and
    widgets).

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
                   if not (o.get("output_type") == "stream" and o.get("name") == "stderr")
                   and WIDGET not in o.get("data", {})]  # progress widgets, when ipywidgets is installed
        if cell.source.strip():
            folded = f'<details class="code"><summary>{label}</summary><pre>{e(cell.source)}</pre></details>'
            outputs.insert(0, nbformat.v4.new_output("display_data", data={"text/html": folded}))
        cell.outputs = outputs


def relink(body: str, source_dir: Path, page_dir: Path) -> str:
    """Rewrite relative links written from the notebook's folder so they resolve from the page's folder."""
    def fix(match: re.Match) -> str:
        attr, target = match.group(1), match.group(2)
        if re.match(r"^(#|[a-z][a-z0-9+.-]*:|/)", target):
            return match.group(0)
        resolved = (source_dir / html.unescape(target)).resolve()
        return f'{attr}="{e(Path(os.path.relpath(resolved, page_dir)).as_posix())}"'

    return re.sub(r'\b(href|src)="([^"]*)"', fix, body)


def contents(body: str) -> str:
    """A table of contents from the page's section headings."""
    items = []
    for level, anchor, text in re.findall(r'<h([23]) id="([^"]+)">(.*?)<a class="anchor-link"', body):
        items.append(f'<li class="h{level}"><a href="#{anchor}">{re.sub("<[^>]+>", "", text)}</a></li>')
    return f'<nav class="toc"><b>Contents</b><ul>{"".join(items)}</ul></nav>' if items else ""


def reproduce(chapter: Chapter, profile: str, root: Path) -> str:
    params = os.path.relpath(chapter.params_file, root)
    notebook = os.path.relpath(chapter.notebook, root)
    option = profile if (root / "params" / profile).resolve() == chapter.params_file.parent.resolve() else \
        str(chapter.params_file.parent)
    return (f'<div class="reproduce"><b>Reproduce this page:</b> <code>hpnb report --profile {e(option)} --chapter '
            f'{e(chapter.name)}</code>, or run the notebook alone: <code>papermill {e(notebook)} out.ipynb -f '
            f'{e(params)}</code>. Its data: <a href="../results/{e(chapter.name)}.csv" download>every run and epoch '
            f'(CSV)</a> · <a href="../results/{e(chapter.name)}.json">numbers and verdicts (JSON)</a></div>')


def render(chapter: Chapter, executed: Path, target: Path, profile: str, root: Path) -> None:
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(executed), as_version=4)
    _fold_code(nb)
    exporter = HTMLExporter(template_name="basic", exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb)
    body = relink(body, chapter.notebook.parent, target.parent)
    title_end = body.find("</h1>")
    head = contents(body) + reproduce(chapter, profile, root)
    body = body[:title_end + 5] + head + body[title_end + 5:] if title_end >= 0 else head + body
    nav = (f'<nav class="top"><a href="../index.html">← hpnb report ({e(profile)} profile)</a> · '
           f'<a href="../notebooks/{executed.name}">executed notebook</a></nav>')
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page(chapter.title, body, nav))


# --------------------------------------------------------------------------- the index
def _pins() -> dict[str, str]:
    """Exact versions the project pins (``name==version`` in its dependencies)."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        reqs = requires("hpnb") or []
    except PackageNotFoundError:
        reqs = []
    return dict(m.groups() for r in reqs if (m := re.match(r"^([A-Za-z0-9_.-]+)==([^;\s]+)", r)))


def _git(root: Path) -> str:
    def git(*args) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()

    try:
        top = git("rev-parse", "--show-toplevel")
        if not top or Path(top).resolve() != root.resolve():
            return "unknown (the project folder is not a git checkout of its own)"
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", ".", ":(exclude)outputs")
    except (OSError, subprocess.SubprocessError):
        return "unknown (git is not available)"
    return commit + (" — with uncommitted changes" if dirty else "") if commit else "unknown (no commit yet)"


def environment(profile: str, root: Optional[Path] = None) -> tuple[dict, list[str]]:
    """What the report ran on, and flags where it differs from what the project pins or is not a clean commit."""
    import numpy
    import pandas
    import sklearn
    import torch
    import torchvision

    root = root or paths.project_root()
    if torch.cuda.is_available():
        device = torch.cuda.get_device_name(0)
    else:
        workers = cpu_workers()
        training = (f"ensembles train in up to {workers} worker processes of {max(1, usable_cores() // workers)} "
                    f"thread(s)" if workers > 1 else f"training in one process, {torch.get_num_threads()} threads")
        device = f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores; {training})"
    installed = {"torch": torch.__version__, "torchvision": torchvision.__version__}
    flags = []
    for name, pin in _pins().items():
        version = installed.get(name)
        if version is not None and version.split("+")[0] != pin:
            flags.append(f"{name} {version} is installed; the project pins {pin}")
    commit = _git(root)
    if commit.startswith("unknown") or "uncommitted" in commit:
        flags.append(f"code version: {commit}")
    env = {"profile": profile, "date": time.strftime("%Y-%m-%d %H:%M %Z"), "commit": commit, "device": device,
           "python": platform.python_version(), **installed, "numpy": numpy.__version__,
           "pandas": pandas.__version__, "scikit-learn": sklearn.__version__, "platform": platform.platform(),
           "CPU kernels": torch.backends.cpu.get_cpu_capability()}
    return env, flags


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_index(out_dir: Path, profile: str, chapters: list[Chapter], env: dict, flags: list[str],
                seconds: dict) -> Path:
    rows = []
    for ch in chapters:
        verdicts = tally(ch.results.get("claims", []))["write-up"]
        status = f'<span class="status-{ch.status}">{ch.status}</span>'
        if ch.status == "failed":
            status += (f'<br><small>{e(ch.error[:300])}</small><br>'
                       f'<a href="notebooks/{ch.name}.ipynb">partly executed notebook</a>')
        elif ch.error:
            status += f"<br><small>{e(ch.error[:300])}</small>"
        data = f'<a href="results/{ch.name}.csv" download>CSV</a>' if (out_dir / "results" / f"{ch.name}.csv").exists() \
            else "—"
        claims = ", ".join(f"{n} {v}" for v, n in verdicts.items() if n) or "—"
        rows.append([f'<a href="html/{ch.name}.html">{e(ch.title)}</a><br><small><a href="notebooks/{ch.name}.ipynb">'
                     f'executed notebook</a></small>', status, f"{ch.seconds:.0f} s",
                     str(ch.trained + ch.cached + ch.failed), str(ch.trained), str(ch.cached), str(ch.failed),
                     e(claims), data])
    chapters_html = _table(["chapter", "status", "notebook time", "runs planned", "trained now", "reused",
                            "failed", "the write-up's claims", "tidy data"], rows)
    claims, refs = [], []
    for ch in chapters:
        short = ch.title.split(":")[0]
        for c in ch.results.get("claims", []):
            claims.append({**c, "chapter": short, "link": f"html/{ch.name}.html"})
        refs += [{**r, "chapter": short} for r in ch.results.get("references", [])]
    counts = tally(claims)
    headline = ", ".join(f"{sum(counts[s].values())} {label}" for s, label in
                         (("write-up", "claims of the write-ups"), ("beyond", "beyond them"),
                          ("self-check", "self-checks")) if sum(counts[s].values()))
    env_rows = [[e(k), e(str(v))] for k, v in env.items()]
    flag_html = "".join(f'<p class="flag">⚠ {e(f)}</p>' for f in flags)
    total = sum(seconds.values())
    body = [f"<h1>hpnb report — {e(profile)} profile</h1>",
            f"<p>{len(chapters)} chapters in {total / 60:.1f} minutes: training {seconds['execute'] / 60:.1f}, and "
            f"{seconds['render'] / 60:.1f} more for the notebooks and pages (each chapter's notebook starts as soon "
            f"as its runs are in, beside the training). Every number below is computed from this "
            f"profile's runs; the write-ups' numbers are labelled as such. The quick profile shrinks each study to "
            f"CPU scale on stand-in data, so its values are not expected to match the write-ups.</p>",
            flag_html, "<h2>Chapters</h2>", chapters_html,
            f"<h2>Scorecard: claims</h2><p>{e(headline or 'No claims recorded')}. {e(tally_text(claims))}</p>",
            tally_html(claims) if claims else "",
            f"<p>{LEGEND} Each row links to its place in its chapter.</p>",
            verdict_table(claims, with_chapter=True) if claims else "",
            "<h2>Scorecard: reference numbers</h2>",
            reference_table(refs, with_chapter=True) if refs else "<p>No reference numbers recorded.</p>",
            "<h2>Environment</h2>", _table(["what", "value"], env_rows)]
    path = out_dir / "index.html"
    path.write_text(page(f"hpnb report ({profile})", "\n".join(body)))
    return path


# --------------------------------------------------------------------------- the command
def build_report(profile: str = "quick", only: Optional[list[str]] = None, root: Optional[Path] = None,
                 train: bool = True) -> tuple[Path, list[Chapter]]:
    """Plan (every parameter file checked first), execute (train what the store lacks; skipped with
    ``train=False``), then render every chapter and the index."""
    root = root or paths.project_root()
    name, chapters = pipeline.plan(profile, only, root)
    cpu_workers()  # a bad $HPNB_CPU_WORKERS fails here too, before any work
    out_dir = paths.outputs_dir() / name
    start = time.time()
    number = {ch.name: i for i, ch in enumerate(chapters, 1)}
    html_export = threading.Lock()  # nbconvert's exporter is not known to be thread-safe; it takes a second

    def render_chapter(ch: Chapter) -> None:
        print(f"[{number[ch.name]}/{len(chapters)}] {ch.name} ({name} profile; "
              f"{(time.time() - start) / 60:.1f} min elapsed)", flush=True)
        run_notebook(ch, name, out_dir)
        with html_export:
            render(ch, out_dir / "notebooks" / f"{ch.name}.ipynb", out_dir / "html" / f"{ch.name}.html", name, root)
        print(f"    {ch.name}: {ch.status} in {ch.seconds:.0f} s" + (f"; {ch.error}" if ch.error else ""), flush=True)

    # A chapter's notebook runs as soon as its runs are in the store, while the executor trains the others, at a
    # lower CPU priority so that it fills the cores the training leaves idle rather than slowing it down.
    with ThreadPoolExecutor(render_workers(), thread_name_prefix="render", initializer=yield_cpu) as pool:
        rendering = {}

        def submit(ch: Chapter) -> None:
            rendering[ch.name] = pool.submit(render_chapter, ch)

        if train:
            pipeline.execute(chapters, on_ready=submit)
        trained_at = time.time()
        for ch in chapters:
            if ch.name not in rendering:
                submit(ch)
        for future in rendering.values():
            future.result()
    for ch in chapters:
        notebook_runs = ch.results.get("runs", {})
        if notebook_runs.get("trained"):  # trained inside the notebook (--no-train, or a run added since the plan)
            ch.trained += notebook_runs["trained"]
            ch.cached = max(0, ch.cached - notebook_runs["trained"])
    env, flags = environment(name, root)
    seconds = {"execute": trained_at - start, "render": time.time() - trained_at}
    index = write_index(out_dir, name, chapters, env, flags, seconds)
    print(f"report: {index}")
    return index, chapters


def yield_cpu() -> None:
    """Run this thread, and the processes it starts (a notebook's kernel inherits it), only on CPU time the
    training leaves idle (Linux's SCHED_IDLE), so a notebook beside an ensemble never stalls its threads.
    Elsewhere a thread's priority cannot be set apart from its process's, and rendering simply shares the CPU."""
    if sys.platform.startswith("linux") and hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(threading.get_native_id(), os.SCHED_IDLE, os.sched_param(0))
        except OSError:  # not permitted here: render at normal priority
            pass


def render_workers() -> int:
    """How many notebooks run at once: one per two cores (a kernel keeps one core busy, and the executor or the
    other notebooks the rest), at most four; $HPNB_RENDER_WORKERS overrides."""
    configured = os.environ.get("HPNB_RENDER_WORKERS", "")
    if configured:
        if not configured.isdigit() or int(configured) < 1:
            raise ConfigError(f"HPNB_RENDER_WORKERS: got {configured!r}, expected an integer >= 1")
        return int(configured)
    return max(1, min(4, (os.cpu_count() or 1) // 2))


def add_report_parser(sub) -> None:
    p = sub.add_parser("report", help="plan, train what is missing, and render the HTML report of a profile")
    p.add_argument("--profile", default="quick", help="quick | paper | smoke | a folder of parameter files")
    p.add_argument("--chapter", nargs="*", default=None, help="chapter names (or prefixes such as 01) to run")
    p.add_argument("--no-train", action="store_true", help="render only; runs missing from the store are trained "
                                                           "by the notebooks themselves")
    p.set_defaults(func=_report_command)


def _report_command(args) -> int:
    try:
        _, chapters = build_report(args.profile, args.chapter, train=not args.no_train)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0 if all(ch.status == "ok" for ch in chapters) else 1
