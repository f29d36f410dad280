"""The publication tables as display frames: the Summary of Findings (Table 1), the baseline characteristics laid out
as Jensen et al. 2019, Table 2, and the outcomes laid out as Jensen et al. 2019, Table 3.

Each builder returns a `ManuscriptTable`: the body as text (one row per displayed row: its ``group``, its ``label``
and one column per `Column`), the column headers with their spanners, the notes under the table (lettered or
general), the source of the layout, and the numbers behind the cells (``values``) so that nothing is read back from
text. Presentation only: the statistics come from the stages' tables or from plain counts of the cleaned data;
the renderers are `imrstats.report.gt_tables` (HTML) and `imrstats.report.docx_tables` (Word).

The arms and visits are the study design's (`imrstats.trial.design.StudyDesign`), so a user's trial with other arm
labels or visits gets tables of the same shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import pandas as pd

from imrstats.report.format import MINUS, format_number, format_p, typographic
from imrstats.trial.design import DEFAULT_DESIGN, StudyDesign

DASH = "\u2013"
MISSING_CELL = DASH

# --- the model the renderers read ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """A body column: its id in `ManuscriptTable.body`, its header text, its spanners (outermost first) and
    alignment ("left", "center" or "right")."""

    id: str
    label: str
    spanners: tuple[str, ...] = ()
    align: str = "right"


@dataclass(frozen=True)
class Note:
    """A note under a table: ``mark`` "" for a general note, else the letter its cells carry."""

    text: str
    mark: str = ""


@dataclass
class ManuscriptTable:
    """A table as a journal prints it. ``body`` holds text: ``group`` (row group, "" for none), ``label`` (the stub)
    and one column per `Column`; ``marks`` maps (row position, column id) to footnote letters shown as
    superscripts after the cell's text; ``values`` holds the numbers behind the cells."""

    key: str
    title: str
    stub_label: str
    columns: tuple[Column, ...]
    body: pd.DataFrame
    notes: tuple[Note, ...] = ()
    source: str = ""
    values: pd.DataFrame = field(default_factory=pd.DataFrame)
    marks: dict[tuple[int, str], str] = field(default_factory=dict)
    landscape: bool = False

    @property
    def column_ids(self) -> list[str]:
        return [c.id for c in self.columns]

    @property
    def spanner_depth(self) -> int:
        return max((len(c.spanners) for c in self.columns), default=0)

    def groups(self) -> list[str]:
        """The row groups in display order ("" when the table has none)."""
        return list(dict.fromkeys(self.body["group"]))


def spanner_runs(columns: tuple[Column, ...], depth: int) -> list[tuple[str, int, int]]:
    """The spanners at position ``depth`` (0 = outermost) as (label, first column index, last column index), one
    per run of adjacent columns sharing the spanner path down to that depth."""
    runs: list[tuple[str, int, int]] = []
    prev = None
    for i, col in enumerate(columns):
        path = col.spanners[: depth + 1] if len(col.spanners) > depth else None
        if path is not None and path == prev:
            label, first, _ = runs[-1]
            runs[-1] = (label, first, i)
        elif path is not None:
            runs.append((path[-1], i, i))
        prev = path
    return runs


def number(x, digits: int = 1) -> str:
    """A number for a manuscript cell: `format_number`, a typographic minus, missing as an en dash."""
    return typographic(format_number(x, digits, missing=MISSING_CELL))


def interval(estimate, low, high, digits: int = 2) -> str:
    """ "estimate (low to high)"; an en dash when the estimate is missing."""
    if pd.isna(estimate):
        return MISSING_CELL
    return f"{number(estimate, digits)} ({number(low, digits)} to {number(high, digits)})"


def arm_header(design: StudyDesign, arm: str, n: int | None = None) -> str:
    label = design.arm_label(arm)
    return label if n is None else f"{label} (N = {n})"


def visit_heading(design: StudyDesign, visit: str) -> str:
    """A visit as a column heading: its prose text with a capital ("Post-intervention", "12-month follow-up")."""
    text = design.visit_text(visit)
    return text[:1].upper() + text[1:]


