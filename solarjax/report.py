"""The demo's `report.html`: a results section people read.

Order: a headline table (each figure the paper reports beside ours, with its 95% interval and the
best baseline), then the figures with a one-line caption saying what to see, then the raw numbers
of every stage folded in `<details>`. Stages gain metrics over time: every key a stage holds is
rendered (unknown ones in the folded part) and a headline figure whose keys are missing reads
"not run". The page is self-contained (figures inline as base64 PNG).
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import math
import os
import pathlib
import re
from collections.abc import Callable
from typing import Any

VERSION = 2
"""Bumped when the page layout changes, so a cached demo re-renders its report."""

NOT_RUN = "not run"

OURS = ("ssl", "hybrid")
"""Our search methods: the paper's SimSiam search and the default (validation-chosen) hybrid ranking."""

QUANTITY_LABELS = {
    "tuf": "TUF",
    "psep": "PSEP",
    "r_value": "R",
    "tilt": "tilt",
    "area": "area",
    "unsigned_flux_mx": "flux [Mx]",
}

STAGE_TITLES = {
    "dataset": "Dataset",
    "gan": "The GAN: generated active regions",
    "directions": "Physical directions in latent space",
    "simsiam": "The SimSiam encoder",
    "index": "The search index",
    "retrieval": "Search: queries and their real matches",
    "real": "Real SHARP frames",
}

METHOD_NOTES = {
    "gan": "The default generator (a structured one: round flux concentrations, textured plage, the quiet "
    "network and the measured instrument noise drawn from the latent, no upsampling convolutions; the paper's "
    "'simple' generator is the gan_paper config), latent dimension 100, trained on the "
    "synthetic SHARP-like patches; the checkpoint kept is the one with the best realism score. The realism "
    "table compares generated with training patches: KS distances (0 = same distribution) of the quiet-pixel "
    "noise width, the power-spectrum slope and the mean gradient; the density of pixels beyond +-500 G; the "
    "checkerboard peaks of the spectrum at k = 16, 32, 48; the mean KS of the physical quantities and the median "
    "R; the KS of the grid and orientation contrast and of the largest saturated umbra's diameter. The score is "
    "the mean of one term per row; 'met' says whether each lies in its target range.",
    "directions": "One linear SVM per quantity on 'high vs low' (median split) of generated patches; its unit normal "
    "is the direction along which the quantity grows (the paper's family). Diagnosis: held-out accuracy "
    "of linear SVMs with the features z, [z, |z|], z folded across the leading-polarity boundary, and "
    "folded z with |z|, z with its squares, z with the generator's first-layer activations, and the polarity "
    "statistics of the generated patch (per 32-pixel block the field's mean, mean magnitude, strong positive and "
    "negative fractions, and 4-pixel polarity mixing; the set where each quantity becomes linear: structure names "
    "the simplest set within 0.01 of the best); odd_fraction is the share of a quantity's variance that is odd "
    "under z -> -z. "
    "Families, on the same base latents and alpha in [-3, 3] on the Gaussian shell: paper (global "
    "normals), piecewise (a boundary per half-space of the leading-polarity boundary), local (gradient "
    "path of the smooth quantity, held quantities' gradients projected out). Monotonicity is the mean "
    "Spearman correlation of the quantity with alpha; leakage is the change of each held quantity per "
    "change of the target in prior standard deviations; [low, high] are bootstrap 95% intervals over "
    "base latents. Targeting asks gradient-based steering for a value (e.g. +50% TUF) and counts "
    "requests met within 5%.",
    "simsiam": "ResNet-18 SimSiam trained on the training split with the paper's augmentations (polarity flip as -B). "
    "Collapse: 0 = spread embeddings, 1 = collapsed. k-NN monitor: rank correlation of each held-out patch's "
    "quantities with those of its nearest neighbour in embedding space, against pixel space.",
    "retrieval": "Each query (a generated, a steered, or a held-out patch) is embedded and its top-1 match looked up in "
    "the table of training patches. Pearson and Spearman between query and match per quantity for the "
    "SimSiam search (ssl), the hybrid ranking (SSL candidates re-ordered with the query's exact TUF, PSEP, "
    "R and area; weight chosen on the validation split) and the baselines: pixel-space L2, an 8x8 "
    "thumbnail, an untrained encoder of the same architecture, standardised physics Euclidean and "
    "Mahalanobis, random. Every method is scored on the same queries. Brackets: 95% paired bootstrap "
    "intervals (1,000 resamples of the queries); a difference whose interval lies above 0 is a win.",
    "real": "The real HMI SHARP Br frames found beside the repository, embedded with the same encoder. Same region "
    "beyond 12 h: frames of the query's HARP within +-12 h are excluded, a hit is a top-1 match of the same "
    "HARP; random is its exact expectation. Real-to-real: the query's whole HARP excluded, Spearman between "
    "the JSOC header keywords (USFLUX, R_VALUE, AREA_ACR, MEANGBZ) of query and top-1 match. On real frames "
    "the hybrid ranks by physical-unit quantities (log10 flux and R in Mx, PSEP in Mm, log10 area in Mm^2). "
    "95% paired bootstrap intervals.",
}


