"""Rare-case mining of a CME archive: which rarity score finds the planted double CMEs, chosen on validation.

    python -m experiments.cme_mining --workdir /work/h4/cme_exp --out results/cme_mining [--seeds 23 24]

Reads what `experiments.cme_search --physics-aux-weight 1` left in WORKDIR (``tfds/`` with
`cme_patches/synthetic` and ``ssl_seed<seed>_width8_aux1/``); trains nothing. The archive is the train
split (every row scored against all others); its planted double CMEs are the cases to find. Every score
is unsupervised; the planted labels only choose and test:

- Scores (higher = rarer; `solarjax.cme_mining`), on the same rows: k-NN distance, mean distance to the k
  nearest and relative density (own k-th distance over the mean k-th distance of its k neighbours), k in
  `KS`, in the SSL space of each encoder seed, the untrained encoder of that seed, 8x8 thumbnails and
  pixels; isolation forest (scikit-learn, 300 trees) on SSL and thumbnail features; PCA reconstruction
  error (components in `COMPONENTS`, fitted on the archive) of SSL features and pixels; the property
  outlier score; the secondary-front share of the angular profile (gaps in `GAPS`); the combination of
  SSL k-NN and secondary front (`combined_rarity`, both hyper-parameters chosen); random.
- Choice on validation, test on the rest (2-fold cross-fitting): the planted cases are split in two halves
  at random; a family's hyper-parameter (and, in "overall", the family) is chosen on one half's recall in
  the top 5% (ties: their mean rank), and scored on the other half; each case's test result thus comes
  from a choice that never saw it. Recall = share of the cases in the top 5% of the whole archive's ranking;
  95% bootstrap over the cases (both seeds pooled: per case the mean of the two seeds), and the exact
  (Clopper-Pearson) interval of k of n. The same is repeated over `SPLITS` random halvings (range shown).
- An untouched archive: the validation and test splits together (never used above) ranked by each
  family's score with the hyper-parameter chosen on all the train-split cases.

Writes ``--out/cme_mining.json`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import numpy as np

KS = (1, 2, 3, 5, 10, 20, 50, 100)
COMPONENTS = (2, 5, 10, 20, 50)
GAPS = (0, 2, 4, 10, 20)
SPLITS = 20


def _arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=pathlib.Path, required=True, help="an experiments.cme_search workdir")
    parser.add_argument("--out", type=pathlib.Path, required=True, help="folder for cme_mining.json")
    parser.add_argument("--seeds", type=int, nargs="+", default=[23, 24], help="encoder seeds (default 23 24)")
    parser.add_argument("--width", type=int, default=8, help="the encoders' ResNet-18 width (default 8)")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (default 2000)")
    args = parser.parse_args(argv)
    for seed in args.seeds:
        ssl_dir = args.workdir / f"ssl_seed{seed}_width{args.width}_aux1"
        if not ssl_dir.is_dir():
            parser.error(f"no encoder at {ssl_dir}: run experiments.cme_search --physics-aux-weight 1 first")
    if not (args.workdir / "tfds").is_dir():
        parser.error(f"no {args.workdir / 'tfds'}: run experiments.cme_search first")
    return args


def _distances(features: np.ndarray) -> np.ndarray:
    """float64 [N, N] Euclidean distances between rows, inf on the diagonal."""
    x = np.asarray(features, np.float64).reshape(len(features), -1)
    gram = x @ x.T
    norms = np.diag(gram)
    out = np.sqrt(np.maximum(norms[:, None] + norms[None] - 2.0 * gram, 0.0))
    np.fill_diagonal(out, np.inf)
    return out


def neighbour_scores(name: str, features: np.ndarray) -> dict[str, np.ndarray]:
    """k-NN distance, mean k-NN distance and relative density of every row, for every k of `KS`."""
    distances = _distances(features)
    order = np.argsort(distances, axis=1)[:, : max(KS)]
    nearest = np.take_along_axis(distances, order, 1)
    scores = {}
    for k in KS:
        kth = nearest[:, k - 1]
        scores[f"{name}_knn_k{k}"] = kth
        scores[f"{name}_meanknn_k{k}"] = nearest[:, :k].mean(1)
        scores[f"{name}_reldens_k{k}"] = kth / np.maximum(kth[order[:, :k]].mean(1), 1e-12)
    return scores


def model_scores(name: str, features: np.ndarray, forest: bool) -> dict[str, np.ndarray]:
    """Isolation forest (if `forest`) and PCA reconstruction errors of rows of features [N, D]."""
    from sklearn.decomposition import PCA
    from sklearn.ensemble import IsolationForest

    x = np.asarray(features, np.float64).reshape(len(features), -1)
    scores = {}
    if forest:
        scores[f"{name}_iforest"] = -IsolationForest(n_estimators=300, random_state=0).fit(x).score_samples(x)
    for c in COMPONENTS:
        if c < min(x.shape):
            pca = PCA(c, svd_solver="randomized", random_state=0).fit(x)
            scores[f"{name}_pcarecon_c{c}"] = ((x - pca.inverse_transform(pca.transform(x))) ** 2).sum(1)
    return scores


def all_scores(split: dict, seeds, rng_seed: int = 23) -> dict[str, np.ndarray]:
    """Every candidate score of the rows of a split (images, quantities, 'ssl<seed>' and 'untrained<seed>')."""
    from solarjax import cme_mining
    from solarjax.cme_physics import angular_profile
    from solarjax.retrieval.evaluate import thumbnails

    images = split["image"]
    scores = {}
    for seed in seeds:
        scores |= neighbour_scores(f"ssl{seed}", split[f"ssl{seed}"])
        scores |= neighbour_scores(f"untrained{seed}", split[f"untrained{seed}"])
        scores |= model_scores(f"ssl{seed}", split[f"ssl{seed}"], forest=True)
    scores |= neighbour_scores("thumbnail", thumbnails(images))
    scores |= model_scores("thumbnail", thumbnails(images), forest=True)
    scores |= neighbour_scores("pixel", images)
    scores |= model_scores("pixel", images, forest=False)
    scores["property_outlier"] = cme_mining.property_rarity(split)
    profile = np.asarray(angular_profile(images))
    for gap in GAPS:
        scores[f"secondary_front_g{gap}"] = cme_mining.secondary_front_share(profile, gap)
    for seed in seeds:
        for k in KS:
            for gap in GAPS:
                scores[f"ssl{seed}+secondary_front_k{k}_g{gap}"] = cme_mining.combined_rarity(
                    scores[f"ssl{seed}_knn_k{k}"], scores[f"secondary_front_g{gap}"]
                )
    scores["random"] = np.random.default_rng(rng_seed).random(len(images))
    return scores


def family_of(name: str) -> str:
    """The score's family: its name without the hyper-parameter suffix (_k5, _c20, _g2, _k1_g2)."""
    if "+" in name:
        return name.split("_k")[0]
    head, _, tail = name.rpartition("_")
    return head if head and tail[:1] in "kcg" and tail[1:].isdigit() else name