# abbreviations of the default trial's arms, spelled out under the tables when the design uses them
ARM_NAMES = {"IMR": "Illness Management and Recovery", "TAU": "treatment as usual"}


def arm_abbreviations(design: StudyDesign) -> str:
    names = [
        f"{design.arm_label(a)}: {ARM_NAMES[design.arm_label(a)]}"
        for a in design.arms
        if design.arm_label(a) in ARM_NAMES
    ]
    return "; ".join(names)


# --- Table 2: baseline characteristics -------------------------------------------------------------------------

# (group heading, candidate column names, kind) in the order of Jensen et al. 2019, Table 2
TABLE2_VARIABLES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("Site", ("site",), "categorical"),
    ("Sex", ("sex",), "categorical"),
    ("Age", ("age",), "numeric"),
    ("Housing", ("housing",), "categorical"),
    ("Employment status", ("employment", "employment_status"), "categorical"),
    ("Education", ("education",), "categorical"),
    ("Living status", ("living_status", "living", "living_situation"), "categorical"),
    ("Diagnosis", ("diagnosis",), "categorical"),
    ("Alcohol or drug abuse", ("substance_abuse", "alcohol_drug_abuse", "abuse"), "categorical"),
)

LEVEL_LABELS = {
    "female": "Female",
    "male": "Male",
    "schizophrenia": "Schizophrenia",
    "bipolar": "Bipolar disorder",
    "True": "Yes",
    "False": "No",
}


def level_label(level) -> str:
    text = str(level)
    return LEVEL_LABELS.get(text, text[:1].upper() + text[1:])


def level_counts(participants: pd.DataFrame, column: str, design: StudyDesign = DEFAULT_DESIGN) -> pd.DataFrame:
    """Participants per level of ``column`` and arm: columns level, arm, n, n_arm, pct (of the arm's participants).
    The levels in sorted order (a categorical column's own order), then "Missing" when any value is missing; the
    counts of each arm add up to its participants. The computation of `imrstats.trial.consort.baseline_table`."""
    values = participants[column]
    if isinstance(values.dtype, pd.CategoricalDtype):
        levels = [lev for lev in values.cat.categories if (values == lev).any()]
    else:
        levels = sorted(values.dropna().unique(), key=str)
    rows = []
    for arm in design.arms:
        in_arm = participants["arm"] == arm
        n_arm = int(in_arm.sum())
        for lev in levels:
            k = int((in_arm & (values == lev)).sum())
            rows.append({"level": lev, "arm": arm, "n": k, "n_arm": n_arm})
        if values.isna().any():
            rows.append({"level": "Missing", "arm": arm, "n": int((in_arm & values.isna()).sum()), "n_arm": n_arm})
    out = pd.DataFrame(rows, columns=["level", "arm", "n", "n_arm"])
    out["pct"] = np.where(out["n_arm"] > 0, 100 * out["n"] / out["n_arm"].where(out["n_arm"] > 0, 1), np.nan)
    return out


def numeric_summary(participants: pd.DataFrame, column: str, design: StudyDesign = DEFAULT_DESIGN) -> pd.DataFrame:
    """Mean, SD (n - 1), min, max, n observed and n missing of ``column`` per arm."""
    rows = []
    for arm in design.arms:
        v = pd.to_numeric(participants.loc[participants["arm"] == arm, column], errors="coerce").astype(float)
        obs = v.dropna()
        rows.append(
            {
                "arm": arm,
                "mean": obs.mean() if obs.size else np.nan,
                "sd": obs.std() if obs.size > 1 else np.nan,
                "min": obs.min() if obs.size else np.nan,
                "max": obs.max() if obs.size else np.nan,
                "n": int(obs.size),
                "n_missing": int(v.isna().sum()),
            }
        )
    return pd.DataFrame(rows)


def _range_digits(values: pd.Series) -> int:
    v = values.dropna().astype(float)
    return 0 if np.allclose(v, np.round(v)) else 1