# ------------------------------------------------------------------------------------------ lookups
def lookup(tree: Any, *path: str) -> Any:
    """`tree[path[0]][path[1]]...`, or None where any key is missing (stages change their metrics)."""
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclasses.dataclass(frozen=True)
class Figure:
    """One number with its 95% interval (low/high None when there is none)."""

    method: str
    value: float | None
    low: float | None = None
    high: float | None = None

    @classmethod
    def of(cls, method: str, entry: Any) -> Figure | None:
        """From a {'value', 'low', 'high'} dict (or a bare number); None when absent."""
        if _finite(entry) or (isinstance(entry, float) and math.isnan(entry)):
            return cls(method, float(entry))
        if isinstance(entry, dict) and "value" in entry:
            return cls(method, _float(entry.get("value")), _float(entry.get("low")), _float(entry.get("high")))
        return None

    @property
    def defined(self) -> bool:
        return _finite(self.value)

    def text(self, digits: int = 2) -> str:
        if not self.defined:
            return f"{self.method}: undefined"
        interval = (
            f" [{self.low:.{digits}f}, {self.high:.{digits}f}]" if _finite(self.low) and _finite(self.high) else ""
        )
        return f"{self.method}: {self.value:.{digits}f}{interval}"


def _float(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


@dataclasses.dataclass(frozen=True)
class HeadlineRow:
    """A row of the headline table: the figure, the paper's value, ours, the best baseline, the verdict."""

    figure: str
    paper: str
    ours: tuple[Figure, ...] = ()
    baseline: Figure | None = None
    verdict: str = ""

    @property
    def ran(self) -> bool:
        return bool(self.ours)


def _best(figures: list[Figure]) -> Figure | None:
    defined = [f for f in figures if f.defined]
    return max(defined, key=lambda f: f.value) if defined else None


def _paired_verdict(differences: Any, ours: str, baseline: str, statistic: str | None) -> str:
    """'wins' / 'loses' / 'tie' of `ours - baseline` from a paired bootstrap interval, '' when absent."""
    entry = lookup(differences, f"{ours} - {baseline}")
    sign = 1.0
    if entry is None:
        entry, sign = lookup(differences, f"{baseline} - {ours}"), -1.0
    if entry is not None and statistic is not None:
        entry = entry.get(statistic)
    diff = Figure.of(f"{ours} - {baseline}", entry)
    if diff is None or not diff.defined or not (_finite(diff.low) and _finite(diff.high)):
        return ""
    low, high = sorted((sign * diff.low, sign * diff.high))
    word = "wins" if low > 0 else "loses" if high < 0 else "tie"
    return f"{ours} {word} vs {baseline}: {sign * diff.value:+.2f} [{low:+.2f}, {high:+.2f}]"


def _method_row(figure: str, paper: str, intervals: Any, statistic: str | None) -> HeadlineRow:
    """A row from a {'methods': {m: {statistic: {...}}}, 'differences': ...} interval block."""
    methods = lookup(intervals, "methods")
    if not isinstance(methods, dict):
        return HeadlineRow(figure, paper)

    def figure_of(name):
        entry = methods[name] if statistic is None else lookup(methods, name, statistic)
        return Figure.of(name, entry)

    ours = tuple(f for f in (figure_of(m) for m in OURS if m in methods) if f is not None)
    baselines = [f for f in (figure_of(m) for m in methods if m not in OURS) if f is not None]
    baseline = _best(baselines)
    verdicts = [
        _paired_verdict(lookup(intervals, "differences"), f.method, baseline.method, statistic)
        for f in ours
        if baseline is not None and f.defined
    ]
    n = lookup(intervals, "n")
    label = f"{figure} (n = {n})" if n is not None else figure
    return HeadlineRow(label, paper, ours, baseline, "; ".join(v for v in verdicts if v))


def headline_rows(metrics: dict) -> list[HeadlineRow]:
    """The headline table: the paper's reported figures first, then ours that it did not report."""
    rows = []
    for statistic, paper in (("pearson", "~0.78"), ("spearman", "~0.79")):
        rows.append(
            _method_row(
                f"Generated query vs top-1 real match: TUF {statistic.capitalize()}",
                paper,
                lookup(metrics, "retrieval", "generated", "intervals", "tuf"),
                statistic,
            )
        )
    for name in ("psep", "r_value"):
        rows.append(
            _method_row(
                f"Generated query vs top-1 match: {QUANTITY_LABELS[name]} Spearman",
                "shown, no number",
                lookup(metrics, "retrieval", "generated", "intervals", name),
                "spearman",
            )
        )
    rows.append(
        _method_row(
            "Steered query (+50% TUF, PSEP held) vs top-1 match: TUF Spearman",
            "not reported",
            lookup(metrics, "retrieval", "steered", "intervals", "tuf"),
            "spearman",
        )
    )
    for name in ("tuf", "psep", "r_value"):
        rows.append(
            _method_row(
                f"Held-out synthetic query vs top-1 match: {QUANTITY_LABELS[name]} Spearman",
                "not reported",
                lookup(metrics, "retrieval", "heldout", "intervals", name),
                "spearman",
            )
        )
    rows.append(
        _method_row(
            "Real SHARP: same region >= 12 h away, precision@1",
            "not reported",
            lookup(metrics, "real", "same_region_precision", "intervals"),
            None,
        )
    )
    rows.append(
        _method_row(
            "Real SHARP, own HARP excluded: USFLUX (header) Spearman",
            "not reported",
            lookup(metrics, "real", "real_to_real", "intervals", "USFLUX"),
            "spearman",
        )
    )
    rows.append(_steering_row(metrics))
    rows.append(_targeting_row(metrics))
    rows.append(_svm_row(metrics))
    rows.append(_gan_row(metrics))
    rows.append(_knn_row(metrics))
    return rows


def _steering_row(metrics: dict) -> HeadlineRow:
    figure, paper = "Steering: monotonicity of TUF along its direction", "qualitative (traversal figures)"
    results = lookup(metrics, "directions", "report", "families", "results")
    if not isinstance(results, dict):
        return HeadlineRow(figure, paper)
    families = [
        f for f in (Figure.of(m, lookup(rows, "tuf", "monotonicity")) for m, rows in results.items()) if f is not None
    ]
    best = lookup(metrics, "directions", "best_method")
    ours = tuple(f for f in families if f.method == best) or tuple(families[:1])
    others = _best([f for f in families if f not in ours])
    return HeadlineRow(figure + " (chosen family; baseline: the best other family)", paper, ours, others)


def _targeting_row(metrics: dict) -> HeadlineRow:
    figure, paper = "Steering to a value (within 5%): success rate", "not reported"
    targeting = lookup(metrics, "directions", "targeting")
    rate = lookup(targeting, "success_rate")
    if rate is None:
        return HeadlineRow(figure, paper)
    interval = lookup(targeting, "success_interval") or [None, None]
    ours = Figure("steer_to", _float(rate), _float(interval[0]), _float(interval[1]))
    unrefined = lookup(targeting, "unrefined_success_rate")
    baseline = Figure("without exact refinement", _float(unrefined)) if unrefined is not None else None
    return HeadlineRow(
        f"{figure} (in range: {lookup(targeting, 'in_range')} of {lookup(targeting, 'requested')})",
        paper,
        (ours,),
        baseline,
    )


def _svm_row(metrics: dict) -> HeadlineRow:
    figure, paper = "SVM held-out accuracy of the direction", "not reported"
    directions = lookup(metrics, "directions", "report", "directions")
    if not isinstance(directions, dict):
        return HeadlineRow(figure, paper)
    ours = tuple(
        f
        for f in (
            Figure.of(QUANTITY_LABELS.get(q, q), lookup(directions, q, "test_accuracy"))
            for q in ("tuf", "psep", "r_value")
        )
        if f is not None
    )
    return HeadlineRow(figure, paper, ours, Figure("chance", 0.5))


def _gan_row(metrics: dict) -> HeadlineRow:
    figure, paper = "GAN: mean KS of the physical quantities, generated vs training (0 = same)", "no quality figure"
    entry = lookup(metrics, "gan", "realism", "mean KS of the physics quantities")
    value = lookup(entry, "value") if isinstance(entry, dict) else None
    if value is None:
        ks = lookup(metrics, "gan", "ks")
        values = [v for v in (ks or {}).values() if _finite(v)]
        value = sum(values) / len(values) if values else None
    if value is None:
        return HeadlineRow(figure, paper)
    target = lookup(entry, "target") if isinstance(entry, dict) else None
    return HeadlineRow(figure, paper, (Figure("GAN", float(value)),), None, f"target {target}" if target else "")


def _knn_row(metrics: dict) -> HeadlineRow:
    figure, paper = "SimSiam k-NN monitor: mean rank correlation with the nearest neighbour", "not reported"
    knn = lookup(metrics, "simsiam", "knn")
    if not isinstance(knn, dict) or "knn/ssl_mean" not in knn:
        return HeadlineRow(figure, paper)
    baseline = Figure.of("pixel", knn.get("knn/pixel_mean"))
    return HeadlineRow(figure, paper, (Figure("ssl", _float(knn["knn/ssl_mean"])),), baseline)


# ------------------------------------------------------------------------------------------ figures
_CAPTIONS: tuple[tuple[str, Callable[[re.Match], str]], ...] = (
    (
        r"gan/realism_grid\.png",
        lambda m: (
            "Training patches (left) beside generated ones (right), same hmimag scale "
            "(+-1000 G): look for the same bipole sizes, plage texture and noise."
        ),
    ),
    (
        r"gan/samples/step_0*(\d+)\.png",
        lambda m: f"Generator samples at step {m.group(1)}: later steps should look more like the training patches.",
    ),
    (
        r"directions/evaluation/latent_map_(\w+)\.png",
        lambda m: (
            f"Latents on the plane of the {_label(m.group(1))} SVM normal, coloured by {_label(m.group(1))}: the "
            "colour should change across the dashed boundary and the thumbnails along the x axis."
        ),
    ),
    (
        r"directions/evaluation/traversal_(\w+)_local\.png",
        lambda m: (
            f"A local (gradient-path) traversal of {_label(m.group(1))}: {_label(m.group(1))} should grow "
            "left to right while the other curves stay flat."
        ),
    ),
    (
        r"directions/evaluation/traversal_(\w+)_conditional\.png",
        lambda m: (
            f"{_label(m.group(1))} moved with the held quantities' normals projected out: its curve should "
            "rise while the held ones stay near 0."
        ),
    ),
    (
        r"directions/evaluation/traversal_(\w+)\.png",
        lambda m: (
            f"One latent moved along the {_label(m.group(1))} SVM normal (the paper's edit): "
            f"{_label(m.group(1))} should grow with alpha, the patch stay realistic."
        ),
    ),
    (
        r"retrieval/(\w+)/query_matches\.png",
        lambda m: (
            f"{m.group(1).capitalize()} queries (left) and their top real matches: matches should share the "
            "query's flux, separation and polarity-inversion-line strength (numbers under each patch)."
        ),
    ),
    (
        r"retrieval/(\w+)/query_vs_match\.png",
        lambda m: (
            f"{m.group(1).capitalize()} queries: each quantity of the query against its top-1 match, per method; "
            "points on the diagonal mean matched physics (r, rho in the titles)."
        ),
    ),
)


def _label(name: str) -> str:
    return QUANTITY_LABELS.get(name, name)


def caption(relative: str) -> str:
    """The one-line 'what to see' of a figure at `relative` (a path under the demo folder)."""
    for pattern, make in _CAPTIONS:
        match = re.fullmatch(pattern, relative)
        if match:
            return make(match)
    return f"Figure {relative}."


def _png_tag(path: pathlib.Path, relative: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(relative)}">'
        f"<figcaption>{html.escape(caption(relative))} <span class='path'>({html.escape(relative)})</span>"
        f"</figcaption></figure>"
    )


