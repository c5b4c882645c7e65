"""The dashboard's figures, tables and KPI cards as static HTML and SVG.

A Plotly chart, a data grid or a row of ``st.metric`` cards each load and run their own
JavaScript in the browser; on this project's 2-core reference machine one Plotly chart
adds about 0.8 s to a page and one data grid about 0.7 s, whatever the data (see
BENCHMARKS.md, "Streamlit's floor"). The default view draws the same content as inline
SVG and HTML instead, which the browser shows at once, and keeps the interactive elements
one toggle away.

* :func:`figure_svg` draws the Plotly figures built in :mod:`dashboard.charts` (bars,
  stacked or grouped, vertical or horizontal; lines and markers; heatmaps; line shapes
  and text annotations), so each chart is defined once. Every bar, point and cell
  carries a ``<title>`` with the text of its Plotly ``hovertemplate``: the browser shows
  it on hover.
* :func:`table_html` draws a frame as a scrollable table, with the number formats of the
  page's ``st.column_config``.
* :func:`cards_html` draws KPI cards with their change, as ``st.metric`` would.

Plotly ships no static renderer that runs without a browser, and the SVG charting
libraries measured here took 40 ms (30 days) to 170 ms (366 days) per chart on the
server; these builders take a few milliseconds. Every string from the data is escaped
here: nothing that reaches the browser is markup it did not write.
"""

from __future__ import annotations

import datetime as dt
import html
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.colors as plotly_colors
import plotly.graph_objects as go

from dashboard.values import plain_text

#: Session-state key of the sidebar's "Interactive charts and tables" toggle (here, not in
#: ``dashboard.ui``, so that tests can name it without importing modules that read settings).
INTERACTIVE_KEY = "interactive_view"

INK = "#1F2A33"
MUTED = "#5C6670"
GRID = "#E6E9EC"
AXIS = "#B8BEC4"
EMPTY_CELL = "#F2F3F5"
FONT_SIZE = 13
CHAR_WIDTH = 6.6  # average advance of a 13 px sans-serif character, for layout only
DEFAULT_HEIGHT = 360

_FIELD = re.compile(r"%\{(\w+)(?:\[(\d+)\])?(?:\|([^}]*)|:([^}]*))?\}")
_EXTRA = re.compile(r"<extra>(.*?)</extra>", re.S)
_TAG = re.compile(r"<[^>]+>")


class UnsupportedFigure(ValueError):
    """The figure uses a trace type or option this renderer does not draw."""


_NESTED = frozenset(
    {"marker", "line", "textfont", "colorbar", "title", "xaxis", "yaxis", "font", "legend"}
)
_LAYOUT_KEYS = (
    "height",
    "title",
    "showlegend",
    "barmode",
    "xaxis",
    "yaxis",
    "shapes",
    "annotations",
)


class _Props:
    """Plain read access to a figure's properties, read out of Plotly once: attribute
    access on a Plotly object validates on every read, which costs more than drawing."""

    __slots__ = ("_props",)

    def __init__(self, props: Mapping[str, Any]) -> None:
        self._props = props

    def __getattr__(self, name: str) -> Any:
        value = self._props.get(name)
        if name in _NESTED:
            return _Props(value if isinstance(value, Mapping) else {})
        if name in ("shapes", "annotations") and value is not None:
            return [_Props(item) for item in value]
        return value

    def __bool__(self) -> bool:
        return bool(self._props)


def _snapshot(fig: go.Figure) -> tuple[_Props, list[_Props]]:
    layout: dict[str, Any] = {}
    for key in _LAYOUT_KEYS:
        value = fig.layout[key]
        if value is None:
            continue
        if hasattr(value, "to_plotly_json"):
            value = value.to_plotly_json()
        elif isinstance(value, tuple):
            value = [v.to_plotly_json() if hasattr(v, "to_plotly_json") else v for v in value]
        layout[key] = value
    return _Props(layout), [_Props({"type": t.type, **t.to_plotly_json()}) for t in fig.data]


# -- text ---------------------------------------------------------------------------


def esc(text: object) -> str:
    """``text`` as literal XML/HTML text (bidi controls made visible), on one line: line
    breaks become character references, so a chart stays one line of raw HTML that
    Markdown passes through untouched (a blank line would end the HTML block)."""
    return html.escape(plain_text(text), quote=True).replace("\n", "&#10;").replace("\r", "&#13;")


def _label(text: object) -> str:
    """A label the chart builders escaped for Plotly, back as plain text."""
    text = str(text)
    if "<" not in text and "&" not in text:
        return text
    return html.unescape(_TAG.sub("", str(text).replace("<br>", " ")))


def _format_value(value: Any, *, date_format: str | None, number_format: str | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if date_format:
        if isinstance(value, (dt.date, pd.Timestamp)):
            return value.strftime(date_format)
        return pd.Timestamp(value).strftime(date_format)
    if number_format:
        if number_format == "," and isinstance(value, float) and value.is_integer():
            value = int(value)
        try:
            return format(value, number_format)
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, (dt.datetime, pd.Timestamp)):
        return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def hover_text(template: str | None, point: Mapping[str, Any]) -> str:
    """The text Plotly would show for ``point`` with ``template`` (its
    ``hovertemplate``): ``%{name}``, ``%{name[i]}``, ``%{name:<d3 number format>}`` and
    ``%{name|<date format>}`` filled in, ``<br>`` as line breaks, the ``<extra>`` box as
    a last line. Text in the template and in the point is escaped for Plotly (the chart
    builders escape labels); the result is plain text, not yet escaped for SVG."""
    if not template:
        return ""
    extra = _EXTRA.search(template)
    lines = [_fill(line, point) for line in _EXTRA.sub("", template).split("<br>")]
    if extra and extra.group(1).strip():
        lines.append(_fill(extra.group(1), point))
    return "\n".join(line for line in lines if line)


