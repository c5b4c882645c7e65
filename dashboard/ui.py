"""Small shared pieces of page layout: formatting, empty states and CSV exports."""

from __future__ import annotations

import csv
import datetime as dt
import io
import pickle
import types
from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import auth, data, static_view, values
from dashboard.static_view import INTERACTIVE_KEY, Card
from reportlib.access import DashboardUser, can_see_values
from reportlib.health import ReplicaLag
from reportlib.queries import ReportFilter

EMPTY_DATABASE = (
    "There are no processing reports in the database yet. Once the pipeline writes "
    "reports they appear here; for a demo, run `python -m reportlib seed-demo`."
)


def interactive() -> bool:
    """Whether this session draws Plotly charts, data grids and ``st.metric`` cards (on)
    or the same content as static SVG and HTML, which the browser draws at once (off)."""
    return bool(st.session_state.get(INTERACTIVE_KEY, False))


def view_toggle(*, default_interactive: bool) -> None:
    """The sidebar switch between the static and the interactive view; its first value
    is the ``DASHBOARD_VIEW`` setting, then each session keeps its own choice."""
    st.session_state.setdefault(INTERACTIVE_KEY, default_interactive)
    st.toggle(
        "Interactive charts and tables",
        key=INTERACTIVE_KEY,
        help=(
            "On: charts zoom and pan, tables sort and filter. Off: the same charts and "
            "tables drawn as static images and text, which show sooner; hover a bar, "
            "point or cell for its figures."
        ),
    )


def chart(
    builder: Callable[..., Any],
    /,
    *args: Any,
    key: str,
    where: Any = None,
    width: int = 1000,
    **kwargs: Any,
) -> None:
    """The chart ``builder(*args, **kwargs)`` makes (a :mod:`dashboard.charts` function):
    the Plotly figure in the interactive view, else the same figure drawn as SVG ``width``
    units wide (``width`` only sets the text size relative to the chart; both fill their
    container). The SVG is cached per builder and data, so a repeated view builds
    nothing."""
    target = st if where is None else where
    if not interactive():
        svg = _chart_svg(builder, args, tuple(sorted(kwargs.items())), width)
        if svg is not None:
            target.markdown(static_view.chart_block(svg), unsafe_allow_html=True)
            return
    target.plotly_chart(builder(*args, **kwargs), key=key)


def _qualified_name(function: Callable[..., Any]) -> str:
    return f"{function.__module__}.{function.__qualname__}"


def _frame_key(frame: pd.DataFrame) -> bytes:
    # Streamlit's own DataFrame hashing takes about 2.5 ms per small frame, on every run
    # that draws a chart; the pickle takes 0.15 ms and names the same frame. Equal frames
    # built differently may pickle differently: that costs a rebuild, never a wrong chart.
    return pickle.dumps(frame, protocol=5)


@st.cache_data(
    show_spinner=False,
    max_entries=256,
    hash_funcs={types.FunctionType: _qualified_name, pd.DataFrame: _frame_key},
)
def _chart_svg(
    builder: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: tuple[tuple[str, Any], ...],
    width: int,
) -> str | None:
    try:
        return static_view.figure_svg(builder(*args, **dict(kwargs)), width=width)
    except static_view.UnsupportedFigure:
        return None  # drawn interactively


def table(
    frame: pd.DataFrame,
    *,
    key: str,
    column_config: dict[str, Any] | None = None,
    **options: Any,
) -> None:
    """A read-only table without its index: a data grid in the interactive view, else a
    static HTML table with the same column formats. Tables with row selection use
    ``st.dataframe`` directly."""
    if interactive():
        st.dataframe(frame, hide_index=True, column_config=column_config, key=key, **options)
    else:
        st.html(static_view.table_html(frame, column_config=column_config))