def table2_baseline(
    participants: pd.DataFrame,
    assessments: pd.DataFrame | None = None,
    design: StudyDesign = DEFAULT_DESIGN,
    *,
    variables: tuple[tuple[str, tuple[str, ...], str], ...] = TABLE2_VARIABLES,
) -> ManuscriptTable:
    """Jensen et al. 2019, Table 2 "Demographic and clinical characteristics of the patients at the baseline":
    Variable | N and % per arm (headed "IMR (N = 99)"), grouped by variable; only the ``variables`` present in
    ``participants`` (the cleaned participants table: id, arm and the characteristics). Categorical variables:
    n and % of the arm's participants per level, with a "Missing" row when any value is missing; numeric ones
    (age): mean ± SD and range in the N column. ``assessments`` is accepted for the pipeline's uniform call and not
    used (the paper's Table 2 has no outcome scores; the report's baseline table has them)."""
    del assessments
    arms = design.arms
    keys = {arm: design.arm_key(arm) for arm in arms}
    n_arm = {arm: int((participants["arm"] == arm).sum()) for arm in arms}
    n_outside = int((~participants["arm"].isin(arms)).sum())
    columns = []
    for arm in arms:
        span = (arm_header(design, arm, n_arm[arm]),)
        columns += [Column(f"{keys[arm]}_n", "N", span), Column(f"{keys[arm]}_pct", "%", span)]
    body, values = [], []
    used = []
    for group, candidates, kind in variables:
        column = next((c for c in candidates if c in participants.columns), None)
        if column is None:
            continue
        used.append(column)
        if kind == "numeric":
            s = numeric_summary(participants, column, design).set_index("arm")
            digits = _range_digits(participants[column])
            mean_row = {"group": group, "label": "Mean ± SD"}
            range_row = {"group": group, "label": "Range"}
            mean_val = {"group": group, "label": "Mean ± SD", "variable": column, "level": "mean"}
            range_val = {"group": group, "label": "Range", "variable": column, "level": "range"}
            for arm in arms:
                k = keys[arm]
                mean_row[f"{k}_n"] = f"{number(s.loc[arm, 'mean'], 1)} ± {number(s.loc[arm, 'sd'], 1)}"
                mean_row[f"{k}_pct"] = ""
                range_row[f"{k}_n"] = (
                    f"{number(s.loc[arm, 'min'], digits)}{DASH}{number(s.loc[arm, 'max'], digits)}"
                    if s.loc[arm, "n"]
                    else MISSING_CELL
                )
                range_row[f"{k}_pct"] = ""
                mean_val[f"{k}_n"], mean_val[f"{k}_pct"] = s.loc[arm, "mean"], s.loc[arm, "sd"]
                range_val[f"{k}_n"], range_val[f"{k}_pct"] = s.loc[arm, "min"], s.loc[arm, "max"]
            body += [mean_row, range_row]
            values += [mean_val, range_val]
            if s["n_missing"].sum():
                miss_row = {"group": group, "label": "Missing"}
                miss_val = {"group": group, "label": "Missing", "variable": column, "level": "Missing"}
                for arm in arms:
                    k, m = keys[arm], int(s.loc[arm, "n_missing"])
                    pct = 100 * m / n_arm[arm] if n_arm[arm] else np.nan
                    miss_row[f"{k}_n"], miss_row[f"{k}_pct"] = str(m), number(pct, 1)
                    miss_val[f"{k}_n"], miss_val[f"{k}_pct"] = m, pct
                body.append(miss_row)
                values.append(miss_val)
            continue
        counts = level_counts(participants, column, design)
        for level in dict.fromkeys(counts["level"]):
            label = "Missing" if level == "Missing" else level_label(level)
            row = {"group": group, "label": label}
            val = {"group": group, "label": label, "variable": column, "level": level}
            for arm in arms:
                c = counts[(counts["level"] == level) & (counts["arm"] == arm)].iloc[0]
                k = keys[arm]
                row[f"{k}_n"], row[f"{k}_pct"] = str(int(c["n"])), number(c["pct"], 1)
                val[f"{k}_n"], val[f"{k}_pct"] = int(c["n"]), float(c["pct"])
            body.append(row)
            values.append(val)
    ids = [c.id for c in columns]
    notes = [
        Note(
            "N: participants; %: of the arm's randomised participants (every level of a characteristic is shown, "
            "missing values in a Missing row, so each arm's counts add up to its N); age: mean ± SD (n − 1) and "
            "range of the observed values."
        )
    ]
    if n_outside:
        notes.append(Note(f"{n_outside} participant(s) with an arm other than {' or '.join(arms)} are not shown."))
    if arm_abbreviations(design):
        notes.append(Note(arm_abbreviations(design)))
    absent = [g for g, cands, _ in variables if not any(c in participants.columns for c in cands)]
    if absent:
        notes.append(Note(f"Not recorded in these data (rows of the paper's table left out): {', '.join(absent)}."))
    return ManuscriptTable(
        key="table2",
        title="Table 2 Demographic and clinical characteristics of the patients at the baseline",
        stub_label="Variable",
        columns=tuple(columns),
        body=pd.DataFrame(body, columns=["group", "label", *ids]),
        notes=tuple(notes),
        source="Source layout: Jensen et al. 2019, Table 2",
        values=pd.DataFrame(values, columns=["group", "label", "variable", "level", *ids]),
    )


