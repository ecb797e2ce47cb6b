"""The report end to end: plan, execute and render with the smoke profile, the pages' content and links, the
index's tally, failure isolation, a profile whose runs sit at chance, and the pages in a real headless browser."""
import json
import os
import re
import shutil
import sys
import threading
from functools import partial
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import nbformat
import pandas as pd
import pytest
import yaml

from hpnb import ConfigError, RunStore
from hpnb.claims import SOURCES, VERDICTS
from hpnb.pipeline import plan
from hpnb.report import build_report

from conftest import REPO

pytestmark = pytest.mark.slow
CHAPTERS = sorted(nb.stem for nb in (REPO / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs")
    env = {"HPNB_OUTPUTS": str(root), "HPNB_STORE": str(root / "runs"), "HPNB_LOG_OUTPUT": "0"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield root
    for k, v in old.items():
        os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


@pytest.fixture(scope="module")
def smoke_report(outputs):
    index, chapters = build_report("smoke")
    return outputs / "smoke", index, chapters


def test_every_chapter_executes_and_renders(smoke_report):
    out, index, chapters = smoke_report
    assert [c.name for c in chapters] == CHAPTERS
    assert all(c.status == "ok" for c in chapters), [(c.name, c.error) for c in chapters]
    for ch in chapters:
        page = (out / "html" / f"{ch.name}.html").read_text()
        assert f"<title>{ch.title}</title>" in page.replace("&#x27;", "'")
        assert len(re.findall(r"<h2", page)) >= 4, ch.name  # the write-up's sections
        figures = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', page)
        assert len(figures) >= 2 and all(figures), ch.name  # embedded, each with its title as alt text
        assert 'class="toc"' in page and "Contents" in page
        assert f"hpnb report --profile smoke --chapter {ch.name}" in page
        assert f"papermill notebooks/{ch.name}.ipynb out.ipynb -f params/smoke/{ch.name}.yaml" in page
        assert "Assumptions" in page and "Data used" in page
        assert not re.search(r'(src|href)="https?://', page), "the page must not fetch anything"
        assert 'class="code"' in page and "Traceback" not in page
        executed = nbformat.read(out / "notebooks" / f"{ch.name}.ipynb", as_version=4)
        assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)


def test_results_hold_references_verdicts_and_tidy_data(smoke_report):
    out, _, chapters = smoke_report
    for ch in chapters:
        data = json.loads((out / "results" / f"{ch.name}.json").read_text())
        assert data["profile"] == "smoke"
        assert data["claims"] and all(c["verdict"] in VERDICTS and c["source"] in SOURCES and c["rule"]
                                      for c in data["claims"])
        assert all(c["reason"] for c in data["claims"] if c["verdict"] == "not measurable")
        refs = data["references"]
        assert refs and all({"reference", "reproduced", "difference", "n_seeds"} <= set(r) for r in refs)
        tidy = pd.read_csv(out / "results" / f"{ch.name}.csv")
        per_run = tidy.dropna(subset=["epoch"])
        assert not per_run.duplicated(["sweep", "hash", "epoch"]).any()  # one row per run and epoch
        assert {"config.model.name", "config.optimizer.name", "config.seed", "config.data.name"} <= set(tidy.columns)
        planned = {cfg.hash for cfg in ch.plan(RunStore()).configs()}
        assert set(tidy.hash) == planned, ch.name


def test_every_table_with_write_up_numbers_has_difference_and_n(smoke_report):
    out, _, chapters = smoke_report
    checked = 0
    for ch in chapters:
        page = (out / "html" / f"{ch.name}.html").read_text()
        for block in re.findall(r'<div[^>]*class="hpnb-table-block"[^>]*>(.*?)</div>', page, re.S):
            header = re.search(r"<thead>(.*?)</thead>", block, re.S).group(1)
            if "· write-up</th>" in header:  # a column of the write-up's numbers
                checked += 1
                assert "difference" in header and "<th>n</th>" in header, (ch.name, header[:200])
    assert checked >= 8


def test_execute_trains_every_planned_run_once_and_render_trains_none(smoke_report, outputs):
    out, _, chapters = smoke_report
    stored = set(RunStore(outputs / "runs").list_runs().hash)
    planned = set()
    for ch in chapters:
        planned |= {cfg.hash for cfg in ch.plan(RunStore(outputs / "runs")).configs()}
        assert ch.results["runs"]["trained"] == 0, ch.name  # the notebooks only read
    assert planned == stored
    assert sum(ch.trained for ch in chapters) == len(stored)  # shared runs count once, where first planned


def test_a_chapter_is_handed_to_render_once_its_runs_are_in_while_others_train(tmp_path):
    """Chapter 4 plans everything up front; chapter 2's later sweeps wait for its learning-rate sweep (round 2).
    Chapter 4 must be handed over after its last run and before chapter 2's round-2 runs exist; chapter 2
    only when all of its runs are in; each exactly once."""
    from hpnb.pipeline import execute

    store = RunStore(tmp_path / "runs")
    _, chapters = plan("smoke", ["02", "04"])
    handed = []

    def on_ready(ch):
        handed.append((ch.name, set(store.list_runs().hash) if len(store.list_runs()) else set()))

    execute(chapters, store, progress=False, log=lambda _: None, on_ready=on_ready)
    assert [name for name, _ in handed] == [ch.name for ch in reversed(chapters)]  # 04, then 02
    planned = {ch.name: {cfg.hash for cfg in ch.plan(store).configs()} for ch in chapters}
    (ch4, in_store_then), (ch2, in_store_at_end) = handed
    assert planned[ch4] <= in_store_then and not planned[ch2] <= in_store_then  # chapter 2 was still training
    assert planned[ch2] <= in_store_at_end
    handed.clear()
    execute(chapters, store, progress=False, log=lambda _: None, on_ready=on_ready)  # all cached: both at once
    assert sorted(name for name, _ in handed) == sorted(planned)


def test_index_tally_equals_the_claims_table(smoke_report):
    out, index, chapters = smoke_report
    page = index.read_text()
    for ch in chapters:
        assert f'href="html/{ch.name}.html"' in page and f'href="results/{ch.name}.csv"' in page
    table = re.search(r'<table class="verdicts">(.*?)</table>', page, re.S).group(1)
    shown = re.findall(r'<span class="verdict ([a-z-]+)">', table)
    tally = re.search(r'<table class="tally">(.*?)</table>', page, re.S).group(1)
    counts = [list(map(int, re.findall(r"<td[^>]*>(\d+)</td>", row))) for row in re.findall(r"<tr>(.*?)</tr>", tally)]
    counted = {v: sum(row[i] for row in counts if row) for i, v in enumerate(VERDICTS)}
    assert counted == {v: shown.count(v.replace(" ", "-")) for v in VERDICTS}
    recorded = [c for ch in chapters for c in ch.results["claims"]]
    assert len(shown) == len(recorded) == sum(row[-1] for row in counts if row)
    assert all(f'href="html/{ch.name}.html#claim-' in page for ch in chapters)


def test_index_names_the_cpu_kernels_that_ran(smoke_report):
    import torch  # the report ran in this process: its kernels are this process's
    page = smoke_report[1].read_text()
    assert f"<td>CPU kernels</td><td>{torch.backends.cpu.get_cpu_capability()}</td>" in page


def test_rerun_reuses_cached_runs(smoke_report):
    _, chapters = build_report("smoke", ["04"])
    assert chapters[0].trained == 0 and chapters[0].cached > 0


def test_failed_chapter_is_reported_and_the_others_still_run(outputs, tmp_path):
    root = tmp_path / "project"
    (root / "notebooks").mkdir(parents=True)
    (root / "params" / "smoke").mkdir(parents=True)
    for name in ("03_lr_decay_sequences", "04_ldlt_lipschitz_init"):
        shutil.copy(REPO / "notebooks" / f"{name}.ipynb", root / "notebooks")
        shutil.copy(REPO / "params" / "smoke" / f"{name}.yaml", root / "params" / "smoke")
    broken = root / "notebooks" / "03_lr_decay_sequences.ipynb"
    nb = nbformat.read(broken, as_version=4)
    nb.cells.insert(3, nbformat.v4.new_code_cell('raise RuntimeError("deliberate failure")'))
    nbformat.write(nb, broken)
    index, chapters = build_report("smoke", root=root)
    status = {c.name: c for c in chapters}
    assert status["03_lr_decay_sequences"].status == "failed"
    assert "deliberate failure" in status["03_lr_decay_sequences"].error
    assert status["04_ldlt_lipschitz_init"].status == "ok"
    page = index.read_text()
    assert "deliberate failure" in page and 'href="notebooks/03_lr_decay_sequences.ipynb"' in page
    assert (index.parent / "notebooks" / "03_lr_decay_sequences.ipynb").exists()


def test_bad_profile_or_chapter_fails_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match="--profile 'nope'"):
        plan("nope")
    with pytest.raises(ConfigError, match="--chapter '09': no such chapter"):
        plan("smoke", ["09"])
    params = tmp_path / "params"
    shutil.copytree(REPO / "params" / "smoke", params)
    (params / "02_mobilenet_cifar100.yaml").write_text("seeds: [0]\nlrs: fast\n")
    with pytest.raises(ConfigError, match=r"02_mobilenet_cifar100\.yaml: lrs: got 'fast'"):
        plan(str(params))
    (params / "02_mobilenet_cifar100.yaml").write_text((REPO / "params" / "smoke" / "02_mobilenet_cifar100.yaml")
                                                       .read_text())
    (params / "05_typo.yaml").write_text("seeds: [0]\n")
    with pytest.raises(ConfigError, match=r"05_typo\.yaml: no chapter of that name"):
        plan(str(params))
    (params / "05_typo.yaml").unlink()
    (params / "01_init_and_schedules.yaml").unlink()
    with pytest.raises(ConfigError, match=r"01_init_and_schedules\.yaml: missing"):
        plan(str(params))


def test_runs_at_chance_give_not_measurable_verdicts_and_no_winner(outputs, tmp_path):
    """A profile built to learn nothing: rates of 1e-7, so every setting stays at chance."""
    chapter = "03_lr_decay_sequences"
    profile = tmp_path / "at_chance"
    profile.mkdir()
    values = yaml.safe_load((REPO / "params" / "smoke" / f"{chapter}.yaml").read_text())
    values.update(r0=1e-7, benchmark_lr=1e-7, quirk_free=False)
    (profile / f"{chapter}.yaml").write_text(yaml.safe_dump(values))
    _, (ch,) = build_report(str(profile), [chapter])
    assert ch.status == "ok", ch.error
    claims = ch.results["claims"]
    measured = [c for c in claims if c["section"] in ("4.2", "4.3")]
    assert measured and all(c["verdict"] == "not measurable" for c in measured)
    assert any("near chance" in c["reason"] for c in measured)
    page = (outputs / "at_chance" / "html" / f"{chapter}.html").read_text()
    assert not re.search(r"★</td>", page)  # no best setting is starred
    assert "no setting can be named most accurate" in page


# ----------------------------------------------------------------------------- every link resolves
class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        for key in ("href", "src"):
            if attrs.get(key) and not attrs[key].startswith("data:"):
                self.links.append(attrs[key])


def parse(path: Path) -> Links:
    links = Links()
    links.feed(path.read_text())
    return links


def test_every_link_on_every_page_resolves(smoke_report):
    out, index, chapters = smoke_report
    pages = [index] + [out / "html" / f"{c.name}.html" for c in chapters]
    checked = 0
    for page in pages:
        for link in parse(page).links:
            url = urlparse(link)
            assert not url.scheme and not url.netloc, f"{page.name}: external link {link}"
            target = (page.parent / unquote(url.path)).resolve() if url.path else page
            assert target.exists(), f"{page.name}: {link} → {target} is missing"
            if url.fragment and target.suffix == ".html":  # as browsers do: the raw fragment, then decoded
                ids = parse(target).ids
                assert url.fragment in ids or unquote(url.fragment) in ids, f"{page.name}: {link} names no anchor"
            checked += 1
    assert checked > 50


# ----------------------------------------------------------------------------- the real browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(not CHROMIUM and not os.environ.get("CI"), reason="Debian's chromium is not installed "
                    "(.ci/run installs it)")
