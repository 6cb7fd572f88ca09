"""A self-contained `report.html`: inline CSS, images as data URIs, every text escaped."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field

from PIL import Image

from synth.storage import encode_png

__all__ = ["COLUMN_NAMES", "Section", "column_name", "render_html"]

# Tables scroll inside their own box rather than widening the page; headers wrap.
_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;
line-height:1.45}
.wrap{overflow-x:auto;max-width:100%;margin:.6em 0}
table{border-collapse:collapse;font-size:12.5px}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:right;vertical-align:top}
th{background:#f3f3f3;font-weight:600;max-width:11em;text-align:left}
h3{font-size:15px;font-weight:normal;color:#555;margin:.8em 0 .2em}
td{white-space:nowrap}
td:first-child,th:first-child,td.words{text-align:left}
td.words{white-space:normal;max-width:12em}
td:first-child{white-space:nowrap}
td.text{text-align:left;white-space:normal;min-width:14em;max-width:34em}
.note{background:#fff6d6;border-left:4px solid #e0b000;padding:.6em 1em}
.answer{background:#eef5ff;border-left:4px solid #2c7bb6;padding:.4em 1em}
ul.sentences li{margin:.35em 0}
ul.lead{font-size:17px;padding-left:1.2em} ul.lead li{margin:.3em 0}
h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}
figcaption{font-size:13px;color:#555}
"""

# Human names of the result columns; any other key is shown with "_" as a space.
COLUMN_NAMES = {
    "recipe": "Recipe",
    "seed": "Seed",
    "seeds": "Seeds",
    "test_set": "Test set",
    "accuracy": "Accuracy",
    "precision_macro": "Precision (macro)",
    "recall_macro": "Recall (macro)",
    "f1_macro": "F1 (macro)",
    "precision_weighted": "Precision (weighted)",
    "recall_weighted": "Recall (weighted)",
    "f1_weighted": "F1 (weighted)",
    "roc_auc_ovr": "ROC-AUC (one vs rest)",
    "name": "Class",
    "precision": "Precision",
    "recall": "Recall",
    "f1": "F1",
    "support": "Test images",
    "item": "Item",
    "value": "Value",
    "path": "File",
    "reason": "Reason",
}


def column_name(key: str) -> str:
    """The header a reader sees for a result column (`f1_macro` -> 'F1 (macro)')."""
    text = COLUMN_NAMES.get(key, str(key).replace("_", " "))
    return text[:1].upper() + text[1:]


@dataclass(frozen=True)
class Section:
    """A report section: paragraphs, then tables, then images (each with a caption)."""

    title: str
    paragraphs: tuple[str, ...] = ()
    tables: tuple[tuple[str, list[dict]], ...] = ()
    images: tuple[tuple[str, Image.Image], ...] = field(default=())
    note: str | None = None
    bullets: tuple[str, ...] = ()  # after the paragraphs: e.g. one verdict sentence each
    lead: tuple[str, ...] = ()  # before everything, in bold: the answer at a glance
    css_class: str | None = None  # e.g. 'answer' to set the verdict apart


def _table(rows: list[dict]) -> str:
    if not rows:
        return "<p><em>(no rows)</em></p>"
    cols = list(rows[0])
    head = "".join(f"<th>{html.escape(column_name(c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(_cell(r.get(c)) for c in cols) + "</tr>" for r in rows)
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f"<div class='wrap'>{table}</div>"


def _cell(value: object) -> str:
    """Numbers right-aligned on one line; words left-aligned; sentences also wrap."""
    text = _fmt(value)
    css = ""
    if isinstance(value, str) and not text[:1].isdigit() and text[:1] not in "+-.":
        css = " class='text'" if len(text) > 40 else " class='words'"
    return f"<td{css}>{html.escape(text)}</td>"


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
        css = f" class='{html.escape(section.css_class, quote=True)}'" if section.css_class else ""
        parts.append(f"<section{css}><h2>{html.escape(section.title)}</h2>")
        if section.lead:
            items = "".join(
                f"<li><strong>{html.escape(line)}</strong></li>" for line in section.lead
            )
            parts.append(f"<ul class='lead'>{items}</ul>")
        if section.note:
            parts.append(f"<p class='note'>{html.escape(section.note)}</p>")
        parts += [f"<p>{html.escape(p)}</p>" for p in section.paragraphs]
        if section.bullets:
            items = "".join(f"<li>{html.escape(b)}</li>" for b in section.bullets)
            parts.append(f"<ul class='sentences'>{items}</ul>")
        for caption, rows in section.tables:
            heading = f"<h3>{html.escape(caption)}</h3>" if caption else ""
            parts.append(heading + _table(rows))
        parts += [_image(caption, image) for caption, image in section.images]
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)