# --- Table 3: outcomes -----------------------------------------------------------------------------------------

# the outcome domains of Jensen et al. 2019, Table 3, in order; instruments by registry key (a subscale goes with
# its parent)
TABLE3_DOMAINS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Clinical recovery: functioning", ("gaf_f",)),
    ("Clinical recovery: symptoms", ("gaf_s", "psp", "panss_total", "hamd6", "ymrs")),
    ("Personal recovery", ("mhrm", "hope", "csq8")),
    ("Illness self-management", ("imrs_client", "imrs_clinician")),
)
OTHER_DOMAIN = "Other outcomes"
SINGLE_DOMAIN = "Outcomes"


def outcome_domain(key: str, instruments: Mapping | None = None) -> str | None:
    """The Table 3 domain of an instrument key (a subscale's parent's), or None when it is not one of the paper's."""
    parent = getattr((instruments or {}).get(key), "subscale_of", None)
    for domain, keys in TABLE3_DOMAINS:
        if key in keys or (parent is not None and parent in keys):
            return domain
    return None


def itt_counts(itt_contrasts: pd.DataFrame | None, visit: str, design: StudyDesign = DEFAULT_DESIGN) -> pd.DataFrame:
    """Participants analysed per arm in the ITT fit at ``visit`` from the trial stage's ITT contrasts table
    (trial_itt_contrasts.csv: outcome, timepoint, ``n_<arm key>``): outcome, n_<arm key> per arm."""
    cols = [f"n_{design.arm_key(a)}" for a in design.arms]
    if itt_contrasts is None or itt_contrasts.empty or not set(cols) <= set(itt_contrasts.columns):
        return pd.DataFrame(columns=["outcome", *cols])
    rows = itt_contrasts[itt_contrasts["timepoint"].astype(str) == str(visit)]
    return rows[["outcome", *cols]].drop_duplicates("outcome")


def table3_columns(design: StudyDesign = DEFAULT_DESIGN) -> tuple[Column, ...]:
    """The columns of Table 3 for ``design``: ITT at the last visit (N, mean and SE per arm, P), then complete case
    at each post-baseline visit (N, mean, SD per arm; P at the last visit)."""
    last = design.visits[-1]
    itt = ("Intention-to-treat analysis", visit_heading(design, last))
    cols = [Column("itt_n", "N", itt)]
    for arm in design.arms:
        a = design.arm_key(arm)
        span = (*itt, design.arm_label(arm))
        cols += [Column(f"itt_{last}_mean_{a}", "Mean", span), Column(f"itt_{last}_se_{a}", "SE", span)]
    cols.append(Column(f"itt_{last}_p", "P", itt))
    for visit in design.visits:
        cc = ("Complete case analysis", visit_heading(design, visit))
        for arm in design.arms:
            a = design.arm_key(arm)
            span = (*cc, design.arm_label(arm))
            cols += [
                Column(f"cc_{visit}_n_{a}", "N", span),
                Column(f"cc_{visit}_mean_{a}", "Mean", span),
                Column(f"cc_{visit}_sd_{a}", "SD", span),
            ]
        if visit == last:
            cols.append(Column(f"cc_{visit}_p", "P", cc))
    return tuple(cols)