def test_pages_load_cleanly_in_headless_chromium(smoke_report):
    from playwright.sync_api import sync_playwright

    out, _, chapters = smoke_report
    assert CHROMIUM, "chromium must be installed in CI"

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(out)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    problems = []
    shots = out / "screenshots"
    shots.mkdir(exist_ok=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-quic"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
            page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
            for path in ["index.html"] + [f"html/{c.name}.html" for c in chapters]:
                page.goto(f"{base}/{path}", wait_until="load")
                assert len(page.inner_text("body")) > 500, f"{path} looks blank"
                broken = page.evaluate("Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).length")
                assert broken == 0, f"{path}: {broken} images did not render"
                for href in page.evaluate("Array.from(document.querySelectorAll('a[href]')).map(a => a.href)"):
                    if not href.startswith(base):
                        problems.append(f"{path}: link leaves the report: {href}")
                    elif "#" not in href:  # files: each must be served
                        status = page.request.get(href).status
                        if status != 200:
                            problems.append(f"{path}: {href} → HTTP {status}")
                page.screenshot(path=str(shots / (Path(path).stem + ".png")), full_page=False)
            browser.close()
    finally:
        server.shutdown()
    assert not problems, problems
    assert (shots / "index.png").stat().st_size > 10_000


def test_pages_keep_results_and_drop_progress_output():
    """A cell's stderr (text progress bars) and tqdm's widgets (when ipywidgets is installed) never reach the
    page; its printed and displayed results do, after the folded source."""
    from hpnb.report import WIDGET, _fold_code

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("df = study.table()\ndf")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stderr", text="sweep: 100%|##########| 8/8\n"),
        nbformat.v4.new_output("display_data", data={WIDGET: {"model_id": "abc"}, "text/plain": "HBox(children=…)"}),
        nbformat.v4.new_output("stream", name="stdout", text="8 runs\n"),
        nbformat.v4.new_output("execute_result", data={"text/html": "<table></table>"}, execution_count=1),
    ]
    nb.cells = [cell]
    _fold_code(nb)
    kept = nb.cells[0].outputs
    assert len(kept) == 3
    assert kept[0]["data"]["text/html"].startswith('<details class="code"><summary>code</summary>')
    assert kept[1]["text"] == "8 runs\n" and kept[2]["data"] == {"text/html": "<table></table>"}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread scheduling is Linux's")
def test_notebook_kernels_run_only_on_cpu_time_the_training_leaves_idle():
    """The render threads drop to SCHED_IDLE, and a process they start (a notebook's kernel) inherits it; the
    thread that trains keeps its normal policy."""
    import subprocess
    from concurrent.futures import ThreadPoolExecutor

    from hpnb.report import yield_cpu

    def start_child():
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
        try:
            return os.sched_getscheduler(threading.get_native_id()), os.sched_getscheduler(child.pid)
        finally:
            child.kill()
            child.wait()

    with ThreadPoolExecutor(1, initializer=yield_cpu) as pool:
        thread_policy, child_policy = pool.submit(start_child).result()
    assert thread_policy == child_policy == os.SCHED_IDLE
    assert os.sched_getscheduler(threading.get_native_id()) == os.SCHED_OTHER
