"""A self-contained `report.html`: inline CSS, images as data URIs, every text escaped."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field

from PIL import Image

from synth.storage import encode_png

__all__ = ["Section", "render_html"]

_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left}
.note{background:#fff6d6;border-left:4px solid #e0b000;padding:.6em 1em}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}
"""


@dataclass(frozen=True)
class Section:
    """A report section: paragraphs, then tables, then images (each with a caption)."""

    title: str
    paragraphs: tuple[str, ...] = ()
    tables: tuple[tuple[str, list[dict]], ...] = ()
    images: tuple[tuple[str, Image.Image], ...] = field(default=())
    note: str | None = None


def _table(rows: list[dict]) -> str:
    if not rows:
        return "<p><em>(no rows)</em></p>"
    cols = list(rows[0])
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in cols) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(value: object) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _image(caption: str, image: Image.Image) -> str:
    data = base64.b64encode(encode_png(image)).decode()
    alt = html.escape(caption, quote=True)
    img = f'<img alt="{alt}" src="data:image/png;base64,{data}">'
    return f"<figure>{img}<figcaption>{alt}</figcaption></figure>"


def render_html(title: str, sections: list[Section]) -> str:
    """The whole report as one HTML string that opens offline."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.note:
            parts.append(f"<p class='note'>{html.escape(section.note)}</p>")
        parts += [f"<p>{html.escape(p)}</p>" for p in section.paragraphs]
        for caption, rows in section.tables:
            parts.append(f"<h3>{html.escape(caption)}</h3>{_table(rows)}")
        parts += [_image(caption, image) for caption, image in section.images]
    parts.append("</body></html>")
    return "\n".join(parts)