def cards(items: list[Card], *, per_row: int = 4) -> None:
    """KPI cards, ``per_row`` to a row: ``st.metric`` in the interactive view, else one
    HTML block with the same labels, values, changes, colours and help."""
    if not interactive():
        st.html(static_view.cards_html(items, per_row=per_row))
        return
    for start in range(0, len(items), per_row):
        columns = st.columns(per_row)
        for column, item in zip(columns, items[start : start + per_row], strict=False):
            column.metric(
                item.label,
                item.value,
                item.delta,
                delta_color=item.delta_color,  # type: ignore[arg-type]
                help=item.help,
                border=True,
            )


def truncation_note(what: str, limit: int, *truncated: bool) -> None:
    """Say so when a bounded breakdown left groups out, so that a partial list is never
    read as the whole."""
    if any(truncated):
        st.caption(
            f":material/filter_list: The breakdowns show the {limit} largest {what}; "
            "the rest are left out of them (totals still count every report)."
        )


def replica_lag_notice(lag: ReplicaLag) -> None:
    """Say which instant the figures are as of, when the read replica lags behind."""
    seconds = int(lag.behind.total_seconds())
    st.warning(
        f"Data as of {lag.as_of.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC: the read replica "
        f"is {seconds:,} s behind the primary, so later reports and decisions are not in "
        "these figures yet. The review queue's claims and holders come from the primary.",
        icon=":material/history:",
    )


def stop_if_empty_database(has_reports: bool) -> None:
    """End the page with a friendly note when the database holds no report at all."""
    if not has_reports:
        st.info(EMPTY_DATABASE, icon=":material/inbox:")
        st.stop()


def empty_window(flt: ReportFilter) -> None:
    """Say that the filtered window holds no reports (the page may go on)."""
    st.info(
        f"No reports match the filters for {flt.start.isoformat()} to {flt.end.isoformat()} "
        "(UTC). Widen the date range or clear the intent and route filters.",
        icon=":material/filter_alt_off:",
    )


def period_caption(flt: ReportFilter) -> None:
    """One line naming the period (and previous period) in UTC."""
    previous = flt.previous()
    st.caption(
        f"{flt.start.isoformat()} to {flt.end.isoformat()} (UTC, {flt.days} days). "
        f"Changes compare with {previous.start.isoformat()} to {previous.end.isoformat()}."
    )