def _cell(column_id: str, x) -> str:
    if column_id.endswith("_p"):
        return format_p(x, missing=MISSING_CELL)
    if "_n_" in column_id:
        return MISSING_CELL if pd.isna(x) else str(int(round(float(x))))
    if "_se_" in column_id:
        return number(x, 2)
    return number(x, 1)


def table3_outcomes(
    table3_frame: pd.DataFrame,
    instruments: Mapping,
    design: StudyDesign = DEFAULT_DESIGN,
    *,
    itt_contrasts: pd.DataFrame | None = None,
) -> ManuscriptTable:
    """Jensen et al. 2019, Table 3 "Recovery and illness self-management outcomes at the one-year follow-up" from
    the trial stage's trial_table3.csv (``table3_frame``: outcome, instrument and the ``itt_<visit>_<stat>_<arm>``
    / ``cc_<visit>_<stat>_<arm>`` columns): ITT at the last visit (N, mean and SE per arm, P), complete case at
    each post-baseline visit (N, mean, SD per arm; P at the last visit), rows grouped by outcome domain as the
    paper (an instrument outside the paper's domains under "Other outcomes"; one group "Outcomes" when none is
    known). ``instruments``: the registry (key -> `Instrument`) for short and full names. ``itt_contrasts``
    (trial_itt_contrasts.csv) gives the ITT N per arm; without it the N column shows a dash and a note says so."""
    last = design.visits[-1]
    columns = table3_columns(design)
    ids = [c.id for c in columns]
    frame = table3_frame.reset_index(drop=True)
    counts = itt_counts(itt_contrasts, last, design).set_index("outcome")
    n_cols = [f"n_{design.arm_key(a)}" for a in design.arms]
    domains = [outcome_domain(str(k), instruments) for k in frame["outcome"]]
    if not any(domains):
        domains = [SINGLE_DOMAIN] * len(frame)
    domains = [d or OTHER_DOMAIN for d in domains]
    order = [d for d, _ in TABLE3_DOMAINS] + [OTHER_DOMAIN, SINGLE_DOMAIN]
    frame = frame.assign(_domain=domains, _order=[order.index(d) for d in domains], _pos=range(len(frame)))
    frame = frame.sort_values(["_order", "_pos"], kind="stable").reset_index(drop=True)
    body, values, missing_itt_n, unequal = [], [], 0, []
    for _, r in frame.iterrows():
        key = str(r["outcome"])
        inst = instruments.get(key)
        label = getattr(inst, "short", None) or str(r.get("instrument", key))
        row = {"group": r["_domain"], "label": label}
        val = {"group": r["_domain"], "label": label, "outcome": key}
        for cid in ids:
            if cid == "itt_n":
                continue
            x = r[cid] if cid in frame.columns else np.nan
            row[cid] = _cell(cid, x)
            val[cid] = float(x) if pd.notna(x) else np.nan
        if key in counts.index:
            ns = [int(counts.loc[key, c]) for c in n_cols]
            row["itt_n"] = str(ns[0]) if len(set(ns)) == 1 else " / ".join(map(str, ns))
            if len(set(ns)) > 1:
                unequal.append(label)
        else:
            ns = [np.nan] * len(n_cols)
            row["itt_n"] = MISSING_CELL
            missing_itt_n += 1
        for c, n in zip(n_cols, ns):
            val[f"itt_{c}"] = n
        body.append(row)
        values.append(val)
    arms_text = " / ".join(design.arm_label(a) for a in design.arms)
    notes = [
        Note(
            f"Intention-to-treat analysis: N analysed per arm (multiple imputation); adjusted means and their standard "
            f"errors (SE) per arm from the mixed model for repeated measures; P for the "
            f"{design.arm_label(design.intervention)} {MINUS} {design.arm_label(design.control)} contrast at "
            f"{design.visit_text(last)}."
            + (f" Arms analysed with different N are shown as {arms_text}: {', '.join(unequal)}." if unequal else "")
        ),
        Note(
            f"Complete case analysis: observed N, mean and standard deviation (SD) per arm at each visit; P from the "
            f"analysis of covariance (ANCOVA: baseline and covariates) at {design.visit_text(last)} of the "
            f"participants with the baseline and that visit observed (so its N can be smaller than the N shown)."
        ),
    ]
    if missing_itt_n:
        notes.append(
            Note(
                f"{DASH}: not available (ITT N for {missing_itt_n} outcome(s): no ITT contrasts table given; other "
                f"cells: not estimated)."
            )
        )
    elif any(MISSING_CELL == v for row in body for k, v in row.items() if k in ids):
        notes.append(Note(f"{DASH}: not estimated (no fit or no complete cases)."))
    names = []
    for key in frame["outcome"]:
        inst = instruments.get(str(key))
        if inst is not None:
            names.append(f"{inst.short}: {inst.name}, {inst.range_text}, {inst.direction_text}")
    if names:
        notes.append(Note("; ".join(names) + "."))
    if arm_abbreviations(design):
        notes.append(Note(arm_abbreviations(design)))
    return ManuscriptTable(
        key="table3",
        title=f"Table 3 Recovery and illness self-management outcomes at the {design.visit_text(last)}",
        stub_label="Outcome",
        columns=columns,
        body=pd.DataFrame(body, columns=["group", "label", *ids]),
        notes=tuple(notes),
        source="Source layout: Jensen et al. 2019, Table 3",
        values=pd.DataFrame(values),
        landscape=True,
    )