class Chooser:
    """Hits (in the top `fraction` of the archive) and rank of every planted case under every score."""

    def __init__(self, scores: dict[str, np.ndarray], is_rare: np.ndarray, fraction: float = 0.05):
        top = int(np.ceil(fraction * len(is_rare)))
        self.cases = np.flatnonzero(is_rare)
        self.hits, self.ranks = {}, {}
        for name, score in scores.items():
            rank = np.empty(len(score), int)
            rank[np.argsort(-np.asarray(score, np.float64), kind="stable")] = np.arange(len(score))
            self.hits[name] = (rank < top)[self.cases].astype(float)
            self.ranks[name] = rank[self.cases] / len(score)

    def choose(self, names, cases: np.ndarray) -> str:
        """The score with the best recall on the case positions `cases` (ties: lower mean rank)."""
        return max(names, key=lambda n: (self.hits[n][cases].mean(), -self.ranks[n][cases].mean()))

    def crossfit(self, names, split_seed: int) -> tuple[np.ndarray, list[str]]:
        """float [cases] test hits, each from the choice made on the other half; and the two choices."""
        order = np.random.default_rng(split_seed).permutation(len(self.cases))
        halves = order[: len(order) // 2], order[len(order) // 2 :]
        tested, chosen = np.zeros(len(self.cases)), []
        for val, test in (halves, halves[::-1]):
            choice = self.choose(names, val)
            chosen.append(choice)
            tested[test] = self.hits[choice][test]
        return tested, chosen


def interval(hits: np.ndarray, resamples: int, seed: int = 0) -> dict[str, float]:
    """Mean of per-case hits [n] with its bootstrap 95% interval over cases and the Clopper-Pearson one."""
    import scipy.stats

    rng = np.random.default_rng(seed)
    draws = hits[rng.integers(0, len(hits), (resamples, len(hits)))].mean(1)
    low, high = np.percentile(draws, [2.5, 97.5])
    exact = scipy.stats.binomtest(int(round(hits.sum())), len(hits)).proportion_ci(0.95)
    return {
        "value": float(hits.mean()),
        "low": float(low),
        "high": float(high),
        "exact_low": float(exact.low),
        "exact_high": float(exact.high),
        "cases": len(hits),
    }


def load(workdir: pathlib.Path, split: str, seeds, width: int) -> dict[str, np.ndarray]:
    """A split's columns (`cme_retrieval.load_split`) plus 'ssl<seed>' and 'untrained<seed>' embeddings."""
    from solarjax import ssl
    from solarjax.cme_retrieval import load_split
    from solarjax.retrieval.table import embed_images

    columns = load_split(workdir / "tfds", split)
    for seed in seeds:
        encoder = ssl.load(workdir / f"ssl_seed{seed}_width{width}_aux1")
        columns[f"ssl{seed}"] = embed_images(encoder.embed, columns["image"])
        untrained = ssl.random_init(encoder.config["model"], seed=seed)
        columns[f"untrained{seed}"] = embed_images(untrained.embed, columns["image"])
    return columns


def main(argv=None) -> dict:
    args = _arguments(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    archive = load(args.workdir, "train", args.seeds, args.width)
    is_rare = archive["true_rare"] == 1
    if is_rare.sum() < 4:
        raise SystemExit(f"{args.workdir}: only {is_rare.sum()} planted double CMEs in the train split")
    scores = all_scores(archive, args.seeds)
    chooser = Chooser(scores, is_rare)
    families: dict[str, list[str]] = {}
    for name in scores:
        families.setdefault(family_of(name), []).append(name)
    seed_tags = [str(s) for s in args.seeds]

    def seedless(family):
        for tag in seed_tags:
            family = family.replace(tag, "<seed>")
        return family

    results, by_seed = {}, {}
    for family, names in sorted(families.items()):
        tested, chosen = chooser.crossfit(names, 0)
        repeats = [chooser.crossfit(names, s)[0].mean() for s in range(1, SPLITS + 1)]
        results[family] = {
            "test_recall": interval(tested, args.resamples),
            "chosen": chosen,
            "repeated_splits": {
                "min": float(min(repeats)),
                "mean": float(np.mean(repeats)),
                "max": float(max(repeats)),
            },
        }
        by_seed.setdefault(seedless(family), []).append(tested)
    pooled = {
        family: interval(np.mean(per_seed, axis=0), args.resamples)
        for family, per_seed in by_seed.items()
        if len(per_seed) == len(args.seeds) > 1
    }
    overall = {}
    for seed in seed_tags:
        others = [t for t in seed_tags if t != seed]
        allowed = [n for n in scores if not any(t in n for t in others)]
        tested, chosen = chooser.crossfit(allowed, 0)
        overall[seed] = {"test_recall": interval(tested, args.resamples), "chosen": chosen}

    # The untouched archive: validation + test splits, hyper-parameters chosen on all train-split cases.
    parts = [load(args.workdir, split, args.seeds, args.width) for split in ("validation", "test")]
    untouched = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    untouched_rare = untouched["true_rare"] == 1
    untouched_scores = all_scores(untouched, args.seeds)
    untouched_chooser = Chooser(untouched_scores, untouched_rare)
    every_case = np.arange(len(chooser.cases))
    untouched_results = {}
    for family, names in sorted(families.items()):
        choice = chooser.choose(names, every_case)
        untouched_results[family] = {"chosen": choice, **interval(untouched_chooser.hits[choice], args.resamples)}

    summary = {
        "archive": {"rows": int(len(is_rare)), "planted": int(is_rare.sum()), "top": int(np.ceil(0.05 * len(is_rare)))},
        "untouched_archive": {"rows": int(len(untouched_rare)), "planted": int(untouched_rare.sum())},
        "seeds": args.seeds,
        "families": results,
        "pooled_over_seeds": pooled,
        "overall_choice": overall,
        "untouched": untouched_results,
        "seconds": round(time.perf_counter() - started, 1),
    }
    (args.out / "cme_mining.json").write_text(json.dumps(summary, indent=1))

    def cell(r):
        return (
            f"{r['value']:.2f} [{r['low']:.2f}, {r['high']:.2f}] (exact [{r['exact_low']:.2f}, {r['exact_high']:.2f}])"
        )

    lines = [f"test recall in the top 5% (cross-fitted choice; 95% bootstrap over cases): {summary['archive']}"]
    for family, r in results.items():
        spread = r["repeated_splits"]
        lines.append(
            f"  {family:34s} {cell(r['test_recall'])}  {SPLITS} splits {spread['min']:.2f}-{spread['max']:.2f}"
            f"  chosen {r['chosen']}"
        )
    lines.append("seeds pooled:")
    lines += [f"  {family:34s} {cell(r)}" for family, r in pooled.items()]
    lines.append("overall choice:")
    lines += [f"  seed {s}: {cell(r['test_recall'])} chosen {r['chosen']}" for s, r in overall.items()]
    lines.append(f"untouched archive {summary['untouched_archive']}:")
    lines += [f"  {family:34s} {cell(r)}  ({r['chosen']})" for family, r in untouched_results.items()]
    print("\n".join(lines))
    return summary


if __name__ == "__main__":
    main()
