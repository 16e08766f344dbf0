"""Charts drawn as inline SVG: one self-contained HTML report (no scripts, no network), and
the same drawing as one PNG.

Every chart is drawn from a `model.Chart`'s rows, so the pictures show exactly the
numbers the terminal report prints; the HTML also embeds those rows as JSON
(`<script type="application/json" id="clickstream-data">`) for machines. Panels sit where
the saved dashboard puts them, on its 48-column grid.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from clickstream.dashboards.model import Chart, Report
from clickstream.errors import ClickstreamError, ConfigError

#: The colour-blind-safe palette OpenSearch Dashboards uses for series.
PALETTE = (
    "#54B399",
    "#6092C0",
    "#D36086",
    "#9170B8",
    "#CA8EAE",
    "#D6BF57",
    "#B9A888",
    "#DA8B45",
    "#AA6556",
    "#E7664C",
)
FONT = "Inter, 'Segoe UI', Helvetica, Arial, 'Liberation Sans', 'DejaVu Sans', sans-serif"
INK, MUTED, RULE, BAR = "#1a1c21", "#69707d", "#e3e8f2", "#6092C0"
#: Pixels per dashboard grid column and row; the page is 48 columns wide.
COL_PX, ROW_PX, GAP, TITLE_PX, PAD = 26, 30, 12, 46, 14
PAGE_W = 48 * COL_PX
HEADER_PX = 86


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    if isinstance(value, int | float):
        return f"{int(value):,}"
    return str(value)


def _clip(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: max(chars - 1, 1)] + "…"


def _text(x: float, y: float, body: str, *, size: int = 12, **attrs: Any) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{_e(v)}"' for k, v in attrs.items())
    fill = "" if "fill" in attrs else f' fill="{INK}"'
    return f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}"{fill}{extra}>{_e(body)}</text>'


def _nice_max(value: float) -> tuple[float, float]:
    """An axis maximum at or above `value` and its tick step (1, 2 or 5 times a power of 10)."""
    if value <= 0:
        return 1.0, 1.0
    raw = value / 4
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return math.ceil(value / step) * step, step


# -- one drawing per visualization type -------------------------------------------------------


def metric_svg(chart: Chart, w: int, h: int) -> str:
    values = chart.rows[0] if chart.rows else [0] * len(chart.columns)
    cells = len(chart.columns)
    out = []
    for i, (column, value) in enumerate(zip(chart.columns, values, strict=False)):
        cx = w * (i + 0.5) / cells
        size = min(44, int(w / cells / 4))
        out.append(
            _text(cx, h / 2 + 4, _fmt(value), size=size, text_anchor="middle", font_weight="700")
        )
        out.append(_text(cx, h / 2 + 30, column.label, size=13, text_anchor="middle", fill=MUTED))
    return "".join(out)


def pie_svg(chart: Chart, w: int, h: int) -> str:
    total = sum(float(r[-1]) for r in chart.rows) or 1.0
    r_out = min(h / 2 - 8, w * 0.22)
    r_in = r_out * 0.58
    cx, cy = r_out + 10, h / 2
    out, angle = [], -math.pi / 2
    for i, row in enumerate(chart.rows):
        share = float(row[-1]) / total
        end = angle + share * 2 * math.pi
        color = PALETTE[i % len(PALETTE)]
        if share >= 0.9999:
            out.append(
                f'<circle cx="{cx}" cy="{cy}" r="{(r_out + r_in) / 2}" fill="none" '
                f'stroke="{color}" stroke-width="{r_out - r_in}"/>'
            )
        elif share > 0:
            large = 1 if end - angle > math.pi else 0
            p = [
                (cx + r * math.cos(a), cy + r * math.sin(a))
                for r, a in ((r_out, angle), (r_out, end), (r_in, end), (r_in, angle))
            ]
            out.append(
                f'<path d="M{p[0][0]:.2f},{p[0][1]:.2f} A{r_out},{r_out} 0 {large} 1 '
                f"{p[1][0]:.2f},{p[1][1]:.2f} L{p[2][0]:.2f},{p[2][1]:.2f} "
                f'A{r_in},{r_in} 0 {large} 0 {p[3][0]:.2f},{p[3][1]:.2f} Z" fill="{color}" '
                f'stroke="#fff" stroke-width="1.5"><title>{_e(row[0])}: {_fmt(row[-1])}</title>'
                "</path>"
            )
        angle = end
    out.append(_text(cx, cy + 2, _fmt(total), size=18, text_anchor="middle", font_weight="700"))
    out.append(_text(cx, cy + 18, "events", size=11, text_anchor="middle", fill=MUTED))
    lx, line = cx + r_out + 24, min(22, (h - 10) / max(len(chart.rows), 1))
    top = cy - line * len(chart.rows) / 2
    for i, row in enumerate(chart.rows):
        y = top + line * i + line / 2
        color = PALETTE[i % len(PALETTE)]
        out.append(f'<rect x="{lx}" y="{y - 5:.1f}" width="10" height="10" rx="2" fill="{color}"/>')
        out.append(_text(lx + 16, y + 4, row[0]))
        pct = 100 * float(row[-1]) / total
        out.append(_text(w - 6, y + 4, f"{_fmt(row[-1])}  {pct:4.1f}%", text_anchor="end"))
    return "".join(out)


def bars_svg(chart: Chart, w: int, h: int) -> str:
    rows = chart.rows
    top = max((float(r[-1]) for r in rows), default=0.0) or 1.0
    label_w = min(130, int(w * 0.32))
    line = (h - 4) / max(len(rows), 1)
    bar_h = max(min(line * 0.7, 22), 3)
    out = []
    for i, row in enumerate(rows):
        y = 2 + i * line
        width = (w - label_w - 60) * float(row[-1]) / top
        out.append(_text(label_w - 8, y + line / 2 + 4, _clip(str(row[0]), 18), text_anchor="end"))
        out.append(
            f'<rect x="{label_w}" y="{y + (line - bar_h) / 2:.1f}" width="{width:.1f}" '
            f'height="{bar_h:.1f}" rx="2" fill="{BAR}"><title>{_e(row[0])}: {_fmt(row[-1])}'
            "</title></rect>"
        )
        out.append(_text(label_w + width + 6, y + line / 2 + 4, _fmt(row[-1]), fill=MUTED))
    return "".join(out)


def _time_label(iso: str, interval: str | None, previous: str | None) -> str:
    when = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    if interval and interval.endswith(("d", "M", "y")):
        return when.strftime("%b %d")
    clock = "%H:%M:%S" if interval and interval.endswith("s") else "%H:%M"
    if interval and interval.endswith("ms"):
        clock += f".{when.microsecond // 100_000}"
    if previous is None or previous[:10] != iso[:10]:
        return when.strftime(f"%b %d {clock}")
    return when.strftime(clock)


def line_svg(chart: Chart, w: int, h: int) -> str:
    times = sorted({str(r[0]) for r in chart.rows})
    series: dict[str, dict[str, float]] = {}
    for row in chart.rows:
        name = str(row[1]) if len(row) > 2 else chart.columns[-1].label
        series.setdefault(name, {})[str(row[0])] = float(row[-1])
    ordered = sorted(series, key=lambda s: -sum(series[s].values()))
    left, right, top, bottom = 48, 130, 10, 30
    pw, ph = w - left - right, h - top - bottom
    ymax, step = _nice_max(max((max(s.values()) for s in series.values()), default=0.0))
    out = []
    tick = 0.0
    while tick <= ymax + 1e-9:
        y = top + ph - ph * tick / ymax
        out.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="{RULE}"/>'
        )
        out.append(_text(left - 6, y + 4, _fmt(tick), size=11, text_anchor="end", fill=MUTED))
        tick += step
    n = len(times)

    def x_at(i: int) -> float:
        return left + (pw * i / (n - 1) if n > 1 else pw / 2)

    every = max(1, math.ceil(n / max(pw // 90, 1)))
    previous = None
    for i in range(0, n, every):
        label = _time_label(times[i], chart.interval, previous)
        previous = times[i]
        out.append(_text(x_at(i), h - 10, label, size=11, text_anchor="middle", fill=MUTED))
    for k, name in enumerate(ordered):
        color = PALETTE[k % len(PALETTE)]
        points = " ".join(
            f"{x_at(i):.1f},{top + ph - ph * series[name].get(t, 0.0) / ymax:.1f}"
            for i, t in enumerate(times)
        )
        out.append(
            f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="2" '
            f'stroke-linejoin="round"><title>{_e(name)}</title></polyline>'
        )
        ly = top + 8 + k * 20
        out.append(
            f'<rect x="{w - right + 16}" y="{ly - 5}" width="10" height="10" rx="2" '
            f'fill="{color}"/>'
        )
        out.append(_text(w - right + 32, ly + 4, name))
    return "".join(out)


def _blend(share: float) -> str:
    low, high = (247, 251, 255), (8, 69, 148)  # the "Blues" scheme's ends
    r, g, b = (round(lo + (hi - lo) * share) for lo, hi in zip(low, high, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def _is_time(value: str) -> bool:
    try:
        dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return "T" in value


def heatmap_svg(chart: Chart, w: int, h: int) -> str:
    xs = list(dict.fromkeys(str(r[0]) for r in chart.rows))
    # Time buckets (a Grafana heatmap's columns) are labelled by the clock, as on a line.
    names = {key: key for key in xs}
    if xs and all(_is_time(key) for key in xs):
        previous = None
        for key in xs:
            names[key], previous = _time_label(key, chart.interval, previous), key
    ys = list(dict.fromkeys(str(r[1]) for r in chart.rows))
    cells = {(str(r[0]), str(r[1])): float(r[-1]) for r in chart.rows}
    top_value = max(cells.values(), default=0.0) or 1.0
    left, top, bottom = 70, 6, 56
    cw = (w - left - 6) / max(len(xs), 1)
    ch = (h - top - bottom) / max(len(ys), 1)
    out = []
    for j, ykey in enumerate(ys):
        out.append(_text(left - 8, top + ch * (j + 0.5) + 4, ykey, text_anchor="end"))
        for i, xkey in enumerate(xs):
            value = cells.get((xkey, ykey), 0.0)
            share = value / top_value
            x, y = left + cw * i, top + ch * j
            out.append(
                f'<rect x="{x + 1:.1f}" y="{y + 1:.1f}" width="{cw - 2:.1f}" height="{ch - 2:.1f}" '
                f'rx="2" fill="{_blend(share)}"><title>{_e(xkey)} / {_e(ykey)}: {_fmt(value)}'
                "</title></rect>"
            )
            if cw < 7 * len(_fmt(value)) + 4 or ch < 14:
                continue  # too small a cell to print in: the colour and its title tell
            ink = "#ffffff" if share > 0.55 else INK
            out.append(
                _text(
                    x + cw / 2, y + ch / 2 + 4, _fmt(value), size=11, text_anchor="middle", fill=ink
                )
            )
    # Labels wider than their column are slanted rather than cut.
    slant = max((len(names[key]) for key in xs), default=0) * 6.2 > cw
    # At most one label per 14 pixels: a long time axis shows every few columns.
    every = max(1, math.ceil(len(xs) * 14 / max(w - left, 1))) if slant else 1
    for i, xkey in enumerate(xs):
        if i % every:
            continue
        x, y = left + cw * (i + 0.5), h - bottom + 16
        if slant:
            out.append(
                _text(x + 4, y, _clip(names[xkey], 14), size=11, text_anchor="end", fill=MUTED,
                      transform=f"rotate(-30 {x + 4:.1f} {y:.1f})")
            )  # fmt: skip
        else:
            out.append(_text(x, y, names[xkey], size=11, text_anchor="middle", fill=MUTED))
    return "".join(out)


def table_svg(chart: Chart, w: int, h: int) -> str:
    metrics = [c for c in chart.columns if c.role == "metric"]
    buckets = [c for c in chart.columns if c.role == "bucket"]
    line = min(26.0, (h - 26) / max(len(chart.rows), 1))
    metric_w = 86
    text_w = w - metric_w * len(metrics) - 30
    out = [_text(30, 14, " / ".join(c.label for c in buckets), size=11, fill=MUTED)]
    for k, column in enumerate(metrics):
        x = w - metric_w * (len(metrics) - 1 - k) - 4
        out.append(_text(x, 14, column.label, size=11, text_anchor="end", fill=MUTED))
    out.append(f'<line x1="0" x2="{w}" y1="22" y2="22" stroke="{RULE}"/>')
    first = max((float(r[len(buckets)]) for r in chart.rows), default=0.0) or 1.0
    for i, row in enumerate(chart.rows):
        y = 22 + line * i
        share = float(row[len(buckets)]) / first
        out.append(
            f'<rect x="26" y="{y + 3:.1f}" width="{text_w * share:.1f}" height="{line - 6:.1f}" '
            f'rx="2" fill="{BAR}" fill-opacity="0.13"/>'
        )
        out.append(_text(4, y + line / 2 + 4, f"{i + 1}", size=11, fill=MUTED))
        label = " / ".join(str(v) for v in row[: len(buckets)])
        out.append(_text(30, y + line / 2 + 4, _clip(label, int(text_w / 6.6))))
        for k, value in enumerate(row[len(buckets) :]):
            x = w - metric_w * (len(metrics) - 1 - k) - 4
            out.append(_text(x, y + line / 2 + 4, _fmt(value), text_anchor="end"))
    if not chart.rows:
        out.append(
            _text(w / 2, h / 2, "no events in this time range", text_anchor="middle", fill=MUTED)
        )
    return "".join(out)


DRAWERS: dict[str, Callable[[Chart, int, int], str]] = {
    "metric": metric_svg,
    "pie": pie_svg,
    "horizontal_bar": bars_svg,
    "histogram": bars_svg,
    "line": line_svg,
    "area": line_svg,
    "heatmap": heatmap_svg,
    "table": table_svg,
}


def chart_svg(chart: Chart, w: int, h: int) -> str:
    """One chart as a standalone SVG element of `w` x `h` pixels."""
    draw = DRAWERS.get(chart.type)
    if draw is None:
        raise ConfigError(f"visualization {chart.id}: type {chart.type!r} cannot be drawn")
    if chart.rows or chart.type == "table":
        body = draw(chart, w, h)
    else:
        body = _text(w / 2, h / 2, "no events in this time range", text_anchor="middle", fill=MUTED)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}" font-family="{_e(FONT)}" role="img" '
        f'aria-label="{_e(chart.title)}">{body}</svg>'
    )


# -- layout -----------------------------------------------------------------------------------


def _boxes(charts: Sequence[Chart]) -> list[tuple[Chart, int, int, int, int]]:
    """Each chart's panel in pixels (x, y, w, h): the dashboard's grid, else two columns."""
    out = []
    for n, chart in enumerate(charts):
        gx, gy, gw, gh = chart.grid or ((n % 2) * 24, (n // 2) * 14, 24, 14)
        out.append((chart, gx * COL_PX, gy * ROW_PX, gw * COL_PX - GAP, gh * ROW_PX - GAP))
    return out


def _title(report: Report) -> tuple[str, str]:
    span = report.time_range
    when = f"{span.start:%Y-%m-%d %H:%M} to {span.end:%Y-%m-%d %H:%M} UTC" if span else "no events"
    return "Clickstream: news-site activity", (
        f"{report.pattern} · {when} · generated {report.generated_at:%Y-%m-%d %H:%M:%S} UTC"
    )


def _data_json(report: Report) -> str:
    # No `<` at all inside the script element (`</script>` would end it); JSON reads \u003c.
    return json.dumps(report.as_dict(), ensure_ascii=False, indent=1).replace("<", "\\u003c")


#: What the footer says computed the charts, by the report's source.
FOOTERS = {
    "opensearch": "Computed by running the aggregations of the saved visualizations in the "
    "saved objects against OpenSearch.",
    "clickhouse": "Computed by running the SQL of the Grafana dashboard's panels, with "
    "Grafana's macros expanded for this time range, against ClickHouse.",
}

CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f5f7fa;color:%(ink)s;font-family:%(font)s}
header{padding:22px 28px 8px}
h1{font-size:22px;margin:0 0 4px}
.sub{color:%(muted)s;font-size:13px}
main{position:relative;margin:12px 28px 28px;width:%(width)spx}
section{position:absolute;background:#fff;border:1px solid #d3dae6;border-radius:6px;
  box-shadow:0 1px 2px rgba(0,0,0,.04);padding:10px %(pad)spx 0;overflow:hidden}
h2{font-size:14px;margin:0;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
p{margin:2px 0 8px;font-size:11.5px;color:%(muted)s;white-space:nowrap;overflow:hidden;
  text-overflow:ellipsis}
footer{margin:0 28px 24px;color:%(muted)s;font-size:12px}
"""