def _fill(line: str, point: Mapping[str, Any]) -> str:
    out = []
    at = 0
    for match in _FIELD.finditer(line):
        out.append(_label(line[at : match.start()]))
        at = match.end()
        name, index, date_format, number_format = match.groups()
        value = point.get(name)
        if index is not None and value is not None:
            try:
                value = value[int(index)]
            except (IndexError, KeyError, TypeError):
                value = None
        if isinstance(value, str):
            out.append(_label(value))
        else:
            out.append(_format_value(value, date_format=date_format, number_format=number_format))
    out.append(_label(line[at:]))
    return "".join(out)


def _title(text: str) -> str:
    return f"<title>{esc(text)}</title>" if text else ""


# -- scales ---------------------------------------------------------------------------


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering ``low``..``high``: steps of 1, 2, 2.5 or 5 x 10^k."""
    if not math.isfinite(low) or not math.isfinite(high):
        return [0.0]
    if high <= low:
        high = low + 1
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * 0.999)
    return _ticks_every(low, high, step)


def _ticks_every(low: float, high: float, step: float) -> list[float]:
    first = math.ceil(low / step - 1e-9)
    last = math.floor(high / step + 1e-9)
    return [round(i * step, 10) for i in range(first, last + 1)]


def _tick_text(value: float, step: float, suffix: str) -> str:
    decimals = 0 if step >= 1 else min(6, max(0, -math.floor(math.log10(step) + 1e-9)))
    if decimals and not math.isclose(round(step, decimals), step):
        decimals += 1
    text = f"{value:,.{decimals}f}" if decimals else f"{value:,.0f}"
    return text + suffix


@dataclass
class Linear:
    """A value axis: data ``low``..``high`` onto pixels ``start``..``end``."""

    low: float
    high: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        span = self.high - self.low or 1.0
        return self.start + (value - self.low) / span * (self.end - self.start)


@dataclass
class Bands:
    """A category axis: each category's band of width ``step`` from ``start``."""

    categories: list[Any]
    start: float
    end: float

    @property
    def step(self) -> float:
        return (self.end - self.start) / max(len(self.categories), 1)

    def centre(self, index: int) -> float:
        return self.start + (index + 0.5) * self.step


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(values: Iterable[Any]) -> list[float]:
    out = []
    for value in values:
        if value is None:
            continue
        number = float(value)
        if math.isfinite(number):
            out.append(number)
    return out


def _values(array: Any) -> list[Any]:
    if array is None:
        return []
    if isinstance(array, (str, bytes)):
        return [array]
    return [_scalar(v) for v in list(array)]


def _scalar(value: Any) -> Any:
    if isinstance(value, np.datetime64):
        return pd.Timestamp(value)
    if hasattr(value, "item") and not isinstance(value, (pd.Timestamp, dt.date)):
        try:
            return value.item()
        except (ValueError, AttributeError):
            return value
    return value


def _nan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


class _PerPoint:
    """A trace property that is either one value for every point or one per point."""

    __slots__ = ("_all", "_each")

    def __init__(self, array: Any) -> None:
        scalar = array is None or isinstance(array, (str, int, float))
        self._all = array if scalar else None
        self._each = (
            None
            if scalar
            else [tuple(v) if isinstance(v, (list, np.ndarray)) else _scalar(v) for v in array]
        )

    def __getitem__(self, index: int) -> Any:
        if self._each is None:
            return self._all
        return self._each[index] if index < len(self._each) else None


# -- the figure -----------------------------------------------------------------------


@dataclass
class _Frame:
    width: float
    height: float
    left: float
    right: float
    top: float
    bottom: float


def _axis_title(axis: Any) -> str:
    return _label(axis.title.text) if axis.title and axis.title.text else ""


def _category_labels(categories: Sequence[Any], axis: Any) -> list[str]:
    fmt = axis.tickformat
    labels = []
    for value in categories:
        if isinstance(value, (dt.date, pd.Timestamp)):
            labels.append(value.strftime(fmt or "%Y-%m-%d"))
        else:
            labels.append(_label(value))
    return labels


def _legend(traces: Sequence[Any]) -> list[tuple[str, str, str]]:
    """(name, colour, kind) of every named trace, when there are several."""
    named = [t for t in traces if t.name and t.showlegend is not False]
    if len(named) < 2:
        return []
    return [(_label(t.name), _colour(t), t.type) for t in named]


def _colour(trace: Any) -> str:
    colour = None
    if trace.marker is not None and isinstance(trace.marker.color, str):
        colour = trace.marker.color
    if trace.type == "scatter" and trace.line is not None and trace.line.color:
        colour = trace.line.color
    return colour or INK


