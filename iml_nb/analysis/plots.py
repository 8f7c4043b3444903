"""Altair charts of the metrics frame: EM curves across stages (paper Fig. 3a/3b) and per-seed IML gaps; rendered offline."""

from __future__ import annotations

import importlib.util
import io
import os
from pathlib import Path

import altair as alt
import pandas as pd

from iml_nb.analysis.stats import GAPS, curves, gap, paired_differences
from iml_nb.core.results import atomic_write_bytes

# Paper notation and the reference plot's fixed colours (matplotlib "tab:" palette).
# The paper marks the reliable tag with a dot (Define-dot) and the unreliable one with a bar (Define-bar); the labels
# spell that out because vl-convert's fonts misplace combining overlines and tildes (D̄ drew its bar over the digit).
_BASE_STYLE = {
    "qd1consis": ("D1cons QA1 (Define-dot, Stage 1)", "#9467bd"),  # purple
    "qd2incons": ("D2incons QA2 (Define-bar, Stage 1)", "#e377c2"),  # pink
    "q": ("QA3 (no definition)", "#8c564b"),  # brown
    "q_no_replacement_baseline": ("QA4 (real names, not replaced)", "#2ca02c"),  # green
    "d1consis": ("D5cons (Define-dot, Stage 2)", "#1f77b4"),  # blue
    "d2consis": ("D6cons (Define-bar, Stage 2)", "#d62728"),  # red
    "d3consis": ("D8cons (new tag, Stage 2)", "#7f7f7f"),  # grey; the poster numbers it D8 (paper: D-tilde)
    "no_qd_baseline": ("QA7 (unseen aliases)", "#ff7f0e"),  # orange
}
SUBSET_STYLE: dict[str, tuple[str, str]] = {
    **_BASE_STYLE,
    **{f"ent_assoc_{k}": (f"{label}, entity", colour) for k, (label, colour) in _BASE_STYLE.items()},
    # The swapped set asks for the entity the inconsistent definition named, not the one the QA taught.
    "ent_assoc_qd2incons_swapped": ("D2incons QA2, entity named by the definition", "#e377c2"),
}
_ORDER = list(SUBSET_STYLE)
QA_SUBSETS = tuple(_BASE_STYLE)  # what the paper's Fig. 3a plots
ENTITY_SUBSETS = (
    "ent_assoc_qd1consis",
    "ent_assoc_qd2incons_swapped",
    "ent_assoc_q",
    "ent_assoc_d1consis",
    "ent_assoc_d2consis",
    "ent_assoc_d3consis",
)  # Fig. 3b
_FALLBACK_COLOURS = ["#17becf", "#bcbd22", "#393b79", "#637939", "#8c6d31", "#843c39"]  # subsets the paper did not plot


# What every interval chart shows on hover beside its own fields
_CI_TOOLTIP = [
    alt.Tooltip("mean:Q", format=".3f"),
    alt.Tooltip("ci_low:Q", format=".3f"),
    alt.Tooltip("ci_high:Q", format=".3f"),
    "n_seeds:Q",
]


def style_for(subset: str) -> tuple[str, str] | None:
    """(label, colour) for a subset, or None if the paper has no style for it.

    Entity sets with a question-type infix (ent_assoc_name_d1consis) reuse the base style.
    """
    if subset in SUBSET_STYLE:
        return SUBSET_STYLE[subset]
    if subset.startswith("ent_assoc_"):
        rest = subset[len("ent_assoc_") :]
        swapped = "_swapped" if rest.endswith("_swapped") else ""
        core = rest.removesuffix("_swapped")
        for known in sorted(_BASE_STYLE, key=len, reverse=True):  # longest first: "q" is a suffix of many names
            if core == known or core.endswith("_" + known):
                return SUBSET_STYLE.get(f"ent_assoc_{known}{swapped}", SUBSET_STYLE[f"ent_assoc_{known}"])
    return None


def ordered(subsets) -> list[str]:
    return sorted(set(subsets), key=lambda s: (_ORDER.index(s) if s in _ORDER else len(_ORDER), s))


