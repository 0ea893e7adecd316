"""plotly charts of analysis results, for the notebook next to the map."""

from __future__ import annotations

import numpy as np

from ..core.htmlsafe import plot_text as _t


def _go():
    from ..core.errors import require

    return require("plotly.graph_objects", "analysis charts", "plotly")


def slice_rates(result, top: int = 20):
    """Error rate per failure slice with its 95 % Wilson interval, and the overall rate."""
    go = _go()
    t = result.table.head(top)
    labels = [_t(f"{n}: {d}" if d else n) for n, d in zip(t["name"], t["description"])]
    fig = go.Figure(go.Bar(
        x=t["error_rate"], y=labels, orientation="h", name="error rate",
        error_x={"type": "data", "symmetric": False, "array": t["high"] - t["error_rate"],
                 "arrayminus": t["error_rate"] - t["low"]},
        customdata=np.stack([t["count"], t["errors"], t["error_share"]], axis=1) if len(t) else None,
        hovertemplate="%{y}<br>error rate %{x:.1%}<br>%{customdata[1]} errors of %{customdata[0]}"
                      "<br>%{customdata[2]:.1%} of all errors<extra></extra>"))
    fig.add_vline(x=result.error_rate, line_dash="dash", annotation_text=f"overall {result.error_rate:.1%}")
    fig.update_layout(title="Failure slices: error rate with 95% interval", xaxis_tickformat=".0%",
                      xaxis_title="error rate", yaxis_autorange="reversed", height=120 + 28 * max(len(t), 1),
                      margin={"l": 10, "r": 10, "t": 50, "b": 40})
    return fig


def concept_bars(result, top: int = 40):
    """Share of each set matching each concept, missing concepts first."""
    go = _go()
    t = result.table.head(top)
    fig = go.Figure()
    for name in result.names:
        fig.add_trace(go.Bar(x=t[f"share_{name}"], y=[_t(v) for v in t["name"]], orientation="h", name=_t(name),
                             customdata=t[f"matches_{name}"],
                             hovertemplate="%{y}: %{customdata} images (%{x:.1%})<extra>" + _t(name) + "</extra>"))
    fig.update_layout(title=_t(f"Concept coverage (missing: {', '.join(result.missing()) or 'none'})"),
                      barmode="group", xaxis_tickformat=".0%", xaxis_title="share of images matching",
                      yaxis_autorange="reversed", height=120 + 22 * max(len(t), 1) * len(result.names),
                      margin={"l": 10, "r": 10, "t": 50, "b": 40})
    return fig


def group_bars(t, *, color, colorscale: str, colorbar: str, text, unit: str, title: str,
               crange: tuple[float, float] | None = None):
    """Horizontal bars of group sizes (``t``: a head of a group table), best first, coloured by
    ``color``; each bar's hover shows its ``text``. Shared by the region, duplicate-group charts."""
    go = _go()
    labels = [_t(f"{n}: {d}" if d else n) for n, d in zip(t["name"], t["description"])]
    marker = {"color": color, "colorscale": colorscale, "colorbar": {"title": colorbar}}
    if crange is not None:
        marker.update(cmin=crange[0], cmax=crange[1])
    fig = go.Figure(go.Bar(x=t["count"], y=labels, orientation="h", marker=marker, text=[_t(v) for v in text],
                           hovertemplate=f"%{{y}}<br>%{{x}} {unit}<br>%{{text}}<extra></extra>"))
    fig.update_layout(title=_t(title), xaxis_title=unit, yaxis_autorange="reversed",
                      height=120 + 28 * max(len(t), 1), margin={"l": 10, "r": 10, "t": 50, "b": 40})
    return fig


def region_bars(result, top: int = 20):
    """Size of each coverage region, coloured by its mean under-coverage score."""
    t = result.table.head(top)
    return group_bars(t, color=t["score"], colorscale="Viridis", colorbar="score", text=t["top_labels"],
                      unit="samples", title=f"{result.title}: size and under-coverage score", crange=(0, 1))


def cluster_bars(result):
    """Size of each cluster, labelled by its name and top labels."""
    go = _go()
    t = result.table
    fig = go.Figure(go.Bar(x=t["count"], y=[_t(v) for v in t["name"]], orientation="h",
                           text=[_t(v) for v in t["top_labels"]],
                           hovertemplate="%{y}: %{x} samples<br>%{text}<extra></extra>"))
    fig.update_layout(title="Clusters", xaxis_title="samples", yaxis_autorange="reversed",
                      height=120 + 24 * max(len(t), 1), margin={"l": 10, "r": 10, "t": 50, "b": 40})
    return fig