def figure_svg(fig: go.Figure, *, width: int = 1000) -> str:
    """``fig`` (one of the dashboard's chart builders' figures) as a standalone SVG
    element ``width`` units wide and the figure's height tall, scaled to its container.

    Raises :class:`UnsupportedFigure` for a trace type other than bar, scatter or
    heatmap, so that a caller can fall back to the interactive chart.
    """
    layout, traces = _snapshot(fig)
    kinds = {t.type for t in traces}
    if not kinds <= {"bar", "scatter", "heatmap"} or ("heatmap" in kinds and len(traces) > 1):
        raise UnsupportedFigure(f"cannot draw traces of type {sorted(kinds)} statically")
    height = float(layout.height or DEFAULT_HEIGHT)
    title = _label(layout.title.text) if layout.title and layout.title.text else ""
    legend = [] if layout.showlegend is False else _legend(traces)
    parts: list[str] = []
    top = (34 if title else 10) + (26 if legend else 0)
    if kinds == {"heatmap"}:
        body, frame = _heatmap(traces[0], layout, width=width, height=height, top=top)
    else:
        body, frame = _cartesian(traces, layout, width=width, height=height, top=top)
    if title:
        parts.append(f'<text x="2" y="20" font-size="16" fill="{INK}">{esc(title)}</text>')
    if legend:
        parts.append(_legend_svg(legend, y=top - 14))
    parts.append(body)
    label = esc(title or "chart")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {frame.height:.0f}" '
        f'width="100%" role="img" aria-label="{label}" font-family="inherit" '
        f'font-size="{FONT_SIZE}" fill="{INK}" style="font-family:inherit;overflow:visible">'
        + "".join(parts)
        + "</svg>"
    )


def _legend_svg(entries: Sequence[tuple[str, str, str]], *, y: float) -> str:
    x = 2.0
    out = []
    for name, colour, kind in entries:
        if kind == "scatter":
            out.append(
                f'<line x1="{x:.1f}" y1="{y:.1f}" x2="{x + 18:.1f}" y2="{y:.1f}" '
                f'stroke="{colour}" stroke-width="2.5"/>'
            )
        else:
            out.append(
                f'<rect x="{x:.1f}" y="{y - 6:.1f}" width="14" height="12" fill="{colour}"/>'
            )
        out.append(f'<text x="{x + 22:.1f}" y="{y + 4.5:.1f}">{esc(name)}</text>')
        x += 22 + len(name) * CHAR_WIDTH + 18
    return "".join(out)


def _y_label_width(labels: Iterable[str]) -> float:
    return max((len(label) for label in labels), default=1) * CHAR_WIDTH + 8


def _rotated(axis: Any) -> bool:
    return axis.tickangle is not None and axis.tickangle not in ("auto",) and axis.tickangle != 0


def _cartesian(
    traces: list[Any], layout: _Props, *, width: float, height: float, top: float
) -> tuple[str, _Frame]:
    xaxis, yaxis = layout.xaxis, layout.yaxis
    bars = [t for t in traces if t.type == "bar"]
    horizontal = bool(bars) and all(t.orientation == "h" for t in bars)
    stacked = layout.barmode in ("stack", "relative")
    # The value axis and the category (or numeric x) axis, as data.
    if horizontal:
        categories = _categories([_values(t.y) for t in traces])
        value_lists = [_values(t.x) for t in traces]
    else:
        firsts = [v for t in traces for v in _values(t.x)[:1]]
        numeric_x = not bars and bool(firsts) and all(_is_number(v) for v in firsts)
        categories = [] if numeric_x else _categories([_values(t.x) for t in traces])
        value_lists = [_values(t.y) for t in traces]
    value_axis = xaxis if horizontal else yaxis
    other_axis = yaxis if horizontal else xaxis
    low, high = _value_range(
        traces,
        value_lists,
        value_axis,
        stacked=stacked and bool(bars),
        horizontal=horizontal,
    )
    value_ticks = _axis_ticks(value_axis, low, high)
    value_labels = value_ticks[1]
    x_range = x_ticks = None  # a numeric x axis (scatter over numbers), when no categories
    if not categories:
        x_range = _numeric_range(xaxis, _finite(v for t in traces for v in _values(t.x)))
        x_ticks = _axis_ticks(xaxis, *x_range)
    # Margins from what has to fit.
    other_labels = _category_labels(categories, other_axis) if categories else []
    left_labels = other_labels if horizontal else value_labels
    left = 8 + _y_label_width(left_labels) + (20 if _axis_title(yaxis) else 0)
    if horizontal:
        bottom_labels = value_labels
    else:
        bottom_labels = other_labels if x_ticks is None else x_ticks[1]
    rotate = _rotated(xaxis) and not horizontal
    tick_band = (
        max((len(s) for s in bottom_labels), default=1) * CHAR_WIDTH * 0.72 + 10 if rotate else 20
    )
    bottom = tick_band + (22 if _axis_title(xaxis) else 4)
    frame = _Frame(width, height, left, width - 14, top, height - bottom)
    out: list[str] = []
    out.append(_axis_titles(xaxis, yaxis, frame))
    if horizontal:
        value_scale = Linear(low, high, frame.left, frame.right)
        bands = Bands(categories, frame.bottom, frame.top)  # first category at the bottom
        if yaxis.autorange == "reversed":
            bands = Bands(categories, frame.top, frame.bottom)
        out.append(_value_grid(value_ticks, value_scale, frame, vertical=True))
        out.append(_category_ticks(bands, other_labels, frame, horizontal=True, rotate=False))
        out.append(_bars(bars, bands, value_scale, stacked=stacked, horizontal=True))
    else:
        value_scale = Linear(low, high, frame.bottom, frame.top)
        out.append(_value_grid(value_ticks, value_scale, frame, vertical=False))
        if categories:
            bands = Bands(categories, frame.left, frame.right)
            out.append(_category_ticks(bands, other_labels, frame, horizontal=False, rotate=rotate))
            position = _category_position(bands)
        else:
            x_scale = Linear(*x_range, frame.left, frame.right)
            out.append(_value_grid(x_ticks, x_scale, frame, vertical=True))
            position = x_scale
        if bars:
            out.append(_bars(bars, bands, value_scale, stacked=stacked, horizontal=False))
        for trace in traces:
            if trace.type == "scatter":
                out.append(_scatter(trace, position, value_scale))
        out.append(_shapes(layout, position, value_scale, frame))
    out.append(
        f'<line x1="{frame.left:.1f}" y1="{frame.bottom:.1f}" x2="{frame.right:.1f}" '
        f'y2="{frame.bottom:.1f}" stroke="{AXIS}"/>'
    )
    return "".join(out), frame