# --- Table 1: Summary of findings ------------------------------------------------------------------------------

CERTAINTY_LEVELS = ("high", "moderate", "low", "very low")
GRADE_SYMBOLS = {"high": "⊕⊕⊕⊕", "moderate": "⊕⊕⊕◯", "low": "⊕⊕◯◯", "very low": "⊕◯◯◯"}


def footnote_letter(i: int) -> str:
    """0 -> "a", 25 -> "z", 26 -> "aa", ..."""
    letters = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        letters = chr(ord("a") + r) + letters
    return letters


def certainty_text(certainty) -> str:
    """The GRADE level as a word with a capital ("Moderate"), "Not assessed" when missing or unknown."""
    c = "" if pd.isna(certainty) else str(certainty).strip().lower()
    return c[:1].upper() + c[1:] if c in CERTAINTY_LEVELS else "Not assessed"


def certainty_symbols(certainty) -> str:
    c = "" if pd.isna(certainty) else str(certainty).strip().lower()
    return GRADE_SYMBOLS.get(c, "")


def split_footnotes(text) -> list[str]:
    """The reasons of a SoF row's ``footnotes`` (joined with " | "), blanks dropped."""
    if text is None or (not isinstance(text, str) and pd.isna(text)):
        return []
    return [t.strip() for t in str(text).split(" | ") if t.strip()]


SOF_COLUMNS = ("trial", "pooled", "bayes", "studies", "certainty")


