"""The report end to end: every chapter through papermill with the smoke profile, HTML checks, failure
isolation, and the pages in a real headless browser."""
import json
import os
import re
import shutil
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import nbformat
import pytest

from hpnb import ConfigError
from hpnb.report import build_report, plan

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
        assert len(re.findall(r"<h2", page)) >= 3, ch.name  # the write-up's sections
        assert len(re.findall(r'<img[^>]+src="data:image/png;base64,', page)) >= 2, ch.name  # embedded figures
        assert "<table" in page and "Assumptions" in page and "Data used" in page
        assert not re.search(r'(src|href)="https?://', page), "the page must not fetch anything"
        assert 'class="code"' in page  # code folded, not shown inline
        assert "Traceback" not in page
        executed = nbformat.read(out / "notebooks" / f"{ch.name}.ipynb", as_version=4)
        assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)


def test_results_files_hold_references_and_verdicts(smoke_report):
    out, _, chapters = smoke_report
    for ch in chapters:
        data = json.loads((out / "results" / f"{ch.name}.json").read_text())
        assert data["profile"] == "smoke" and data["data"]
        assert data["claims"] and all(c["verdict"] in ("supported", "contradicted", "inconclusive")
                                      for c in data["claims"])
        refs = data["references"]
        assert refs and all({"reference", "reproduced", "difference", "n_seeds"} <= set(r) for r in refs)
        assert data["runs"]["trained"] + data["runs"]["cached"] > 0


def test_planned_runs_are_exactly_the_runs_the_notebooks_train(smoke_report, outputs):
    """``planned_runs`` (what ``hpnb project`` costs) must match what the executed notebooks put in the store."""
    import itertools

    from hpnb.chapters import planned_runs, validate_file
    from hpnb.chapters.mobilenet_cifar100 import planned_runs as chapter2_runs
    from hpnb.store import RunStore

    stored = set(RunStore(outputs / "runs").list_runs().hash)
    plans = {ch: validate_file(ch, REPO / "notebooks" / f"{ch}.ipynb", REPO / "params" / "smoke" / f"{ch}.yaml")
             for ch in CHAPTERS}
    fixed = {cfg.hash for ch in CHAPTERS if not ch.startswith("02") for cfg in planned_runs(ch, plans[ch])}
    p2 = plans["02_mobilenet_cifar100"]
    # chapter 2 picks its rate and weight decay from results: exactly one choice must account for the rest
    matches = [{cfg.hash for cfg in chapter2_runs(p2, lr, wd)}
               for lr, wd in itertools.product(p2.params["lrs"], p2.params["weight_decays"])]
    assert [fixed | m == stored for m in matches].count(True) == 1
    trained = sum(json.loads((smoke_report[0] / "results" / f"{c}.json").read_text())["runs"]["trained"]
                  for c in CHAPTERS)
    assert trained == len(stored)  # each planned run trained once, in workers (chapter 4) or not


def test_index_has_chapters_scorecard_and_environment(smoke_report):
    out, index, chapters = smoke_report
    page = index.read_text()
    for ch in chapters:
        assert f'href="html/{ch.name}.html"' in page
    assert "Scorecard: the write-ups&#x27; claims" in page or "Scorecard: the write-ups' claims" in page
    assert page.count('class="supported"') + page.count('class="contradicted"') + page.count('class="inconclusive"') >= 10
    assert "torch" in page and "smoke" in page and "Environment" in page


def test_rerun_reuses_cached_runs(smoke_report):
    _, chapters = build_report("smoke", ["04"])
    runs = chapters[0].results["runs"]
    assert runs["trained"] == 0 and runs["cached"] > 0


def test_failed_chapter_is_reported_and_the_others_still_run(outputs, tmp_path):
    root = tmp_path / "project"
    (root / "notebooks").mkdir(parents=True)
    shutil.copytree(REPO / "params", root / "params")
    for name in ("03_lr_decay_sequences", "04_ldlt_lipschitz_init"):
        shutil.copy(REPO / "notebooks" / f"{name}.ipynb", root / "notebooks")
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
                text = page.inner_text("body")
                assert len(text) > 500, f"{path} looks blank"
                broken = page.evaluate("Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).length")
                assert broken == 0, f"{path}: {broken} images did not render"
                page.screenshot(path=str(shots / (Path(path).stem + ".png")), full_page=False)
            browser.close()
    finally:
        server.shutdown()
    assert not problems, problems
    assert (shots / "index.png").stat().st_size > 10_000