def _categories(lists: Iterable[list[Any]]) -> list[Any]:
    seen: dict[Any, None] = {}
    for values in lists:
        for value in values:
            if not _nan(value):
                seen.setdefault(value, None)
    categories = list(seen)
    if categories and all(isinstance(c, (dt.date, pd.Timestamp)) for c in categories):
        categories.sort(key=pd.Timestamp)
    return categories


def _value_range(
    traces: list[Any],
    value_lists: list[list[Any]],
    axis: Any,
    *,
    stacked: bool,
    horizontal: bool,
) -> tuple[float, float]:
    if axis.range is not None:
        return float(axis.range[0]), float(axis.range[1])
    if stacked:
        totals: dict[Any, float] = {}
        for trace, values in zip(traces, value_lists, strict=True):
            keys = _values(trace.y if horizontal else trace.x)
            for key, value in zip(keys, values, strict=False):
                if not _nan(value):
                    totals[key] = totals.get(key, 0.0) + float(value)
        numbers = list(totals.values())
    else:
        numbers = _finite(v for values in value_lists for v in values)
    if not numbers:
        return 0.0, 1.0
    low, high = min(numbers), max(numbers)
    has_bars = any(t.type == "bar" for t in traces)
    if has_bars or axis.rangemode == "tozero":
        low = min(low, 0.0)
    pad = (high - low) * 0.05 or 1.0
    return (low if low == 0 else low - pad), high + pad


def _numeric_range(axis: Any, values: list[float]) -> tuple[float, float]:
    if axis.range is not None:
        return float(axis.range[0]), float(axis.range[1])
    if not values:
        return 0.0, 1.0
    low, high = min(values), max(values)
    pad = (high - low) * 0.03 or 1.0
    return low - pad, high + pad


def _axis_ticks(axis: Any, low: float, high: float) -> tuple[list[float], list[str]]:
    suffix = axis.ticksuffix or ""
    if axis.tickvals is not None:
        values = [float(v) for v in axis.tickvals]
        texts = list(axis.ticktext) if axis.ticktext is not None else None
        return values, [str(t) for t in texts] if texts else [
            _tick_text(v, 1, suffix) for v in values
        ]
    if isinstance(axis.dtick, (int, float)) and axis.dtick:
        step = float(axis.dtick)
        values = _ticks_every(low, high, step)
    else:
        values = nice_ticks(low, high)
        values = [v for v in values if low - 1e-9 <= v <= high + 1e-9]
        step = values[1] - values[0] if len(values) > 1 else 1.0
    return values, [_tick_text(v, step, suffix) for v in values]


def _axis_titles(xaxis: Any, yaxis: Any, frame: _Frame) -> str:
    out = []
    x_title = _axis_title(xaxis)
    y_title = _axis_title(yaxis)
    if x_title:
        out.append(
            f'<text x="{(frame.left + frame.right) / 2:.1f}" y="{frame.height - 6:.1f}" '
            f'text-anchor="middle" fill="{MUTED}">{esc(x_title)}</text>'
        )
    if y_title:
        middle = (frame.top + frame.bottom) / 2
        out.append(
            f'<text transform="translate(14 {middle:.1f}) rotate(-90)" text-anchor="middle" '
            f'fill="{MUTED}">{esc(y_title)}</text>'
        )
    return "".join(out)


def _value_grid(
    ticks: tuple[list[float], list[str]],
    scale: Linear,
    frame: _Frame,
    *,
    vertical: bool,
) -> str:
    out = []
    for value, text in zip(*ticks, strict=True):
        at = scale(value)
        if vertical:
            if not frame.left - 0.5 <= at <= frame.right + 0.5:
                continue
            out.append(
                f'<line x1="{at:.1f}" y1="{frame.top:.1f}" x2="{at:.1f}" y2="{frame.bottom:.1f}" '
                f'stroke="{GRID}"/><text x="{at:.1f}" y="{frame.bottom + 16:.1f}" '
                f'text-anchor="middle" fill="{MUTED}">{esc(text)}</text>'
            )
        else:
            if not frame.top - 0.5 <= at <= frame.bottom + 0.5:
                continue
            out.append(
                f'<line x1="{frame.left:.1f}" y1="{at:.1f}" x2="{frame.right:.1f}" y2="{at:.1f}" '
                f'stroke="{GRID}"/><text x="{frame.left - 6:.1f}" y="{at + 4.5:.1f}" '
                f'text-anchor="end" fill="{MUTED}">{esc(text)}</text>'
            )
    return "".join(out)