def summary_of_findings_display(sof: pd.DataFrame, design: StudyDesign = DEFAULT_DESIGN) -> ManuscriptTable:
    """The Summary of Findings (results/evidence/tables/evidence_summary_of_findings.csv, one row per key outcome) in
    the Cochrane layout: Outcome | Trial: IMR − TAU (95% CI) | Pooled SMD (95% CI); 95% PI | Bayesian
    P(SMD > MID) | Studies (participants) | Certainty (GRADE). Each downgrading reason (``footnotes``, split on
    " | ") becomes a lettered note (a, b, c, ... in order of first appearance; a reason shared by outcomes keeps
    its letter), its letter marked on the certainty cell."""
    contrast = f"{design.arm_label(design.intervention)} {MINUS} {design.arm_label(design.control)}"
    columns = (
        Column("trial", f"Trial: {contrast} (95% CI)", align="center"),
        Column("pooled", "Pooled SMD (95% CI); 95% PI", align="center"),
        Column("bayes", "Bayesian P(SMD > MID)", align="center"),
        Column("studies", "Studies (participants)", align="center"),
        Column("certainty", "Certainty (GRADE)", align="left"),
    )
    letters: dict[str, str] = {}
    body, marks, values = [], {}, []
    for i, (_, r) in enumerate(sof.reset_index(drop=True).iterrows()):
        name = str(r.get("outcome_name") or r.get("outcome_label"))
        tp = r.get("timepoint")
        when = "" if pd.isna(tp) or tp == "" else f", {design.visit_text(str(tp))}"
        primary = bool(r.get("is_primary")) if pd.notna(r.get("is_primary")) else False
        label = f"{name}{when}" + (" (primary outcome)" if primary else "")
        trial = interval(r.get("trial_md"), r.get("trial_md_ci_low"), r.get("trial_md_ci_high"))
        if trial != MISSING_CELL and pd.notna(r.get("trial_p")):
            p = format_p(r.get("trial_p"))
            trial += f"; p {p}" if p.startswith("<") else f"; p = {p}"
        pooled = interval(r.get("pooled_smd"), r.get("pooled_ci_low"), r.get("pooled_ci_high"))
        if pooled != MISSING_CELL and pd.notna(r.get("pi_low")):
            pooled += f"; PI {number(r.get('pi_low'), 2)} to {number(r.get('pi_high'), 2)}"
        bayes = MISSING_CELL
        if pd.notna(r.get("prob_gt_mid")):
            bayes = f"{format_number(r.get('prob_gt_mid'), 2)} (MID {number(r.get('mid'), 2)})"
        k, n = r.get("k"), r.get("n_participants")
        studies = MISSING_CELL if pd.isna(k) else f"{int(k)}" + ("" if pd.isna(n) else f" ({int(n):,})")
        certainty = certainty_text(r.get("certainty"))
        reasons = split_footnotes(r.get("footnotes"))
        row_marks = []
        for reason in reasons:
            if reason not in letters:
                letters[reason] = footnote_letter(len(letters))
            row_marks.append(letters[reason])
        if row_marks:
            marks[(i, "certainty")] = ",".join(dict.fromkeys(row_marks))
        body.append(
            {
                "group": "",
                "label": label,
                "trial": trial,
                "pooled": pooled,
                "bayes": bayes,
                "studies": studies,
                "certainty": certainty,
            }
        )
        values.append(
            {
                "outcome_label": r.get("outcome_label"),
                "certainty": None if certainty == "Not assessed" else certainty.lower(),
                "symbols": certainty_symbols(r.get("certainty")),
                "marks": marks.get((i, "certainty"), ""),
                "n_downgrades": r.get("n_downgrades"),
            }
        )
    notes = [Note(text, mark) for text, mark in letters.items()]
    notes.append(
        Note(
            f"Trial: mean difference {contrast} in the instrument's units with its 95% confidence interval (CI) and "
            "p-value. Pooled: standardised mean difference (SMD) of the random-effects meta-analysis with the trial "
            "added, its 95% CI and 95% prediction interval (PI). Bayesian: posterior probability that the SMD exceeds "
            "the minimal important difference (MID). Studies (participants): studies and participants pooled. "
            "GRADE certainty: " + ", ".join(f"{GRADE_SYMBOLS[c]} {c}" for c in CERTAINTY_LEVELS) + "."
        )
    )
    methods = [m for m in dict.fromkeys(sof.get("method", pd.Series(dtype=object)).dropna().astype(str)) if m]
    if methods:
        notes.append(Note("Methods: " + "; ".join(methods)))
    if arm_abbreviations(design):
        notes.append(Note(arm_abbreviations(design)))
    title = (
        f"Table 1 Summary of findings: {design.arm_label(design.intervention)} compared with "
        f"{design.arm_label(design.control)}"
    )
    return ManuscriptTable(
        key="table1",
        title=title,
        stub_label="Outcome",
        columns=columns,
        body=pd.DataFrame(body, columns=["group", "label", *SOF_COLUMNS]),
        notes=tuple(notes),
        source="Layout: Cochrane Summary of findings table with GRADE certainty of the evidence",
        values=pd.DataFrame(values),
        marks=marks,
    )
