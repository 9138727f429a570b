"""Bias audit page: choose characteristics and groups, preview the design, queue the audit, read the results.

The design preview runs the same ``build_design`` the job runs (on the subjects table only), so
missing attributes, single-level characteristics and infeasible groups show up before anything
trains; the page itself never trains.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import ui  # noqa: E402

from anonaudit.audit.design import build_design, draws_table  # noqa: E402
from anonaudit.data.dataset import SUBJECTS_FILE  # noqa: E402
from anonaudit.errors import AnonauditError  # noqa: E402
from anonaudit.reporting.captions import caption, readable  # noqa: E402
from anonaudit.store import datasets as dataset_store  # noqa: E402
from anonaudit.store import jobs as job_store  # noqa: E402

NETWORKS = ["tcnn", "lstm", "transformer"]

st.set_page_config(page_title="anonaudit · bias audit", layout="wide")
st.title("Representation-bias audit")
st.caption("Training sets of equal size but rising heterogeneity (1 = all subjects alike … all level combinations), "
           "each tested on every other subject: does accuracy rise and its spread fall with heterogeneity, which "
           "testers are served worst, and whom to recruit next.")

records = {d["name"]: d for d in dataset_store.list_datasets()}
if not records:
    st.info("No datasets yet: import one with subject attributes (age, gender, height …) first.")
    st.stop()
name = st.selectbox("Dataset", list(records))
subjects = pd.read_parquet(Path(records[name]["storage_path"]) / SUBJECTS_FILE)
attributes = [c for c in subjects.columns if c != "subject"]
default = [c for c in ("age_group", "gender") if c in attributes] or attributes[:1]
characteristics = st.multiselect("Characteristics", attributes, default=default)
cuts: dict[str, float] = {}
for c in characteristics:
    if pd.api.types.is_numeric_dtype(subjects[c]):
        cuts[c] = float(st.number_input(f"Cut point of {c} (default: median)", value=float(subjects[c].median())))
left, right = st.columns(2)
networks = left.multiselect("Networks", NETWORKS, default=["tcnn"])
train_subjects = int(left.number_input("Training subjects per set", value=min(8, max(1, len(subjects) // 3)), min_value=1))
draws = int(right.number_input("Draws per group", value=6, min_value=1))
repeats = int(right.number_input("Trainings per draw", value=3, min_value=1))
epochs = int(left.number_input("Epochs", value=15, min_value=1))
window_s = float(right.number_input("Window (s)", value=2.56, min_value=0.1))

try:
    design = build_design(subjects, characteristics, cuts=cuts, n_train=train_subjects, n_draws=draws, seed=0)
except AnonauditError as exc:
    st.error(str(exc))
    design = None
if design is not None:
    st.markdown("**Subjects per level combination**")
    st.dataframe(design.cells, hide_index=True)
    table = draws_table(design)
    st.caption(f"{len(table)} training sets in groups {', '.join(design.groups())} "
               f"→ {len(table) * repeats * max(1, len(networks))} trainings (seed 0 shown; the job uses its own seed).")
    for item in design.infeasible:
        st.warning(f"Group {item['group']}: {item['reason']}")
    if st.button("Queue audit", type="primary"):
        ui.submit("bias_audit", {
            "dataset": name, "characteristics": characteristics, "cuts": cuts, "networks": networks, "draws": draws,
            "repeats": repeats, "train_subjects": train_subjects, "epochs": epochs, "window_s": window_s,
            "stride_s": window_s / 2})

jobs = ui.recent("bias_audit")
if jobs:
    st.subheader("Audit jobs")
    ui.jobs_table(jobs)
    job_id = ui.pick_finished(jobs, "Show results of job", statuses=("succeeded",))
    if job_id is not None:
        files = job_store.artifact_files(job_id)
        p = job_store.job_dict(job_id)["params"]
        boxes = pd.read_csv(files["group_summary.csv"]) if "group_summary.csv" in files else None
        per_box = "" if boxes is None else (f"; each box holds {boxes['n_draws'].min()}–{boxes['n_draws'].max()} draws"
                                            if boxes["n_draws"].nunique() > 1 else f"; each box holds "
                                            f"{boxes['n_draws'].iloc[0]} draws")
        st.caption(f"Settings of this audit: {p.get('draws')} draws per group × {p.get('repeats')} training(s) per "
                   f"draw, {p.get('epochs')} epoch(s), {', '.join(p.get('networks') or ['tcnn'])}, "
                   f"{p.get('train_subjects')} training subjects per set{per_box}.")
        if "findings.json" in files:
            found = json.loads(files["findings.json"].read_text(encoding="utf-8"))
            st.markdown("#### Findings")
            for line in found["findings"]:
                st.markdown(f"- {line}")
            caveats = list(dict.fromkeys(found["warnings"] + [f"group {i['group']}: {i['reason']}"
                                                               for i in found["infeasible_groups"]]))
            if caveats:  # one warning box, not one per group
                st.warning("Read these results with care:\n" + "\n".join(f"- {line}" for line in caveats))
            st.markdown("#### Whom to recruit next")
            for line in found["advice"]:
                st.markdown(f"- {line}")
        for art, path in files.items():
            if art.endswith(".png"):
                st.image(str(path), caption=caption(art))
        for art, title in (("test_table.csv", "Test table"), ("pairwise.csv", "Pairwise comparisons (Holm)"),
                           ("fairness_table.csv", "Fairness across test-subject groups"), ("advice.csv", "Level combinations")):
            if art in files:
                st.markdown(f"#### {title}")
                st.dataframe(readable(pd.read_csv(files[art])), hide_index=True, width="stretch")
        ui.report_download(job_id)