def _category_ticks(
    bands: Bands, labels: list[str], frame: _Frame, *, horizontal: bool, rotate: bool
) -> str:
    if not labels:
        return ""
    out = []
    if horizontal:
        every = max(1, math.ceil(18 / max(abs(bands.step), 1e-9)))
        for index, text in enumerate(labels):
            if index % every:
                continue
            y = bands.centre(index)
            out.append(
                f'<text x="{frame.left - 6:.1f}" y="{y + 4.5:.1f}" text-anchor="end">'
                f"{esc(text)}</text>"
            )
        return "".join(out)
    longest = max(len(text) for text in labels) * CHAR_WIDTH + 10
    every = max(1, math.ceil((longest * (0.55 if rotate else 1.0)) / max(bands.step, 1e-9)))
    for index, text in enumerate(labels):
        if index % every:
            continue
        x = bands.centre(index)
        y = frame.bottom + 16
        if rotate:
            out.append(
                f'<text transform="translate({x:.1f} {y - 4:.1f}) rotate(-45)" '
                f'text-anchor="end" fill="{MUTED}">{esc(text)}</text>'
            )
        else:
            out.append(
                f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="middle" fill="{MUTED}">'
                f"{esc(text)}</text>"
            )
    return "".join(out)


def _category_position(bands: Bands) -> Any:
    index = {category: i for i, category in enumerate(bands.categories)}

    def position(value: Any) -> float:
        return bands.centre(index[value]) if value in index else math.nan

    return position


def _point(custom: _PerPoint, texts: _PerPoint, index: int, x: Any, y: Any) -> dict[str, Any]:
    return {"x": x, "y": y, "customdata": custom[index], "text": texts[index]}


def _hover(trace: Any, point: Mapping[str, Any]) -> str:
    if trace.hoverinfo == "skip":
        return ""
    if trace.hovertemplate:
        return hover_text(trace.hovertemplate, point)
    return " · ".join(str(v) for v in (point.get("x"), point.get("y")) if v is not None)


def _bars(
    traces: list[Any], bands: Bands, scale: Linear, *, stacked: bool, horizontal: bool
) -> str:
    index = {category: i for i, category in enumerate(bands.categories)}
    base: dict[int, float] = {}
    band = abs(bands.step)
    grouped = not stacked and len(traces) > 1
    thickness = band * 0.8 / len(traces) if grouped else band * 0.8
    out = []
    for number, trace in enumerate(traces):
        # Side by side when grouped, else centred on the band.
        offset = thickness * (number - len(traces) / 2) if grouped else -thickness / 2
        colour = _colour(trace)
        keys = _values(trace.y if horizontal else trace.x)
        amounts = _values(trace.x if horizontal else trace.y)
        texts = _PerPoint(trace.text)
        custom = _PerPoint(trace.customdata)
        hide_text = trace.textposition == "inside" or (
            trace.insidetextanchor is not None and trace.textposition != "outside"
        )
        for i, (key, amount) in enumerate(zip(keys, amounts, strict=False)):
            if key not in index or _nan(amount):
                continue
            slot = index[key]
            start_value = base.get(slot, 0.0) if stacked else 0.0
            end_value = start_value + float(amount)
            if stacked:
                base[slot] = end_value
            a, b = scale(start_value), scale(end_value)
            centre = bands.centre(slot)
            tip = _title(
                _hover(
                    trace,
                    _point(
                        custom,
                        texts,
                        i,
                        amount if horizontal else key,
                        key if horizontal else amount,
                    ),
                )
            )
            if horizontal:
                x, w = min(a, b), abs(b - a)
                y = centre + offset
                out.append(
                    f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{thickness:.1f}" '
                    f'fill="{colour}">{tip}</rect>'
                )
                label = _label(texts[i]) if texts[i] is not None else ""
                if label:
                    out.append(_bar_text(label, x, w, y + thickness / 2, hide_text))
            else:
                y, h = min(a, b), abs(b - a)
                x = centre + offset
                out.append(
                    f'<rect x="{x:.1f}" y="{y:.1f}" width="{thickness:.1f}" height="{h:.1f}" '
                    f'fill="{colour}">{tip}</rect>'
                )
    return "".join(out)


def _bar_text(label: str, x: float, w: float, middle: float, inside_only: bool) -> str:
    needed = len(label) * CHAR_WIDTH + 10
    if w >= needed:
        return (
            f'<text x="{x + w / 2:.1f}" y="{middle + 4.5:.1f}" text-anchor="middle" '
            f'fill="#FFFFFF" pointer-events="none">{esc(label)}</text>'
        )
    if inside_only:
        return ""
    return (
        f'<text x="{x + w + 4:.1f}" y="{middle + 4.5:.1f}" pointer-events="none">'
        f"{esc(label)}</text>"
    )