def html_report(report: Report) -> str:
    """The whole report as one HTML document: inline SVG and data, nothing fetched."""
    title, sub = _title(report)
    boxes = _boxes(report.charts)
    height = max((y + h for _, _, y, _, h in boxes), default=0)
    panels = []
    for chart, x, y, w, h in boxes:
        svg = chart_svg(chart, w - 2 * PAD, h - TITLE_PX - 8)
        panels.append(
            f'<section id="{_e(chart.id)}" data-type="{_e(chart.type)}" '
            f'style="left:{x}px;top:{y}px;width:{w}px;height:{h}px">'
            f"<h2>{_e(chart.title.removeprefix('Clickstream: '))}</h2>"
            f"<p>{_e(chart.description)}</p>{svg}</section>"
        )
    css = CSS % {"ink": INK, "muted": MUTED, "font": FONT, "width": PAGE_W, "pad": PAD}
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{css}</style></head><body>"
        f'<header><h1>{_e(title)}</h1><div class="sub">{_e(sub)}</div></header>'
        f'<main style="height:{height}px">{"".join(panels)}</main>'
        f"<footer>{_e(FOOTERS.get(report.source, FOOTERS['opensearch']))} The numbers behind "
        'every chart are embedded below as JSON (id "clickstream-data").</footer>'
        f'<script type="application/json" id="clickstream-data">{_data_json(report)}</script>'
        "</body></html>\n"
    )