def stage_figures(outdir: pathlib.Path, stage: str) -> list[pathlib.Path]:
    """The PNGs a stage wrote, in reading order (samples by step, traversals after latent maps)."""

    def order(path):
        relative = path.relative_to(outdir).as_posix()
        rank = next((i for i, (pattern, _) in enumerate(_CAPTIONS) if re.fullmatch(pattern, relative)), len(_CAPTIONS))
        return rank, relative

    folder = outdir / stage
    return sorted(folder.rglob("*.png"), key=order) if folder.is_dir() else []


# ------------------------------------------------------------------------------------------ raw numbers
def value_html(value: Any) -> str:
    """Nested results as HTML: a dict of dicts becomes a table of its scalar fields, other dicts lists,
    numbers rounded, long lists summarised (everything is in metrics.json)."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        if value and all(isinstance(v, dict) for v in value.values()):
            columns = sorted(
                {k for v in value.values() for k, x in v.items() if not isinstance(x, (dict, list))}, key=str
            )
            if columns:
                head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
                rows = "".join(
                    f"<tr><th>{html.escape(str(name))}</th>"
                    + "".join(f"<td>{value_html(row.get(c, ''))}</td>" for c in columns)
                    + "</tr>"
                    for name, row in value.items()
                )
                nested = {
                    name: {k: x for k, x in row.items() if isinstance(x, (dict, list))} for name, row in value.items()
                }
                nested = {k: v for k, v in nested.items() if v}
                return f"<table><tr><th></th>{head}</tr>{rows}</table>" + (value_html(nested) if nested else "")
        items = "".join(f"<li><b>{html.escape(str(k))}</b>: {value_html(v)}</li>" for k, v in value.items())
        return f"<ul>{items}</ul>"
    if isinstance(value, list):
        if len(value) > 12:
            return f"[{len(value)} values]"
        return ", ".join(value_html(v) for v in value)
    return html.escape(str(value))


# ------------------------------------------------------------------------------------------ page
_STYLE = (
    "body{font-family:sans-serif;max-width:1150px;margin:auto;padding:1em;line-height:1.35}"
    "table{border-collapse:collapse;margin:0.5em 0}"
    "td,th{border:1px solid #ccc;padding:3px 7px;vertical-align:top}"
    "table.headline td{text-align:left}table.headline td.notrun{color:#999}"
    "img{max-width:100%}figure{display:inline-block;margin:6px;max-width:48%;vertical-align:top}"
    "figcaption{font-size:small;color:#333}figcaption .path{color:#999}"
    "details{margin:0.4em 0}summary{cursor:pointer;font-weight:bold}"
)


def _headline_html(rows: list[HeadlineRow]) -> str:
    body = []
    for row in rows:
        if row.ran:
            ours = "<br>".join(html.escape(f.text()) for f in row.ours)
            baseline = html.escape(row.baseline.text()) if row.baseline is not None else "none"
            body.append(
                f"<tr><td>{html.escape(row.figure)}</td><td>{html.escape(row.paper)}</td><td>{ours}</td>"
                f"<td>{baseline}</td><td>{html.escape(row.verdict)}</td></tr>"
            )
        else:
            body.append(
                f"<tr><td>{html.escape(row.figure)}</td><td>{html.escape(row.paper)}</td>"
                f"<td class='notrun'>{NOT_RUN}</td><td class='notrun'>{NOT_RUN}</td><td></td></tr>"
            )
    return (
        "<table class='headline' id='headline'><tr><th>Figure</th><th>Paper</th><th>Ours (95% interval)</th>"
        "<th>Best baseline (95% interval)</th><th>Paired difference (95%)</th></tr>" + "".join(body) + "</table>"
    )


def render(outdir: str | os.PathLike, metrics: dict) -> str:
    """The report page for the demo folder `outdir` and its `metrics` (the stages' results by name)."""
    outdir = pathlib.Path(outdir)
    stages = [k for k, v in metrics.items() if isinstance(v, dict) and k != "stage_seconds"]
    seconds = metrics.get("stage_seconds") or {}
    timing = ", ".join(f"{k} {v:g} s" for k, v in seconds.items() if _finite(v))
    parts = [
        "<h1>solarjax demo report</h1>",
        "<p>A synthetic dataset of SHARP-like Br patches (128x128, B / 1000 G clipped to [-1, 1]) was built; the "
        "paper's GAN was trained on it; linear SVM directions of every physical quantity were fitted in its latent "
        "space; a SimSiam encoder was trained on the same patches; every training patch was embedded into a search "
        "index; generated, steered and held-out patches were used as queries and their matches scored, and the "
        "real SHARP frames beside the repository searched among themselves. "
        f"Size: <b>{html.escape(str(metrics.get('size', 'unknown')))}</b>"
        + (f"; time per stage: {html.escape(timing)}" if timing else "")
        + ". Every number is in metrics.json.</p>",
        "<h2>Headline results</h2>",
        "<p>Ours: the paper's SimSiam search (ssl) and the default hybrid ranking; best baseline: the best of the "
        "other methods on the same queries (physics_euclidean ranks by the exact quantities). 'not run': the stage "
        "or figure is missing from this demo.</p>",
        _headline_html(headline_rows(metrics)),
        "<h2>Figures</h2>",
    ]
    any_figure = False
    for stage in stages:
        figures = stage_figures(outdir, stage)
        if not figures:
            continue
        any_figure = True
        parts.append(f"<h3>{html.escape(STAGE_TITLES.get(stage, stage))}</h3>")
        parts += [_png_tag(p, p.relative_to(outdir).as_posix()) for p in figures]
    if not any_figure:
        parts.append("<p>No figures in this demo folder.</p>")
    parts.append("<h2>Raw numbers</h2>")
    for stage in stages:
        result = metrics[stage]
        inner = []
        if stage in METHOD_NOTES:
            inner.append(f"<p>{html.escape(METHOD_NOTES[stage])}</p>")
        tables = result.get("tables")
        if isinstance(tables, dict):
            for title, table in tables.items():
                inner += [f"<h4>{html.escape(str(title))}</h4>", f"<pre>{html.escape(str(table))}</pre>"]
        inner.append(value_html({k: v for k, v in result.items() if k != "tables"}))
        parts.append(
            f"<details class='raw' data-stage='{html.escape(stage)}'><summary>"
            f"{html.escape(STAGE_TITLES.get(stage, stage))}</summary>{''.join(inner)}</details>"
        )
    parts += [
        "<h2>Do it on real data</h2>",
        "<pre>solarjax data download sharps/ --start 2012-01-01 --end 2013-01-01 --cadence-hours 24 --email YOU\n"
        "solarjax data build --config fits --manual-dir sharps/ --data-dir ~/tensorflow_datasets\n"
        "# then the experiments/ configs with data.builder_config = 'fits' (see experiments/README.md)</pre>",
    ]
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>solarjax demo</title>"
        f"<style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>"
    )