def _scatter(trace: Any, position: Any, scale: Linear) -> str:
    mode = trace.mode or "lines+markers"
    colour = _colour(trace)
    xs = _values(trace.x)
    ys = _values(trace.y)
    points: list[tuple[float, float] | None] = []
    for x, y in zip(xs, ys, strict=False):
        if _nan(y) or _nan(x):
            points.append(None)
            continue
        px = position(x)
        points.append(None if math.isnan(px) else (px, scale(float(y))))
    out = []
    if "lines" in mode:
        dash = trace.line.dash if trace.line is not None else None
        stroke_width = (trace.line.width if trace.line is not None else None) or 2
        dasharray = ' stroke-dasharray="6 4"' if dash in ("dash", "dot", "dashdot") else ""
        segment: list[str] = []
        for point in [*points, None]:
            if point is None:
                if len(segment) > 1:
                    out.append(
                        f'<polyline points="{" ".join(segment)}" fill="none" stroke="{colour}" '
                        f'stroke-width="{stroke_width}"{dasharray} stroke-linejoin="round"/>'
                    )
                segment = []
            else:
                segment.append(f"{point[0]:.1f},{point[1]:.1f}")
    marker = trace.marker
    sizes = marker.size if marker is not None else None
    symbol = marker.symbol if marker is not None else None
    opacity = marker.opacity if marker is not None and marker.opacity is not None else 1
    texts = _PerPoint(trace.text)
    custom = _PerPoint(trace.customdata)
    sizes_each = _PerPoint(sizes)
    text_font = trace.textfont
    text_colour = text_font.color if text_font is not None and text_font.color else INK
    for i, point in enumerate(points):
        if point is None:
            continue
        tip = _title(_hover(trace, _point(custom, texts, i, xs[i], ys[i])))
        if "markers" in mode or tip:
            size = sizes_each[i] if sizes is not None else 6
            radius = max(float(size or 6) / 2, 3 if "markers" in mode else 5)
            if "markers" in mode:
                if symbol and "open" in str(symbol):
                    paint = f'fill="none" stroke="{colour}" stroke-width="3"'
                else:
                    paint = f'fill="{colour}" fill-opacity="{opacity}"'
            else:  # no marker drawn, but a target for the tooltip
                paint = 'fill="transparent"'
            out.append(
                f'<circle cx="{point[0]:.1f}" cy="{point[1]:.1f}" r="{radius:.1f}" {paint}>'
                f"{tip}</circle>"
            )
        if "text" in mode and trace.text is not None:
            label = _label(texts[i] or "")
            if label:
                left = "left" in str(trace.textposition or "")
                dx = -8 if left else 8
                anchor = "end" if left else "start"
                out.append(
                    f'<text x="{point[0] + dx:.1f}" y="{point[1] - 8:.1f}" text-anchor="{anchor}" '
                    f'font-size="11" fill="{text_colour}" pointer-events="none">{esc(label)}</text>'
                )
    return "".join(out)


def _shapes(layout: _Props, position: Any, scale: Linear, frame: _Frame) -> str:
    out = []
    for shape in layout.shapes or ():
        if shape.type != "line":
            continue
        x0, x1 = position(shape.x0), position(shape.x1)
        y0 = _y_of(shape.y0, shape.yref, scale, frame)
        y1 = _y_of(shape.y1, shape.yref, scale, frame)
        colour = shape.line.color if shape.line is not None and shape.line.color else INK
        dash = shape.line.dash if shape.line is not None else None
        dasharray = ' stroke-dasharray="6 4"' if dash else ""
        out.append(
            f'<line x1="{x0:.1f}" y1="{y0:.1f}" x2="{x1:.1f}" y2="{y1:.1f}" stroke="{colour}" '
            f'stroke-width="2"{dasharray}/>'
        )
    for note in layout.annotations or ():
        if note.xref not in (None, "x") or note.text is None:
            continue
        x = position(note.x)
        y = _y_of(note.y, note.yref, scale, frame)
        anchor = {"right": "end", "left": "start"}.get(note.xanchor or "", "middle")
        dx = -4 if anchor == "end" else 4 if anchor == "start" else 0
        dy = 14 if note.yanchor == "top" else -4
        out.append(
            f'<text x="{x + dx:.1f}" y="{y + dy:.1f}" text-anchor="{anchor}">'
            f"{esc(_label(note.text))}</text>"
        )
    return "".join(out)


def _y_of(value: Any, ref: str | None, scale: Linear, frame: _Frame) -> float:
    if ref == "y domain" or ref == "paper":
        return frame.bottom - float(value) * (frame.bottom - frame.top)
    return scale(float(value))


