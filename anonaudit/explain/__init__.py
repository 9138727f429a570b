"""Local explanations of tabular black boxes: R-LIME beside LIME and Anchor (issue 7).

``tabular`` loads data and discretises it, ``sampler`` draws perturbations, ``kl_lucb`` holds the
bandit bounds, ``rlime`` the explainer, ``baselines`` wraps the LIME and Anchor libraries and
``evaluation`` runs the paper's experiments. Nothing here touches the job store.
"""

from anonaudit.explain.rlime import RLime, RLimeExplanation
from anonaudit.explain.tabular import Discretiser, TabularData, load_adult, load_csv, load_recidivism

__all__ = ["Discretiser", "RLime", "RLimeExplanation", "TabularData", "load_adult", "load_csv", "load_recidivism"]
