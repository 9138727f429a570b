"""Statistics of the heterogeneity experiments: do scores rise, and spread fall, with heterogeneity?

The unit of analysis is the *draw* (one training set): repeated trainings of a draw share their
subjects, so they are averaged first and never counted as independent evidence.

* Primary (pre-specified) test: a monotone trend over the ordered groups 1 < 2 < … — the
  Jonckheere–Terpstra test, computed as Kendall's τ_b between group rank and score (JT's statistic
  is Kendall's S with ties in the group variable; τ_b's variance corrects for those ties). It
  assumes neither linearity (unlike a regression on the rank) nor normality, and τ_b is itself the
  effect size in [−1, 1]; its CI uses the Fieller–Hartley–Pearson (1957) variance 0.437/(n−4).
* Omnibus: one-way ANOVA (η², Cohen's f) and Kruskal–Wallis (ε²).
* Spread: Levene (mean-centred) and Brown–Forsythe (median-centred), plus a trend of the absolute
  deviations from each group's median (the paper's "spread falls as heterogeneity rises").
* Pairwise: Mann–Whitney U for every pair of groups and sub-groups (2a vs 2b included), Holm
  correction, Cliff's δ and the mean difference with a Welch 95 % CI.
* Mixed model: per-test-subject accuracy ~ rank with crossed random intercepts for the test
  subject and the draw (statsmodels MixedLM), i.e. the change per heterogeneity step within the
  same tester, without counting a draw's testers as independent training sets.
* Power: draws per group an ANOVA needs to detect the observed effect (statsmodels).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import FTestAnovaPower

from anonaudit.audit.design import group_order

ALPHA = 0.05
PAIR_COLUMNS = ["network", "metric", "group_a", "group_b", "n_a", "n_b", "mean_diff_b_minus_a", "diff_ci_low",
                "diff_ci_high", "cliffs_delta", "p_value"]
MIN_DRAWS = 3  # fewer draws in a group: its spread and pairwise tests are not worth much


@dataclass
class Analysis:
    """Tables of one audit (all networks and metrics) and what they mean in words."""

    tests: pd.DataFrame
    pairwise: pd.DataFrame
    groups: pd.DataFrame
    findings: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def trend_test(values: np.ndarray, ranks: np.ndarray) -> tuple[float, float, float, float]:
    """Jonckheere–Terpstra trend as Kendall's τ_b: (τ, p two-sided, CI low, CI high)."""
    tau, p = stats.kendalltau(ranks, values)
    n = len(values)
    if not np.isfinite(tau) or n < 5:
        return float(tau), float(p), float("nan"), float("nan")
    z, se = np.arctanh(np.clip(tau, -0.999999, 0.999999)), math.sqrt(0.437 / (n - 4))
    return float(tau), float(p), float(np.tanh(z - 1.96 * se)), float(np.tanh(z + 1.96 * se))


def _row(network: str, metric: str, test: str, statistic: float, p: float, effect: float, effect_name: str,
         n: int, ci: tuple[float, float] = (float("nan"), float("nan"))) -> dict[str, object]:
    return {"network": network, "metric": metric, "test": test, "statistic": float(statistic), "p_value": float(p),
            "effect": float(effect), "effect_name": effect_name, "ci_low": ci[0], "ci_high": ci[1], "n": int(n)}


def omnibus_tests(draws: pd.DataFrame, network: str, metric: str) -> list[dict[str, object]]:
    """Trend, ANOVA, Kruskal–Wallis and spread tests over the main groups (ranks) of draw-level scores."""
    x, r = draws["value"].to_numpy(float), draws["rank"].to_numpy(int)
    samples = [x[r == k] for k in np.unique(r)]
    rows: list[dict[str, object]] = []
    tau, p, lo, hi = trend_test(x, r)
    rows.append(_row(network, metric, "trend (Jonckheere–Terpstra / Kendall τb)", tau, p, tau, "kendall_tau", len(x), (lo, hi)))
    if len(samples) < 2 or any(len(s) < 2 for s in samples):
        return rows
    f, p = stats.f_oneway(*samples)
    ss_total = ((x - x.mean()) ** 2).sum()
    eta2 = sum(len(s) * (s.mean() - x.mean()) ** 2 for s in samples) / ss_total if ss_total > 0 else float("nan")
    rows.append(_row(network, metric, "one-way ANOVA", f, p, eta2, "eta_squared", len(x)))
    h, p = stats.kruskal(*samples) if np.ptp(x) > 0 else (float("nan"), float("nan"))
    rows.append(_row(network, metric, "Kruskal–Wallis", h, p, h / (len(x) - 1), "epsilon_squared", len(x)))
    for name, center in (("Levene", "mean"), ("Brown–Forsythe", "median")):
        w, p = stats.levene(*samples, center=center)
        rows.append(_row(network, metric, name, w, p, float("nan"), "", len(x)))
    medians = draws.groupby("rank")["value"].transform("median").to_numpy(float)
    tau, p, lo, hi = trend_test(np.abs(x - medians), r)
    rows.append(_row(network, metric, "spread trend (|deviation from group median| vs rank)", tau, p, tau,
                     "kendall_tau", len(x), (lo, hi)))
    return rows


