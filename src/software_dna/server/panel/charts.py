"""Charts the server draws: inline SVG markup, readable without colour and by screen readers.

Pure functions: data in, :class:`markupsafe.Markup` out; every text that
comes from data (a day, a version, an outcome) is escaped here, so templates
print the result as it is.  Each chart is a ``<figure>`` holding an
``<svg class="chart" role="img" aria-labelledby=...>`` with its ``<title>``
and ``<desc>``, each bar with its own ``<title>`` (the exact number on
hover), and a ``<details>`` table with the same numbers: the fallback for
anyone who cannot see the picture.  No style attribute (the panel's
Content-Security-Policy forbids inline styles): colours are presentation
attributes, and every bar is labelled in text, so colour carries nothing the
text does not say.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from markupsafe import Markup

__all__ = ["bar_chart", "hbar_chart"]

#: The bars' fill (dark enough against white to pass WCAG's 3:1 for graphics).
FILL = "#2f5f8a"
#: The axis and text colour.
INK = "#222222"

_ID = re.compile(r"[^a-z0-9-]")


def _chart_id(chart_id: str) -> str:
    """A safe id for the chart's elements (letters, digits and dashes only)."""
    return _ID.sub("-", chart_id.lower()) or "chart"


def _num(value: float) -> str:
    """A coordinate with at most one decimal (short markup)."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _table(caption: str, header: tuple[str, str], rows: Sequence[tuple[str, int]]) -> Markup:
    body = Markup("").join(
        Markup("<tr><th scope=\"row\">{}</th><td>{}</td></tr>").format(label, value)
        for label, value in rows)
    return Markup(
        "<details class=\"chart-data\"><summary>{caption}: the numbers</summary>"
        "<table><thead><tr><th scope=\"col\">{h0}</th><th scope=\"col\">{h1}</th></tr></thead>"
        "<tbody>{body}</tbody></table></details>"
    ).format(caption=caption, h0=header[0], h1=header[1], body=body)


def bar_chart(chart_id: str, title: str, description: str,
              points: Sequence[tuple[str, int]], *, label_header: str = "Day",
              width: int = 640, height: int = 200) -> Markup:
    """A vertical bar chart (one bar per point, e.g. per day), with its data table.

    Args:
        chart_id: a unique id on the page (non-alphanumerics become dashes).
        title: the chart's title (its ``<title>`` and the figure's caption).
        description: one sentence saying what it shows (its ``<desc>``).
        points: ``(label, value)`` in order; values are whole numbers >= 0.
        label_header: the first column's header in the data table.
        width, height: the drawing's size in SVG units (it scales with the page).

    Returns:
        The ``<figure>`` markup (escaped; print it as it is).
    """
    cid = _chart_id(chart_id)
    top, bottom, left, right = 20, 30, 44, 8
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((max(v, 0) for _, v in points), default=0)
    scale = plot_h / peak if peak else 0.0
    slot = plot_w / len(points) if points else plot_w
    bar_w = max(slot * 0.7, 1.0)
    parts: list[Markup] = []
    for i, (label, value) in enumerate(points):
        h = max(value, 0) * scale
        x = left + i * slot + (slot - bar_w) / 2
        parts.append(Markup(
            "<rect class=\"bar\" x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" fill=\"{fill}\""
            " data-label=\"{label}\" data-value=\"{value}\"><title>{label}: {value}</title></rect>"
        ).format(x=_num(x), y=_num(top + plot_h - h), w=_num(bar_w), h=_num(h), fill=FILL,
                 label=label, value=value))
    # The axis: a base line, the peak value, and the first and last labels.
    axis = [Markup(
        "<line x1=\"{l}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"{ink}\"/>"
        "<text x=\"{tx}\" y=\"{ty}\" text-anchor=\"end\" font-size=\"11\" fill=\"{ink}\">{peak}"
        "</text><text x=\"{tx}\" y=\"{b}\" text-anchor=\"end\" font-size=\"11\" fill=\"{ink}\">0"
        "</text>"
    ).format(l=left, r=width - right, b=top + plot_h, ink=INK, tx=left - 4, ty=top + 4,
             peak=peak)]
    if points:
        axis.append(Markup(
            "<text x=\"{x0}\" y=\"{y}\" font-size=\"11\" fill=\"{ink}\">{first}</text>"
            "<text x=\"{x1}\" y=\"{y}\" text-anchor=\"end\" font-size=\"11\" fill=\"{ink}\">"
            "{last}</text>"
        ).format(x0=left, x1=width - right, y=height - 10, ink=INK, first=points[0][0],
                 last=points[-1][0]))
    total = sum(v for _, v in points)
    svg = Markup(
        "<svg class=\"chart\" role=\"img\" aria-labelledby=\"{cid}-title {cid}-desc\""
        " viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\""
        " preserveAspectRatio=\"xMinYMin meet\" xmlns=\"http://www.w3.org/2000/svg\">"
        "<title id=\"{cid}-title\">{title}</title><desc id=\"{cid}-desc\">{desc} Total: {total}"
        "; highest: {peak}.</desc>{axis}<g class=\"bars\">{bars}</g></svg>"
    ).format(cid=cid, w=width, h=height, title=title, desc=description, total=total,
             peak=peak, axis=Markup("").join(axis), bars=Markup("").join(parts))
    return Markup("<figure class=\"chart-figure\" id=\"{cid}\"><figcaption>{title}</figcaption>"
                  "{svg}{table}</figure>").format(
        cid=cid, title=title, svg=svg,
        table=_table(title, (label_header, "Count"), points))


def hbar_chart(chart_id: str, title: str, description: str,
               items: Sequence[tuple[str, int]], *, label_header: str = "Value",
               width: int = 640, bar_height: int = 22) -> Markup:
    """A horizontal bar chart, each bar labelled with its name and number (a spread).

    Args:
        chart_id: a unique id on the page.
        title: the chart's title.
        description: one sentence saying what it shows.
        items: ``(label, value)`` in the order to draw (e.g. largest first).
        label_header: the first column's header in the data table.
        width: the drawing's width in SVG units.
        bar_height: each row's height.

    Returns:
        The ``<figure>`` markup (escaped; print it as it is).
    """
    cid = _chart_id(chart_id)
    label_w, value_w, gap = 180, 60, 4
    plot_w = width - label_w - value_w
    peak = max((max(v, 0) for _, v in items), default=0)
    height = max(len(items), 1) * bar_height + 2 * gap
    rows: list[Markup] = []
    for i, (label, value) in enumerate(items):
        y = gap + i * bar_height
        w = plot_w * max(value, 0) / peak if peak else 0.0
        shown = label if len(label) <= 28 else label[:27] + "\u2026"
        rows.append(Markup(
            "<g class=\"row\"><text x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\" font-size=\"12\""
            " fill=\"{ink}\">{shown}</text>"
            "<rect class=\"bar\" x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" fill=\"{fill}\""
            " data-label=\"{label}\" data-value=\"{value}\"><title>{label}: {value}</title></rect>"
            "<text x=\"{vx}\" y=\"{ty}\" font-size=\"12\" fill=\"{ink}\">{value}</text></g>"
        ).format(lx=label_w - 6, ty=_num(y + bar_height * 0.7), ink=INK, shown=shown,
                 x=label_w, y=_num(y + 2), w=_num(w), h=bar_height - 6, fill=FILL,
                 label=label, value=value, vx=_num(label_w + w + 4)))
    if not items:
        rows.append(Markup("<text x=\"{x}\" y=\"{y}\" font-size=\"12\" fill=\"{ink}\">"
                           "No data yet.</text>").format(x=gap, y=bar_height * 0.7, ink=INK))
    total = sum(v for _, v in items)
    svg = Markup(
        "<svg class=\"chart\" role=\"img\" aria-labelledby=\"{cid}-title {cid}-desc\""
        " viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\""
        " preserveAspectRatio=\"xMinYMin meet\" xmlns=\"http://www.w3.org/2000/svg\">"
        "<title id=\"{cid}-title\">{title}</title><desc id=\"{cid}-desc\">{desc} {n} rows, "
        "total {total}.</desc>{rows}</svg>"
    ).format(cid=cid, w=width, h=_num(height), title=title, desc=description, n=len(items),
             total=total, rows=Markup("").join(rows))
    return Markup("<figure class=\"chart-figure\" id=\"{cid}\"><figcaption>{title}</figcaption>"
                  "{svg}{table}</figure>").format(
        cid=cid, title=title, svg=svg, table=_table(title, (label_header, "Count"), items))