def plain_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` for ``st.dataframe``: bidi controls in text cells made visible
    (:func:`dashboard.values.plain_frame`)."""
    shown: pd.DataFrame = values.plain_frame(frame)
    return shown


def as_percent(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """A copy with share columns (0–1) turned into percentages, for display tables."""
    return frame.assign(**{column: frame[column] * 100 for column in columns})


def percent_column() -> Any:
    """Column format for a percentage made by :func:`as_percent`: one decimal."""
    return st.column_config.NumberColumn(format="%.1f%%")


# Cells a spreadsheet would read as a formula (OWASP "CSV injection"): = + - @, and tab
# or carriage return, which some tools skip before looking for those.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """``value`` safe for a spreadsheet: text starting like a formula gets a leading ``'``.

    Numbers stay numbers (a negative number is not a formula); only text is changed.
    This is the OWASP recommendation; spreadsheet tools show the ``'`` or hide it, but
    none evaluates the cell.
    """
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells and headers cannot become formulas."""
    safe = frame.copy()
    for column in safe.columns:
        if not (
            pd.api.types.is_numeric_dtype(safe[column]) or pd.api.types.is_bool_dtype(safe[column])
        ):
            safe[column] = safe[column].map(csv_cell, na_action="ignore")
    safe.columns = [csv_cell(str(name)) for name in safe.columns]
    return safe


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """UTF-8 CSV with a header row and no index; every cell is formula-safe
    (:func:`csv_safe`) and every text field is quoted."""
    return csv_safe(frame).to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC).encode("utf-8")


CsvSource = pd.DataFrame | Callable[[], pd.DataFrame | bytes]


def _payload(built: pd.DataFrame | bytes) -> tuple[bytes, int]:
    # Builders that return bytes must make them with csv_bytes (the only CSV writer).
    if isinstance(built, pd.DataFrame):
        return csv_bytes(built), len(built)
    rows = sum(1 for _ in csv.reader(io.StringIO(built.decode("utf-8")))) - 1
    return built, max(rows, 0)


def audited_export(source: CsvSource, *, user: DashboardUser, page: str) -> Callable[[], bytes]:
    """A file builder that commits a ``csv_exported`` audit row before handing the file out.

    The row names the user, the page and the number of rows, never their content. If it
    cannot be written, the builder raises and no file is produced.
    """

    def build() -> bytes:
        payload, rows = _payload(source() if callable(source) else source)
        data.record_export(user, page=page, rows=rows)
        return payload

    return build


def csv_download(
    source: CsvSource,
    *,
    label: str,
    file_name: str,
    key: str,
    audit_page: str | None = None,
    contains_values: bool = False,
) -> None:
    """A download button for a table; pass a callable to build large files on click.

    ``contains_values=True`` marks an export with extracted values: it is offered only to
    roles that may see values, and always audited. ``audit_page`` (the page's URL path)
    audits an export without values too. An audited file is built only when the button
    is clicked, and every build writes one ``csv_exported`` row first.
    """
    if contains_values and audit_page is None:
        raise ValueError("an export with values must name its page for the audit row")
    payload: bytes | Callable[[], bytes]
    if audit_page is not None:
        user = auth.current_user()
        if user is None or (contains_values and not can_see_values(user.role)):
            return
        payload = audited_export(source, user=user, page=audit_page)
    elif isinstance(source, pd.DataFrame):
        frame = source

        # Built when the button is clicked, not on every run that draws it.
        def payload() -> bytes:
            return csv_bytes(frame)

    else:
        build = source

        def payload() -> bytes:
            return _payload(build())[0]

    st.download_button(
        label,
        data=payload,
        file_name=file_name,
        mime="text/csv",
        key=key,
        icon=":material/download:",
        on_click="ignore",
    )


def file_stem(name: str, flt: ReportFilter) -> str:
    """``name_2026-11-01_2026-11-29``: export file names carry the window."""
    return f"{name}_{flt.start.isoformat()}_{flt.end.isoformat()}"


def fmt_int(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def fmt_email_id(value: object) -> str:
    """An email id for a text cell, or a dash when there is none (NULL, NA)."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return "—"
    return str(int(value))  # type: ignore[call-overload]


def fmt_pct(share: float | None, digits: int = 1) -> str:
    return "—" if share is None else f"{share * 100:.{digits}f}%"


def fmt_confidence(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 10_000:
        return f"{value / 1000:,.1f} s"
    return f"{value:,.0f} ms"


def fmt_age(seconds: float | None) -> str:
    """``"3 d 4 h"``, ``"5 h 12 min"`` or ``"12 min"``."""
    if seconds is None:
        return "—"
    minutes = max(0, int(seconds // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min"


def change(current: float | None, previous: float | None, *, kind: str) -> str | int | None:
    """Signed change for ``st.metric``: text, ``0`` when it rounds to nothing (a grey
    delta without an arrow), or ``None`` when either side is unknown.

    ``kind`` is ``count`` (absolute and relative), ``share`` (percentage points),
    ``confidence`` (absolute), ``ms`` or ``age``.
    """
    if current is None or previous is None:
        return None
    diff = current - previous
    size = abs(diff)
    if kind == "count":
        text = f"{size:,.0f}"
        if previous and round(size) != 0:
            text += f" ({size / abs(previous) * 100:.1f}%)"
    elif kind == "share":
        text = f"{size * 100:.1f} pp"
    elif kind == "confidence":
        text = f"{size:.3f}"
    elif kind == "ms":
        text = fmt_ms(size)
    elif kind == "age":
        text = fmt_age(size)
    else:
        raise ValueError(f"unknown change kind {kind!r}")
    if not any(ch in "123456789" for ch in text.split("(")[0]):
        return 0
    return ("-" if diff < 0 else "+") + text


def utc_text(value: dt.datetime | None) -> str:
    """``2026-11-29 14:03 UTC``."""
    if value is None:
        return "—"
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