def collect_metrics(outdir: str | os.PathLike) -> dict:
    """A demo folder's metrics: `metrics.json` when written, else the results of its finished stages
    (`<stage>/stage.json`), e.g. for a demo that stopped before its report."""
    outdir = pathlib.Path(outdir)
    if (outdir / "metrics.json").is_file():
        return json.loads((outdir / "metrics.json").read_text())
    metrics: dict[str, Any] = {"size": "unknown (no metrics.json)", "stage_seconds": {}}
    for record in sorted(outdir.glob("*/stage.json"), key=lambda p: p.stat().st_mtime):
        stage = record.parent.name
        if stage == "report":
            continue
        saved = json.loads(record.read_text())
        metrics["stage_seconds"][stage] = round(float(saved.get("seconds", float("nan"))), 1)
        if isinstance(saved.get("result"), dict):
            metrics[stage] = saved["result"]
    return metrics


def write(outdir: str | os.PathLike, metrics: dict, path: str | os.PathLike | None = None) -> pathlib.Path:
    """Writes the report of the demo folder `outdir` to `path` (default `outdir/report.html`)."""
    outdir = pathlib.Path(outdir)
    path = pathlib.Path(path) if path is not None else outdir / "report.html"
    path.write_text(render(outdir, metrics))
    return path
