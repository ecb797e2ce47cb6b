"""The one renderer of verdicts and reference numbers, for chapter pages and the report's index alike."""
from __future__ import annotations

import html
from typing import Iterable, Optional

from .claims import SOURCE_NAMES, SOURCES, VERDICTS, tally

e = html.escape


def verdict_class(verdict: str) -> str:
    return verdict.replace(" ", "-")


def tally_html(records: list[dict]) -> str:
    """A small table: one row per source of claims, one column per verdict."""
    counts = tally(records)
    head = "".join(f"<th>{v}</th>" for v in VERDICTS)
    rows = "".join(
        f'<tr><th scope="row">{e(SOURCE_NAMES[s])}</th>'
        + "".join(f'<td class="{verdict_class(v)}">{counts[s][v]}</td>' for v in VERDICTS)
        + f"<td>{sum(counts[s].values())}</td></tr>"
        for s in SOURCES if sum(counts[s].values()))
    return f'<table class="tally"><thead><tr><th></th>{head}<th>total</th></tr></thead><tbody>{rows}</tbody></table>'


def verdict_rows(records: Iterable[dict], link: Optional[str] = None, chapter: Optional[str] = None) -> str:
    """Table rows (without the table) for verdict records; ``link`` is the page the claim anchors live on."""
    rows = []
    for r in records:
        anchor = f"claim-{r['key']}"
        claim = e(r["claim"])
        if link is not None:
            claim = f'<a href="{e(link)}#{anchor}">{claim}</a>'
        why = f'<br><small>why: {e(r["reason"])}</small>' if r.get("reason") and r["reason"] != r["evidence"] else ""
        cells = ([e(chapter)] if chapter is not None else []) + [
            f'{claim}<br><small class="source">{e(r["source"])} · § {e(r["section"])}</small>',
            f'<span class="verdict {verdict_class(r["verdict"])}">{e(r["verdict"])}</span>',
            f'{e(r["evidence"])}{why}<br><small class="rule">rule: {e(r["rule"])}</small>']
        rows.append(f'<tr id="{anchor}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return "".join(rows)


LEGEND = ("Verdicts: <b>supported</b> or <b>contradicted</b> when the difference exceeds the claim's minimum effect "
          "and twice its standard error across seeds (with one seed, the minimum effect alone); <b>inconclusive</b> "
          "when it does not; <b>not measurable</b> when the runs cannot bear on the claim: no finished run or a "
          "diverged one, a metric that never fired within the epochs, every compared setting near chance (less "
          "than a tenth of the way from chance to a perfect score), or an exact tie.")


def verdict_table(records: list[dict], link: Optional[str] = None, with_chapter: bool = False) -> str:
    head = (["chapter"] if with_chapter else []) + ["claim", "verdict", "evidence and rule"]
    if with_chapter:
        body = "".join(verdict_rows([r], link=r.get("link"), chapter=r.get("chapter", "")) for r in records)
    else:
        body = verdict_rows(records, link)
    return (f'<table class="verdicts"><thead><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr></thead>'
            f"<tbody>{body}</tbody></table>")


def _number(value, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def reference_table(records: list[dict], with_chapter: bool = False) -> str:
    """Write-up number, reproduced mean ± spread, difference and n, one row per reference number."""
    head = (["chapter"] if with_chapter else []) + ["table", "item", "write-up", "reproduced (mean ± sd)",
                                                     "difference", "n", "unit"]
    rows = []
    for r in records:
        spread = "" if r["std"] is None or r["n_seeds"] < 2 else f" ± {r['std']:.3g}"
        cells = ([e(r.get("chapter", ""))] if with_chapter else []) + [
            e(r.get("table", "")), e(r["item"]), _number(r["reference"]),
            (_number(r["reproduced"]) + spread) if r["reproduced"] is not None else "—",
            "—" if r["difference"] is None else f"{r['difference']:+.3g}" + (" points" if r.get("unit") == "%" else ""),
            str(r["n_seeds"]), e(r.get("unit", ""))]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return (f'<table class="references"><thead><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


__all__ = ["tally_html", "verdict_table", "verdict_rows", "reference_table", "verdict_class", "LEGEND"]