def dashboard_svg(report: Report) -> str:
    """The whole report as one SVG picture, panels where the dashboard puts them."""
    title, sub = _title(report)
    boxes = _boxes(report.charts)
    width = PAGE_W + 2 * 24
    height = HEADER_PX + max((y + h for _, _, y, _, h in boxes), default=0) + 24
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="{_e(FONT)}">',
        f'<rect width="{width}" height="{height}" fill="#f5f7fa"/>',
        _text(24, 40, title, size=22, font_weight="700"),
        _text(24, 64, sub, size=13, fill=MUTED),
    ]
    for chart, x, y, w, h in boxes:
        px, py = 24 + x, HEADER_PX + y
        out.append(
            f'<rect x="{px}" y="{py}" width="{w}" height="{h}" rx="6" fill="#fff" '
            'stroke="#d3dae6"/>'
        )
        name = chart.title.removeprefix("Clickstream: ")
        out.append(_text(px + PAD, py + 22, name, size=14, font_weight="700"))
        out.append(_text(px + PAD, py + 38, _clip(chart.description, w // 6), size=11, fill=MUTED))
        inner = chart_svg(chart, w - 2 * PAD, h - TITLE_PX - 8)
        out.append(inner.replace("<svg ", f'<svg x="{px + PAD}" y="{py + TITLE_PX}" ', 1))
    out.append("</svg>")
    return "".join(out)


def png_report(report: Report, scale: float = 1.5) -> bytes:
    """The report as a PNG image (needs the `report` extra: vl-convert-python)."""
    try:
        import vl_convert  # noqa: PLC0415 - optional: only --png needs it
    except ImportError:
        raise ClickstreamError(
            "--png needs the vl-convert-python package",
            hint="pip install 'clickstream[report]'",
        ) from None
    return bytes(vl_convert.svg_to_png(dashboard_svg(report), scale=scale))


def write(report: Report, out: Path, *, png: bool = False) -> list[Path]:
    """Write the HTML report to `out` (and a PNG beside it); return the files written."""
    written = []
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(html_report(report), encoding="utf-8")
        written.append(out)
        if png:
            image = out.with_suffix(".png")
            image.write_bytes(png_report(report))
            written.append(image)
    except OSError as exc:
        raise ConfigError(f"cannot write the report to {out}: {exc.strerror}") from None
    return written
