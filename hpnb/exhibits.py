"""Figures and tables as a chapter shows them: numbered, captioned, with alt text, an anchor, and a link to
their data as CSV. They are returned, not displayed: a notebook cell shows one by ending with it."""
from __future__ import annotations

import base64
import html
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pandas as pd


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def link_to(path: Path) -> str:
    """``path`` relative to the working directory (the notebook's folder), as a link target. The report
    renderer rewrites such links for the HTML page's own folder."""
    return Path(os.path.relpath(path, Path.cwd())).as_posix()


@dataclass
class Figure:
    number: str
    title: str
    png: bytes
    data_path: Optional[Path] = None

    @property
    def anchor(self) -> str:
        return f"figure-{slug(self.number)}"

    def _repr_html_(self) -> str:
        e = html.escape
        image = base64.b64encode(self.png).decode()
        data = f' · <a href="{e(link_to(self.data_path))}" download>data (CSV)</a>' if self.data_path else ""
        return (f'<figure id="{self.anchor}" class="hpnb-figure"><img alt="{e(self.title)}" '
                f'src="data:image/png;base64,{image}"><figcaption><b>Figure {e(self.number)}.</b> '
                f'{e(self.title)}{data}</figcaption></figure>')

    def _repr_png_(self) -> bytes:  # for frontends without HTML
        return self.png


def render_png(fig, dpi: int = 110) -> bytes:
    """The matplotlib figure as PNG bytes; the figure is closed so the notebook does not show it twice."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


@dataclass
class Table:
    number: str
    title: str
    frame: pd.DataFrame
    data_path: Optional[Path] = None
    note: str = ""

    @property
    def anchor(self) -> str:
        return f"table-{slug(self.number)}"

    def _repr_html_(self) -> str:
        e = html.escape
        data = f' · <a href="{e(link_to(self.data_path))}" download>data (CSV)</a>' if self.data_path else ""
        note = f'<p class="table-note">{e(self.note)}</p>' if self.note else ""
        frame = self.frame.reset_index() if any(self.frame.index.names) else self.frame
        body = frame.to_html(classes="hpnb-table", border=0, na_rep="—", escape=True, index=False)
        return (f'<div id="{self.anchor}" class="hpnb-table-block"><p class="caption"><b>Table {e(self.number)}.</b> '
                f'{e(self.title)}{data}</p>{body}{note}</div>')


@dataclass
class Html:
    """Any HTML fragment a study composes (verdict lists, algorithm boxes)."""

    text: str

    def _repr_html_(self) -> str:
        return self.text


@dataclass
class Text:
    """Prose computed from the runs, in Markdown."""

    markdown: str

    def _repr_markdown_(self) -> str:
        return self.markdown

    def _repr_html_(self) -> str:
        import mistune

        return mistune.html(self.markdown)


class Section:
    """Several exhibits shown together in order (a figure, its reading, a table, the verdicts), so a chapter
    cell shows a whole step of the write-up by ending with one call."""

    def __init__(self, *parts):
        self.parts = [p for p in parts if p is not None]

    def _repr_html_(self) -> str:
        return "\n".join(p._repr_html_() if hasattr(p, "_repr_html_") else html.escape(str(p)) for p in self.parts)

    def __iter__(self):
        return iter(self.parts)


__all__ = ["Figure", "Table", "Html", "Text", "Section", "render_png", "slug", "link_to"]