def _heatmap(
    trace: Any, layout: _Props, *, width: float, height: float, top: float
) -> tuple[str, _Frame]:
    raw_xs = _values(trace.x)
    raw_ys = _values(trace.y)
    xs = [_label(v) for v in raw_xs]
    ys = [_label(v) for v in raw_ys]
    z = [[_scalar(v) for v in row] for row in trace.z]
    texts = trace.text
    numbers = _finite(v for row in z for v in row)
    zmin = float(trace.zmin) if trace.zmin is not None else min(numbers, default=0.0)
    zmax = float(trace.zmax) if trace.zmax is not None else max(numbers, default=1.0)
    scale_name = trace.colorscale
    colours = (
        plotly_colors.get_colorscale(scale_name)
        if isinstance(scale_name, str)
        else (
            [list(step) for step in scale_name]
            if scale_name is not None
            else plotly_colors.get_colorscale("Blues")
        )
    )
    palette = plotly_colors.sample_colorscale(colours, [i / 100 for i in range(101)])
    rotate = _rotated(layout.xaxis)
    longest_x = max((len(s) for s in xs), default=1) * CHAR_WIDTH
    tick_band = longest_x * 0.72 + 10 if rotate else 20
    legend_title = ""
    if trace.colorbar is not None and trace.colorbar.title is not None:
        legend_title = _label(trace.colorbar.title.text or "")
    left = 8 + _y_label_width(ys) + (20 if _axis_title(layout.yaxis) else 0)
    bottom = tick_band + (22 if _axis_title(layout.xaxis) else 4) + (18 if legend_title else 0)
    frame = _Frame(width, height, left, width - 14, top, height - bottom)
    columns = Bands(xs, frame.left, frame.right)
    reversed_rows = layout.yaxis.autorange == "reversed"
    rows = (
        Bands(ys, frame.top, frame.bottom) if reversed_rows else Bands(ys, frame.bottom, frame.top)
    )
    out = [_axis_titles_heatmap(layout, frame, legend_title)]
    gap = 1.0
    for r, label in enumerate(ys):
        for c in range(len(xs)):
            value = z[r][c] if r < len(z) and c < len(z[r]) else None
            x = columns.start + c * columns.step
            y = rows.centre(r) - abs(rows.step) / 2
            if _nan(value):
                fill = EMPTY_CELL
                share = 0.0
            else:
                share = 0.0 if zmax == zmin else (float(value) - zmin) / (zmax - zmin)
                share = min(max(share, 0.0), 1.0)
                fill = palette[round(share * (len(palette) - 1))]
            point = {
                "x": raw_xs[c],
                "y": raw_ys[r],
                "z": value,
                "customdata": _cell(trace.customdata, r, c),
                "text": _cell(texts, r, c),
            }
            tip = "" if _nan(value) else _title(_hover(trace, point))
            out.append(
                f'<rect x="{x + gap / 2:.1f}" y="{y + gap / 2:.1f}" '
                f'width="{max(columns.step - gap, 0):.1f}" height="{max(abs(rows.step) - gap, 0):.1f}" '
                f'fill="{fill}">{tip}</rect>'
            )
            cell_text = _cell(texts, r, c)
            if cell_text and columns.step >= len(str(cell_text)) * CHAR_WIDTH + 4:
                ink = "#FFFFFF" if share > 0.55 else INK
                out.append(
                    f'<text x="{x + columns.step / 2:.1f}" y="{rows.centre(r) + 4.5:.1f}" '
                    f'text-anchor="middle" fill="{ink}" pointer-events="none">'
                    f"{esc(_label(cell_text))}</text>"
                )
        out.append(
            f'<text x="{frame.left - 6:.1f}" y="{rows.centre(r) + 4.5:.1f}" text-anchor="end">'
            f"{esc(label)}</text>"
        )
    out.append(_category_ticks(columns, xs, frame, horizontal=False, rotate=rotate))
    if legend_title:
        out.append(_colour_key(colours, zmin, zmax, legend_title, frame))
    return "".join(out), frame


def _cell(grid: Any, r: int, c: int) -> Any:
    if grid is None:
        return None
    try:
        return _scalar(grid[r][c])
    except (IndexError, KeyError, TypeError):
        return None


def _axis_titles_heatmap(layout: _Props, frame: _Frame, legend_title: str) -> str:
    shifted = _Frame(
        frame.width,
        frame.height - (18 if legend_title else 0),
        frame.left,
        frame.right,
        frame.top,
        frame.bottom,
    )
    return _axis_titles(layout.xaxis, layout.yaxis, shifted)


def _colour_key(colours: Any, zmin: float, zmax: float, title: str, frame: _Frame) -> str:
    steps = 5
    y = frame.height - 14
    x = frame.right - steps * 28 - 8
    out = [
        f'<text x="{x - 8:.1f}" y="{y + 4:.1f}" text-anchor="end" fill="{MUTED}">'
        f"{esc(title)}: {zmin:,.0f}</text>"
    ]
    for i in range(steps):
        fill = plotly_colors.sample_colorscale(colours, [i / (steps - 1)])[0]
        out.append(
            f'<rect x="{x + i * 28:.1f}" y="{y - 6:.1f}" width="28" height="12" fill="{fill}"/>'
        )
    out.append(
        f'<text x="{x + steps * 28 + 4:.1f}" y="{y + 4:.1f}" fill="{MUTED}">{zmax:,.0f}</text>'
    )
    return "".join(out)


def chart_block(svg: str) -> str:
    """``svg`` as a block of raw HTML for ``st.markdown(..., unsafe_allow_html=True)``:
    ``st.html`` sanitizes with DOMPurify's HTML profile, which drops SVG, whereas a
    Markdown HTML block (it starts with ``<figure>`` and has no blank line) is passed to
    the page as it is. Everything in ``svg`` was written and escaped here."""
    if "\n" in svg or "\r" in svg:
        raise ValueError("a chart block must be one line")
    return f'<figure class="rl-chart" style="margin:0">{svg}</figure>'


# -- tables and cards -----------------------------------------------------------------


def _printf(fmt: str, value: Any) -> str:
    try:
        return fmt % value
    except (TypeError, ValueError):
        return str(value)


