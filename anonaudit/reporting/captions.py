"""What to read from each figure a job writes, by its file name (the report and the app caption them alike)."""

from __future__ import annotations

import re

import pandas as pd

# (pattern on the artifact name without a stage prefix, caption); the first match wins
CAPTIONS: list[tuple[str, str]] = [
    (r"frontier\.png$", "Each judged release against each threat model: points left of the red limit pass; the "
                        "original data is the reference point, and chance and the limit are labelled lines. "
                        "The release chosen is the most useful point that passes every panel."),
    (r"privacy_utility\.png$", "Privacy against utility of every judged release: further left is harder to "
                               "re-identify, higher is more useful; the dashed line is chance."),
    (r"confusion\.png$", "Which activity the model says (columns) for each true activity (rows): mass off the "
                         "diagonal is confusion between activities."),
    (r"per_class\.png$", "Precision and recall per activity: a short bar is an activity the model misses."),
    (r"activity_precision_recall\.png$", "Precision and recall per activity: a short bar is an activity the "
                                         "model misses."),
    (r"explanations\.png$", "The largest weights of each explanation (green pushes toward the predicted class, "
                            "red away), with its rule, accuracy and coverage above."),
    (r"signals\.png$", "A few seconds of one recording per activity, as imported: check units and axes here."),
    (r"windows_per_activity\.png$", "Windows per activity and split: a thin bar is an activity too rare to "
                                    "learn or to judge."),
    (r"box_.*\.png$", "Accuracy of models trained on subject draws, per group of the characteristic: boxes "
                      "that do not overlap are the disparity the findings test."),
    (r"table2_accuracy_deviation\.png$", "Each heterogeneity measure's accuracy deviation per subgroup."),
    (r"samples\.png$", "Windows drawn from the DP model: how realistic its output is at this ε."),
    (r"reconstructions\.png$", "Held-out originals (top) and the DP model's reconstructions: what it keeps."),
    (r"fig8a_local_accuracy\.png$", "LIME's and R-LIME's accuracy inside R-LIME's rules (the R-LIME paper's §4.2): "
                                    "higher is a more faithful local surrogate."),
    (r"fig8b_coverage\.png$", "Anchor's and R-LIME's coverage on the same samples (§4.3): higher explains more "
                              "of the input space."),
    (r"fig6_example_\d+\.png$", "One instance explained by every method, side by side."),
]


def caption(name: str) -> str:
    """The caption of an artifact named ``name``; its name where no caption is known."""
    return CAPTIONS[rank(name)][1] if rank(name) < len(CAPTIONS) else name


def rank(name: str) -> int:
    """Where the figure goes in a report: the decision's figures first, in ``CAPTIONS`` order; unknown ones last."""
    return next((i for i, (pattern, _) in enumerate(CAPTIONS) if re.search(pattern, name)), len(CAPTIONS))


# raw column names of the stored tables as a reader would write them
COLUMNS = {
    "p_value": "p", "p_holm": "p (Holm-corrected)", "effect_name": "effect measure", "ci_low": "95 % CI low",
    "ci_high": "95 % CI high", "draws_needed_80pct_power": "draws for 80 % power", "group_a": "group A",
    "group_b": "group B", "n_a": "draws A", "n_b": "draws B", "mean_diff_b_minus_a": "mean B − A",
    "diff_ci_low": "95 % CI low", "diff_ci_high": "95 % CI high", "cliffs_delta": "Cliff's δ",
    "worst_group_acc": "worst group's accuracy", "best_group_acc": "best group's accuracy", "gap": "gap",
    "fairness_ratio": "fairness ratio (worst ÷ best)", "min_class_acc": "worst activity's accuracy",
    "eod_max": "equalized-odds gap (largest)", "n_draws": "draws", "n_subjects": "subjects",
}


def readable(frame: pd.DataFrame) -> pd.DataFrame:
    """A stored table for reading: column names in words, numbers to four significant digits, and "–" where a
    value does not exist (never "None" or "nan")."""
    shown = frame.map(lambda v: f"{v:.4g}" if isinstance(v, float) else v).astype(object)
    return shown.where(frame.notna().to_numpy(), "–").rename(columns=COLUMNS)
