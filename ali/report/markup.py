"""HTML building blocks for the self-contained report pages (ali.report.pages).

Everything a page needs travels inside it: an inline style sheet with system fonts only, pictures
as base64 data URIs, no script. So a report opens from disk, offline, years later, and the pieces
here never emit a reference to anything outside the page.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from ali.report.curves import number
from ali.version import __version__

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1d232b;margin:0;
background:#f4f5f7}main{max-width:1120px;margin:0 auto;padding:18px 28px 48px;background:#fff}
h1{font-size:26px;margin:8px 0 2px}h2{font-size:20px;margin:34px 0 10px;padding-bottom:4px;border-bottom:2px solid #e1e4e8}
h3{font-size:16px;margin:18px 0 6px}.sub{color:#57606a;margin:0 0 10px}nav a{margin-right:14px;color:#0b5cad;
text-decoration:none}table{border-collapse:collapse;margin:6px 0 12px;font-size:14px}th,td{padding:4px 10px;
border-bottom:1px solid #e1e4e8;text-align:left;vertical-align:top}th{background:#f0f2f5}
tr:nth-child(even) td{background:#fafbfc}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.pub{color:#444;font-size:13px}.pub span{color:#6e7781}.missing{background:#fff8e1;border:1px solid #f0c36d;
border-radius:6px;padding:8px 14px;margin:12px 0}.missing li{margin:2px 0}.none{color:#6e7781;font-style:italic}
figure{margin:10px 0 22px}figcaption{color:#57606a;font-size:13px;margin-top:4px}
td:last-child .pub{display:block;min-width:18em}img{max-width:100%;height:auto;border:1px solid #e1e4e8}img.px{image-rendering:pixelated}
.row{display:flex;flex-wrap:wrap;gap:10px}.row img{max-width:540px}
.pics{display:flex;flex-wrap:wrap;gap:0 22px}.pics figure{margin:0 0 14px;max-width:520px}.pics figure.wide{max-width:100%}
.grid{display:flex;flex-wrap:wrap;gap:14px}.grid figure{margin:0;width:250px}.grid.wide figure{width:530px}
.grid img{width:100%}.scroll td:first-child{white-space:nowrap}
.scroll{overflow-x:auto}code,pre{font:13px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{background:#f6f8fa;padding:10px;overflow:auto}details{margin:8px 0}summary{cursor:pointer;color:#0b5cad}
footer{margin-top:40px;color:#6e7781;font-size:12px}
"""


def esc(value: Any) -> str:
    """Text made safe to put inside HTML (and inside a quoted attribute)."""
    return html.escape(str(value))


def fmt(value: Any) -> str:
    """A metric or config value as the page prints it: null as an em dash, infinities as ∞."""
    if value is None:
        return "—"
    x = number(value)
    if math.isnan(x):
        return "NaN" if isinstance(value, (float, str)) and str(value).strip().lower() == "nan" else str(value)
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if x.is_integer() and abs(x) < 1e15:
        return f"{int(x):,}"
    return f"{x:.4g}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    """Cells are HTML already; columns in `numeric` are right-aligned."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def section(anchor: str, title: str, body: str) -> str:
    """A titled section the page's navigation links to by `anchor`."""
    return f'<section id="{anchor}"><h2>{esc(title)}</h2>{body}</section>'


def note(text: str) -> str:
    """A muted sentence: what is absent, or why."""
    return f'<p class="none">{esc(text)}</p>'


def code(text: Any) -> str:
    """A file or key name, set in monospace."""
    return f"<code>{esc(text)}</code>"


def img(png: bytes, alt: str, width: int | None = None, pixelated: bool = False) -> str:
    """PNG bytes as an <img> with a data URI: the picture travels inside the page."""
    size = f' width="{width}"' if width else ""
    cls = ' class="px"' if pixelated else ""
    return f'<img src="data:image/png;base64,{base64.b64encode(png).decode()}" alt="{esc(alt)}"{size}{cls}>'


def picture(path: Path, alt: str) -> str:
    """A PNG file embedded as a data URI. A small grid (28-pixel digits) is shown enlarged with
    crisp pixels; a file that is not a readable image is reported in words, not as a broken picture."""
    try:
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as im:
            im.load()  # decodes every pixel: a truncated file fails here, not in the reader's browser
            width = im.size[0]
            if im.format != "PNG":  # the data URI says image/png
                with io.BytesIO() as buf:
                    im.save(buf, format="PNG")
                    data = buf.getvalue()
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
        return note(f"{path.name} is damaged: it cannot be read as an image.")
    small = width < 400
    return img(data, alt, width=min(2 * width, 520) if small else None, pixelated=small)


def document(title: str, subtitle: str, nav: Sequence[tuple[str, str]], body: str) -> str:
    """The whole page. `subtitle` and `body` are HTML; `nav` is (anchor, label) pairs."""
    links = "".join(f'<a href="#{a}">{esc(t)}</a>' for a, t in nav)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>"
        f'<h1>{esc(title)}</h1><p class="sub">{subtitle}</p><nav>{links}</nav>{body}'
        f"<footer>Written by ali {esc(__version__)} (ali report) on {when}. Self-contained: it opens from disk.</footer>"
        "</main></body></html>\n"
    )