def _styles(subsets: list[str]) -> dict[str, tuple[str, str]]:
    """Subset -> (label, colour); unstyled subsets are labelled by name and get distinct fallback colours."""
    styles, spare = {}, iter(_FALLBACK_COLOURS * (1 + len(subsets) // len(_FALLBACK_COLOURS)))
    for subset in subsets:
        styles[subset] = style_for(subset) or (subset, next(spare))
    return styles


def use_offline_renderer(interactive: bool = False) -> str:
    """Make charts display without network access and without a row limit; return the renderer used. Idempotent.

    Default "svg": vl-convert draws the chart in the kernel, so the output is a static SVG (tens of kB) that survives
    papermill, nbconvert and GitHub and needs no JavaScript. interactive=True uses the anywidget-based "jupyter"
    renderer in offline mode when anywidget is installed, else the "html" renderer with vega inlined (~0.9 MB a chart).
    """
    alt.data_transformers.disable_max_rows()  # the frames are small; the limit only gets in the way
    if not interactive:
        name, options = "svg", {}
    elif "jupyter" in alt.renderers.names() and importlib.util.find_spec("anywidget") is not None:
        name, options = "jupyter", {"offline": True}
    else:
        name, options = "html", {"template": "inline"}
    alt.renderers.enable(name, **options)
    return name


def _stage_rules(points: pd.DataFrame) -> alt.LayerChart:
    """Dashed rule before the first epoch of each stage, labelled at the top."""
    starts = points.groupby("stage")["global_epoch"].min().reset_index()
    starts["x"] = starts["global_epoch"] - 0.5
    starts["text"] = ["pretrained" if s == 0 else f"Stage {s}" for s in starts["stage"]]
    base = alt.Chart(starts).encode(x="x:Q")
    rule = base.mark_rule(strokeDash=[5, 4], color="black", opacity=0.6)
    text = base.mark_text(align="left", baseline="top", dx=4, dy=4, fontSize=12).encode(y=alt.value(0), text="text:N")
    return rule + text


def em_curves(
    metrics: pd.DataFrame,
    subsets: list[str] | None = None,
    metric: str = "em",
    title: str | None = None,
    include_stage0: bool = False,
    confidence: float = 0.95,
    y_title: str | None = None,
    y_domain: tuple[float, float] = (0, 1),
    missing_ok: bool = False,
) -> alt.LayerChart:
    """Mean across Stage-1 seeds per subset vs epoch, with t-CI error bars and stage boundaries (Fig. 3a/3b-like).

    Default subsets: the paper's Fig. 3a subsets present; `subsets=ENTITY_SUBSETS` (or any list) for Fig. 3b and diagnostics.
    A named subset the run did not score fails, unless `missing_ok` (e.g. the definitions of a run that gave them in context).
    """
    data = curves(metrics, metric, confidence)
    if not include_stage0:
        data = data[data["stage"] != 0]
    present = set(data["subset"])
    if subsets is None:
        subsets = [s for s in QA_SUBSETS if s in present]
    missing = sorted(set(subsets) - present)
    if missing_ok:
        subsets, missing = [s for s in subsets if s in present], []
    if missing:
        raise ValueError(f"subsets {missing} are absent for metric {metric!r}; present: {sorted(present)}")
    subsets = ordered(subsets)
    data = data[data["subset"].isin(subsets)].copy()
    styles = _styles(subsets)
    data["label"] = data["subset"].map(lambda s: styles[s][0])
    labels, colours = zip(*(styles[s] for s in subsets))

    y_title = y_title or {"em": "exact match", "f1": "F1"}.get(metric, metric)
    base = alt.Chart(data).encode(
        x=alt.X("global_epoch:Q", title="epoch", axis=alt.Axis(tickMinStep=1), scale=alt.Scale(zero=False, padding=12)),
        color=alt.Color(
            "label:N", title=None, scale=alt.Scale(domain=list(labels), range=list(colours)), legend=alt.Legend(labelLimit=400)
        ),
        tooltip=[
            "subset:N",
            "stage:Q",
            "epoch:Q",
            *_CI_TOOLTIP,
        ],
    )
    y = alt.Y("mean:Q", title=y_title, scale=alt.Scale(domain=list(y_domain)))
    lines = base.mark_line(strokeWidth=1.5).encode(y=y)
    points = base.mark_point(filled=True, size=30).encode(y=y)
    # Rows from a single seed have no interval (NaN -> null); vega-lite skips them. A t-interval on a bounded
    # score can cross 0 or 1; clip draws it at the axis edge rather than changing the number.
    bars = base.mark_errorbar(ticks={"size": 6}, clip=True).encode(
        y=alt.Y("ci_low:Q", title=y_title, scale=alt.Scale(domain=list(y_domain))), y2="ci_high:Q"
    )
    n = int(data["n_seeds"].max())
    pct = round(confidence * 100)
    title = title or f"{y_title.capitalize()} on held-out questions (mean of {n} Stage-1 seeds, {pct}% t-CI)"
    return alt.layer(_stage_rules(data), bars, lines, points).properties(title=title, width=520, height=320)


DEFAULT_GAPS = tuple((g.a, g.b, g.stage, g.label) for g in GAPS)  # (a, b, stage or None for the last stage both appear in, label)
STAGE2_CHECK_GAPS = (  # set inclusion and MNIST: the IML gap next to the same difference before Stage 2 (noise only)
    ("d1consis", "d2consis", None, "d1 − d2 after Stage 2 (IML gap)"),
    ("d1consis", "d2consis", 1, "d1 − d2 before Stage 2 (noise)"),
    ("qd1consis", "qd2incons", 1, "qd1 − qd2, Stage 1"),
)


def gap_chart(metrics: pd.DataFrame, gaps=DEFAULT_GAPS, metric: str = "em", confidence: float = 0.95) -> alt.LayerChart:
    """Per-seed differences a − b (grey dots) with their mean and t-CI (black), one row per gap.

    Gaps whose subsets are absent are skipped.
    """
    present = set(metrics.loc[metrics["metric"] == metric, "subset"])
    seeds, means = [], []
    for a, b, stage, label in gaps:
        if not {a, b} <= present:
            continue
        pairs = paired_differences(metrics, a, b, metric, stage=stage)
        seeds.append(pd.DataFrame({"gap": label, "seed": pairs["seed"].astype("float"), "diff": pairs["diff"]}))
        means.append({"gap": label, **gap(metrics, a, b, metric, stage=stage, confidence=confidence)})
    if not means:
        raise ValueError(f"none of the gaps {[(a, b) for a, b, _, _ in gaps]} has both subsets present")
    order = [m["gap"] for m in means]
    y = alt.Y("gap:N", title=None, sort=order)
    x_title = f"difference in {'exact match' if metric == 'em' else metric} (per Stage-1 seed)"
    dots = (
        alt.Chart(pd.concat(seeds))
        .mark_circle(color="grey", opacity=0.6, size=35)
        .encode(x=alt.X("diff:Q", title=x_title), y=y, tooltip=["seed:Q", alt.Tooltip("diff:Q", format=".3f")])
    )
    summary = alt.Chart(pd.DataFrame(means)).encode(y=y)
    ci = summary.mark_errorbar(ticks={"size": 12}, color="black").encode(x=alt.X("ci_low:Q", title=x_title), x2="ci_high:Q")
    mean = summary.mark_point(shape="diamond", filled=True, size=90, color="black").encode(
        x=alt.X("mean:Q", title=x_title),
        tooltip=[
            *_CI_TOOLTIP,
            "stage:Q",
            "epoch:Q",
        ],
    )
    zero = alt.Chart(pd.DataFrame({"x": [0.0]})).mark_rule(strokeDash=[3, 3]).encode(x=alt.X("x:Q", title=x_title))
    title = f"Gaps at the final epoch ({round(confidence * 100)}% t-CI across seeds)"
    return alt.layer(zero, dots, ci, mean).properties(width=420, height=alt.Step(40), title=title)


_FORMATS = {".svg": ("svg", False), ".png": ("png", True), ".pdf": ("pdf", True), ".html": ("html", False), ".json": ("json", False)}


def save_chart(chart: alt.TopLevelMixin, path: str | os.PathLike, scale_factor: float = 2.0) -> Path:
    """Write the chart as .svg/.png/.pdf/.html/.json (by suffix), offline via vl-convert, atomically."""
    path = Path(path)
    if path.suffix.lower() not in _FORMATS:
        raise ValueError(f"cannot save a chart as {path.suffix!r}; use one of {sorted(_FORMATS)}")
    fmt, binary = _FORMATS[path.suffix.lower()]
    buffer = io.BytesIO() if binary else io.StringIO()
    # inline=True puts the vega JavaScript into the HTML file, so it opens without network access.
    # scale_factor only means something for PNG; vl-convert warns if a PDF gets one.
    chart.save(buffer, format=fmt, scale_factor=scale_factor if fmt == "png" else 1.0, inline=(fmt == "html"))
    data = buffer.getvalue()
    return atomic_write_bytes(path, data if binary else data.encode("utf-8"))


def gap_vs(
    table: pd.DataFrame,
    axis: str,
    title: str | list[str] | None = None,
    order: list | None = None,
    log_x: bool = False,
    y_title: str = "EM(d1consis) − EM(d2consis), end of training",
) -> alt.LayerChart:
    """Fig. 4-like: the IML gap (mean and t-CI across Stage-1 seeds) at every value of a swept parameter, one colour per gap.

    Numeric axes get a line (log scale with `log_x`, e.g. batch size); categorical ones (word orders, model names) points in `order`.
    """
    numeric = pd.api.types.is_numeric_dtype(table[axis]) and order is None
    if numeric:
        scale = alt.Scale(type="log", base=2) if log_x else alt.Scale(zero=False, padding=20)
        x = alt.X(f"{axis}:Q", title=axis, scale=scale)
    else:
        x = alt.X(f"{axis}:N", title=axis, sort=[str(v) for v in order] if order else "ascending")
        table = table.assign(**{axis: table[axis].astype(str)})
    offset = {} if numeric else {"xOffset": alt.XOffset("gap:N")}
    base = alt.Chart(table).encode(
        x=x,
        color=alt.Color("gap:N", title="IML gap (d1consis − d2consis)"),
        **offset,
        tooltip=[
            f"{axis}",
            "gap:N",
            *_CI_TOOLTIP,
        ],
    )
    zero = alt.Chart(pd.DataFrame({"y": [0.0]})).mark_rule(strokeDash=[4, 4], color="black").encode(y="y:Q")
    bars = base.mark_errorbar(ticks={"size": 6}).encode(y=alt.Y("ci_low:Q", title=y_title), y2="ci_high:Q")
    mean = base.mark_line(point=True) if numeric else base.mark_point(filled=True, size=60)
    return alt.layer(zero, bars, mean.encode(y=alt.Y("mean:Q", title=y_title))).properties(
        title=title or f"IML gap vs {axis}", width=420, height=280
    )


def probe_heatmap(curves: pd.DataFrame, title: str = "Linear probe accuracy (mean over seeds)") -> alt.FacetChart:
    """Token × layer heatmap of probe accuracy (paper §9.2 figure): one panel per word order (columns) and probe (rows), colour
    0.5 (chance) to 1; values below chance are clamped to its colour and shown in the tooltip."""
    table = curves.assign(cell=curves["position"].astype(str) + " " + curves["token"].astype(str))
    order = table.drop_duplicates("position").sort_values("position")["cell"].tolist()
    return (
        alt.Chart(table)
        .mark_rect()
        .encode(
            x=alt.X("cell:N", sort=order, title="token (position)"),
            y=alt.Y("layer:O", sort="descending", title="layer (0 = embeddings)"),
            color=alt.Color("mean:Q", scale=alt.Scale(domain=[0.5, 1.0], scheme="viridis", clamp=True), title="accuracy"),
            tooltip=[
                "word_order",
                "probe",
                "layer",
                "token",
                *_CI_TOOLTIP,
            ],
        )
        .properties(width=300, height=120)
        .facet(row=alt.Row("probe:N"), column=alt.Column("word_order:N", title="definition order"))
        .properties(title=title)
    )