def _cell_text(value: Any, fmt: str | None) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, pd.Timestamp) or isinstance(value, dt.datetime):
        return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return "yes" if value else "no"
    if fmt and isinstance(value, (int, float)):
        return _printf(fmt, value)
    if isinstance(value, float):
        return (
            f"{value:,.3f}".rstrip("0").rstrip(".") if not value.is_integer() else f"{value:,.0f}"
        )
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _column_format(config: Any) -> tuple[str | None, str | None]:
    """(printf format, label) from an ``st.column_config`` entry."""
    if not isinstance(config, Mapping):
        return None, config if isinstance(config, str) else None
    type_config = config.get("type_config") or {}
    return type_config.get("format"), config.get("label")


TABLE_MAX_HEIGHT = 420
SHORT_TEXT = 16  # characters: a UTC time (2026-11-05 16:52) is 16


def table_html(
    frame: pd.DataFrame,
    *,
    column_config: Mapping[str, Any] | None = None,
    caption: str | None = None,
) -> str:
    """``frame`` as an HTML table in a box that scrolls past ``TABLE_MAX_HEIGHT`` pixels;
    number columns right-aligned and formatted as ``column_config`` says."""
    config = dict(column_config or {})
    formats: dict[str, str | None] = {}
    headers = []
    numeric = {}
    for column in frame.columns:
        fmt, label = _column_format(config.get(column))
        formats[column] = fmt
        headers.append(label or str(column))
        numeric[column] = pd.api.types.is_numeric_dtype(frame[column]) and not (
            pd.api.types.is_bool_dtype(frame[column])
        )
    head = "".join(
        f'<th style="text-align:{"right" if numeric[c] else "left"}">{esc(h)}</th>'
        for c, h in zip(frame.columns, headers, strict=True)
    )
    columns = list(frame.columns)
    texts = [
        [_cell_text(_scalar(v), formats[c]) for c, v in zip(columns, record, strict=True)]
        for record in frame.itertuples(index=False, name=None)
    ]
    # Numbers and short texts (times included) stay on one line; longer texts wrap, so
    # that a wide table fits its column.
    longest = [max((len(row[i]) for row in texts), default=0) for i in range(len(columns))]
    styles = [
        "text-align:right;white-space:nowrap"
        if numeric[c]
        else "text-align:left" + (";white-space:nowrap" if longest[i] <= SHORT_TEXT else "")
        for i, c in enumerate(columns)
    ]
    rows = [
        "<tr>"
        + "".join(
            f'<td style="{style}">{esc(text)}</td>' for style, text in zip(styles, row, strict=True)
        )
        + "</tr>"
        for row in texts
    ]
    note = f"<caption>{esc(caption)}</caption>" if caption else ""
    return (
        f'<div class="rl-table" style="max-height:{TABLE_MAX_HEIGHT}px;overflow:auto;'
        f'border:1px solid {GRID};border-radius:6px">'
        f'<table style="border-collapse:collapse;width:100%;font-size:14px;'
        f'font-variant-numeric:tabular-nums">{note}'
        f'<thead style="position:sticky;top:0;background:#F7F8F9"><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
        "<style>.rl-table th,.rl-table td{padding:4px 10px;border-bottom:1px solid "
        f"{GRID}}}.rl-table th{{font-weight:600;color:{MUTED};white-space:nowrap}}</style>"
    )


@dataclass(frozen=True)
class Card:
    """One KPI card: what ``st.metric`` takes, minus the layout."""

    label: str
    value: str
    delta: str | int | float | None = None
    delta_color: str = "normal"  # "normal", "inverse" or "off", as in st.metric
    help: str | None = None


GOOD = "#1E8A4C"
BAD = "#C8553D"


def _delta(card: Card) -> str:
    if card.delta is None or card.delta == "":
        return ""
    text = str(card.delta)
    if card.delta == 0:
        return f'<div style="color:{MUTED};font-size:14px">{esc(text)}</div>'
    down = text.startswith("-")
    arrow = "↓" if down else "↑"
    shown = text[1:] if text[:1] in "+-" else text
    if card.delta_color == "off":
        colour = MUTED
    else:
        good = down if card.delta_color == "inverse" else not down
        colour = GOOD if good else BAD
    return f'<div style="color:{colour};font-size:14px">{arrow} {esc(shown)}</div>'


def cards_html(cards: Sequence[Card], *, per_row: int = 4) -> str:
    """KPI cards in a grid of ``per_row`` columns: label (with its help as a tooltip),
    value and change, coloured as ``st.metric`` colours them."""
    items = []
    for card in cards:
        hint = f' title="{esc(card.help)}"' if card.help else ""
        marker = (
            f' <span style="display:inline-block;width:15px;height:15px;border:1px solid '
            f"{AXIS};border-radius:50%;font-size:10px;line-height:14px;text-align:center;"
            f'color:{MUTED};vertical-align:1px">?</span>'
            if card.help
            else ""
        )
        items.append(
            f'<div class="rl-card"{hint} style="border:1px solid {GRID};border-radius:8px;'
            f'padding:12px 16px">'
            f'<div style="font-size:14px;color:{INK}">{esc(card.label)}{marker}</div>'
            f'<div style="font-size:2rem;line-height:1.3;color:{INK}">{esc(card.value)}</div>'
            f"{_delta(card)}</div>"
        )
    return (
        f'<div style="display:grid;grid-template-columns:repeat({per_row},minmax(0,1fr));'
        f'gap:16px">{"".join(items)}</div>'
    )