def pairwise_tests(draws: pd.DataFrame, network: str, metric: str) -> pd.DataFrame:
    """Every pair of groups and sub-groups (2a vs 2b included): Mann–Whitney U, Holm-corrected."""
    by_group = {g: d["value"].to_numpy(float) for g, d in draws.groupby("group")}
    rows = []
    for a, b in combinations(sorted(by_group, key=group_order), 2):
        xa, xb = by_group[a], by_group[b]
        if len(xa) < 2 or len(xb) < 2:
            continue
        u, p = stats.mannwhitneyu(xb, xa, alternative="two-sided")
        welch = stats.ttest_ind(xb, xa, equal_var=False)
        ci = welch.confidence_interval() if np.isfinite(welch.statistic) else (float("nan"), float("nan"))
        rows.append({"network": network, "metric": metric, "group_a": a, "group_b": b, "n_a": len(xa), "n_b": len(xb),
                     "mean_diff_b_minus_a": float(xb.mean() - xa.mean()), "diff_ci_low": float(ci[0]),
                     "diff_ci_high": float(ci[1]), "cliffs_delta": float(2 * u / (len(xa) * len(xb)) - 1),
                     "p_value": float(p)})
    table = pd.DataFrame(rows, columns=PAIR_COLUMNS)
    table["p_holm"] = multipletests(table["p_value"].fillna(1.0), method="holm")[1] if len(table) else []
    table["significant"] = table["p_holm"] < ALPHA
    return table


def mixed_model(subject_scores: pd.DataFrame, network: str) -> dict[str, object] | None:
    """Per-test-subject accuracy ~ rank with crossed random intercepts for test subject and draw.

    The draw term matters: the testers of one training share its training set, so without it the
    rows of a draw count as independent evidence and the slope's p-value is far too small.
    """
    import statsmodels.formula.api as smf

    data = subject_scores[["accuracy", "rank", "subject", "key"]].dropna().assign(all=1)
    if data["subject"].nunique() < 3 or data["rank"].nunique() < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fit = smf.mixedlm("accuracy ~ rank", data, groups="all", re_formula="0",
                              vc_formula={"subject": "0 + C(subject)", "draw": "0 + C(key)"}).fit(reml=True)
        except (np.linalg.LinAlgError, ValueError):
            return None
    lo, hi = fit.conf_int().loc["rank"]
    return _row(network, "accuracy", "mixed model (per-test-subject accuracy ~ rank; test subject and draw random)",
                fit.tvalues["rank"], fit.pvalues["rank"], fit.params["rank"], "slope_per_step", len(data), (lo, hi)) \
        | {"converged": bool(fit.converged)}


def draws_needed(eta2: float, k_groups: int, alpha: float = ALPHA, power: float = 0.8) -> int | None:
    """Draws per group for an ANOVA to detect an effect of size η² with the given power."""
    if not np.isfinite(eta2) or eta2 <= 0 or eta2 >= 1 or k_groups < 2:
        return None
    f = math.sqrt(eta2 / (1 - eta2))
    if f < 0.02:
        return None
    nobs = FTestAnovaPower().solve_power(effect_size=f, alpha=alpha, power=power, k_groups=k_groups)
    return int(math.ceil(nobs / k_groups))


def draw_scores(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean of the repeats of every draw: the independent units of the tests."""
    return runs.groupby(["key", "group", "rank"], as_index=False)[metric].mean().rename(columns={metric: "value"})


def _findings(network: str, metric: str, tests: pd.DataFrame, draws: pd.DataFrame, need: int | None) -> list[str]:
    t = tests.set_index("test")
    out = []
    trend = t.iloc[0]
    means = draws.groupby("rank")["value"].mean()
    direction = "rises" if trend["effect"] > 0 else "falls"
    if trend["p_value"] < ALPHA:
        out.append(f"{network}, {metric}: scores {direction} with heterogeneity (Kendall τ = {trend['effect']:+.2f}, "
                   f"95 % CI {trend['ci_low']:+.2f}…{trend['ci_high']:+.2f}, p = {trend['p_value']:.3g}); "
                   f"group means {', '.join(f'{k}: {v:.3f}' for k, v in means.items())}.")
    else:
        out.append(f"{network}, {metric}: no monotone trend with heterogeneity is supported (τ = {trend['effect']:+.2f}, "
                   f"p = {trend['p_value']:.3g}); this does not show that there is none"
                   + (f" — about {need} draws per group would detect the observed differences with 80 % power."
                      if need else "."))
    spread = t.loc[t.index.str.startswith("spread trend")]
    if len(spread):
        s = spread.iloc[0]
        if s["p_value"] < ALPHA and s["effect"] < 0:
            out.append(f"{network}, {metric}: the spread between training sets falls with heterogeneity "
                       f"(τ = {s['effect']:+.2f}, p = {s['p_value']:.3g}), as the paper reports.")
        else:
            out.append(f"{network}, {metric}: a falling spread is not supported by these draws (τ = {s['effect']:+.2f}, "
                       f"p = {s['p_value']:.3g}).")
    return out


def analyse(runs: pd.DataFrame, subject_scores: pd.DataFrame, metrics: tuple[str, ...] = ("accuracy", "weighted_f1"),
            alpha: float = ALPHA) -> Analysis:
    """All tests for every network in ``runs`` (one row per training: network, key, group, rank, metrics…).

    ``subject_scores`` has one row per training and test subject (network, key, rank, subject, accuracy).
    """
    tests, pairs, groups, findings, warns = [], [], [], [], []
    for network, net_runs in runs.groupby("network", sort=False):
        for metric in metrics:
            draws = draw_scores(net_runs, metric)
            rows = omnibus_tests(draws, str(network), metric)
            if metric == "accuracy":
                mixed = mixed_model(subject_scores[subject_scores["network"] == network], str(network))
                if mixed is not None:
                    rows.append(mixed)
                    if not mixed["converged"]:
                        warns.append(f"{network}: the mixed model did not converge; read its slope with care")
            table = pd.DataFrame(rows)
            anova = table.loc[table["test"] == "one-way ANOVA", "effect"]
            need = draws_needed(float(anova.iloc[0]), draws["rank"].nunique()) if len(anova) else None
            table["draws_needed_80pct_power"] = need
            tests.append(table)
            pairs.append(pairwise_tests(draws, str(network), metric))
            summary = draws.groupby("group")["value"].agg(["size", "mean", "std", "median", "min", "max"]).reset_index()
            groups.append(summary.rename(columns={"size": "n_draws"}).assign(network=network, metric=metric))
            findings += _findings(str(network), metric, table, draws, need)
        small = draws.groupby("group").size()
        small = small[small < MIN_DRAWS]
        if len(small):  # one warning for all of them, not one per group
            counts = sorted(set(small.tolist()))
            many = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
            warns.append(f"{network}: group{'s' if len(small) > 1 else ''} {', '.join(map(str, small.index))} "
                         f"{'have' if len(small) > 1 else 'has'} only {many} draw(s) each (fewer than {MIN_DRAWS}); "
                         f"their spread and pairwise comparisons are unreliable")
    pairwise = pd.concat(pairs, ignore_index=True)
    for row in pairwise[pairwise["group_a"].str.startswith("2") & pairwise["group_b"].str.startswith("2")].to_dict("records"):
        verdict = "differ" if row["significant"] else "do not differ significantly"
        findings.append(f"{row['network']}, {row['metric']}: sub-groups {row['group_a']} and {row['group_b']} {verdict} "
                        f"(Δ = {row['mean_diff_b_minus_a']:+.3f}, Holm p = {row['p_holm']:.3g}).")
    group_table = pd.concat(groups, ignore_index=True)
    group_table = group_table[["network", "metric", "group", "n_draws", "mean", "std", "median", "min", "max"]]
    return Analysis(pd.concat(tests, ignore_index=True), pairwise, group_table, findings, warns)


def null_false_positive_rate(ranks: np.ndarray, values: np.ndarray | None = None, n_sim: int = 2000,
                             alpha: float = ALPHA, seed: int = 0) -> float:
    """Share of bias-free audits whose trend test is significant: the primary test's false-positive
    rate, which should be close to α.

    With ``values`` (measured draw scores) the group labels are permuted, which keeps the real score
    distribution but removes any link to heterogeneity; without, scores are simulated from one
    normal distribution for every group.
    """
    rng = np.random.default_rng(seed)
    ranks = np.asarray(ranks)
    samples = (rng.permuted(np.tile(np.asarray(values, float), (n_sim, 1)), axis=1) if values is not None
               else rng.normal(0.7, 0.05, (n_sim, len(ranks))))
    p = np.array([stats.kendalltau(ranks, row)[1] for row in samples])
    return float((p < alpha).mean())
