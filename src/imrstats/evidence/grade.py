"""GRADE certainty of the pooled evidence per outcome, and the Summary of Findings (SoF) table.

Plain functions on numbers and data frames; no I/O. The rules are module constants: each is the text of the
``rule`` column of ``evidence_grade.csv`` and is printed verbatim in docs/grade.md (a test checks that), so
the rule shown is the rule applied.

Evidence from randomised trials starts at **high** (GRADE Handbook, ch. 5). Five domains may each lower it by
one or two levels (0, -1, -2); the certainty is 4 + the sum of the downgrades (4 high, 3 moderate, 2 low,
1 or less very low). Every rating comes with a ``reason``: a sentence computed from the data that quotes the
numbers the rule looked at. The inputs are the pooled fit **with the user's trial** (random effects, the
meta stage's estimator, Knapp-Hartung as configured) and one row per study of that fit.

The study frame ``studies`` has one row per pooled study: ``study``, ``yi``, ``vi``, ``n`` (participants;
NaN when unknown), ``is_trial``, ``rob`` (overall risk of bias: RoB 2 "low" / "some concerns" / "high", or
ROBINS-I levels, or None when not assessed), ``rob_source`` and ``indirectness`` ("no concerns" / "some
concerns" / "serious concerns", or None), ``indirectness_source``; `study_judgements` builds it.

References: GRADE Handbook (Schünemann et al. 2013); Guyatt et al. 2011, J Clin Epidemiol 64 (GRADE
guidelines 4-8: risk of bias, publication bias, imprecision, inconsistency, indirectness); Cochrane Handbook
ch. 14 (Summary of Findings tables) and 13.3.5.4 (funnel-based tests); Sterne et al. 2019, BMJ 366:l4898
(RoB 2); Sterne et al. 2016, BMJ 355:i4919 (ROBINS-I).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from imrstats.report.format import format_number as fmt
from imrstats.report.format import format_p

DOMAINS = ("risk_of_bias", "inconsistency", "indirectness", "imprecision", "publication_bias")
DOMAIN_NAMES = {
    "risk_of_bias": "Risk of bias",
    "inconsistency": "Inconsistency",
    "indirectness": "Indirectness",
    "imprecision": "Imprecision",
    "publication_bias": "Publication bias",
}
LEVELS = {4: "high", 3: "moderate", 2: "low", 1: "very low"}
START = 4  # randomised evidence starts at high

# the levels of the thresholds (a rule's numbers; the rule texts below quote them)
ROB_HIGH_ONE, ROB_HIGH_TWO, ROB_CONCERNS_ONE = 0.25, 0.50, 0.50
I2_ONE, I2_TWO = 50.0, 75.0
INDIRECT_ONE = 0.50
EGGER_ALPHA, MIN_K_FUNNEL, MIN_K_HETEROGENEITY = 0.10, 10, 3
OIS_ALPHA, OIS_POWER = 0.05, 0.80

RULE_RISK_OF_BIAS = (
    "Weights: the random-effects weights 1/(v_i + tau^2) of the pooled fit with the trial, as shares of their sum. "
    "Down 2 if studies at high overall risk of bias hold >= 50% of the weight; down 1 if they hold >= 25%, or if "
    "studies at high risk and studies with some concerns together hold >= 50%; otherwise not downgraded. ROBINS-I "
    "'serious' and 'critical' count as high, 'moderate' and 'no information' as some concerns. A study whose risk "
    "of bias was not assessed (the user's trial unless evidence.trial_risk_of_bias is set) counts as some concerns."
)
RULE_INCONSISTENCY = (
    "With k >= 3 studies: down 2 if I^2 >= 75% and the 95% range of the true study effects (pooled estimate "
    "+/- 1.96 tau) includes both an effect <= -MID and one >= +MID; down 1 if I^2 >= 50% or that range includes "
    "both; otherwise not downgraded. The 95% prediction interval is reported beside it but not used, because with "
    "few studies its width is mostly the uncertainty of the pooled estimate (Knapp-Hartung t(k - 1)), which the "
    "imprecision domain rates. With k < 3: not downgraded, because heterogeneity cannot be assessed."
)
RULE_INDIRECTNESS = (
    "Down 1 if studies judged 'serious concerns' for indirectness (population, intervention, comparator, "
    "outcomes) hold >= 50% of the random-effects weight; otherwise not downgraded. The user's trial is judged by "
    "evidence.trial_indirectness (default 'no concerns': direct evidence); a published study without a judgement "
    "is counted as not assessed, not as serious."
)
RULE_IMPRECISION = (
    "Minimally contextualised, thresholds 0 and the MID (SMD, meta.mid). Down 2 if the 95% CI of the pooled SMD "
    "includes both an effect <= -MID and one >= +MID. Otherwise down 1 if the CI includes 0 and an effect at or "
    "beyond the MID in either direction (ci_low <= 0 <= ci_high and (ci_low <= -MID or ci_high >= +MID)), or if "
    "the total number of participants is below the optimal information size OIS = 4 (z_0.975 + z_0.80)^2 / MID^2 "
    "(two groups of equal size, two-sided alpha 0.05, power 0.80, rounded up); otherwise not downgraded."
)
RULE_PUBLICATION_BIAS = (
    "With k < 10 studies: not downgraded, because funnel-based tests are not informative with fewer than 10 "
    "studies (Cochrane Handbook 13.3.5.4). With k >= 10: down 1 if Egger's regression test (the pooled model "
    "with the standard error as predictor) gives p < 0.10; otherwise not downgraded."
)
RULE_CERTAINTY = (
    "Randomised evidence starts at high (4). Certainty = 4 + the sum of the five domains' downgrades: 4 high, "
    "3 moderate, 2 low, 1 or less very low."
)
RULES = {
    "risk_of_bias": RULE_RISK_OF_BIAS,
    "inconsistency": RULE_INCONSISTENCY,
    "indirectness": RULE_INDIRECTNESS,
    "imprecision": RULE_IMPRECISION,
    "publication_bias": RULE_PUBLICATION_BIAS,
}

# overall risk-of-bias judgements on one scale (RoB 2's)
ROB_LEVEL = {
    "low": "low",
    "some concerns": "some concerns",
    "high": "high",
    "moderate": "some concerns",  # ROBINS-I
    "no information": "some concerns",
    "serious": "high",
    "critical": "high",
}
NOT_ASSESSED = "not assessed"

# the columns of the two output tables (the shared report contract)
GRADE_COLUMNS = ["outcome_label", "domain", "downgrade", "reason", "rule"]
SOF_COLUMNS = [
    "outcome_label",
    "outcome_name",
    "instrument",
    "timepoint",
    "is_primary",
    "trial_md",
    "trial_md_ci_low",
    "trial_md_ci_high",
    "trial_p",
    "trial_g",
    "trial_g_ci_low",
    "trial_g_ci_high",
    "trial_n",
    "k",
    "n_participants",
    "pooled_smd",
    "pooled_ci_low",
    "pooled_ci_high",
    "pi_low",
    "pi_high",
    "i2",
    "tau",
    "bayes_mean",
    "bayes_ci_low",
    "bayes_ci_high",
    "prob_gt_0",
    "prob_gt_mid",
    "mid",
    "certainty",
    "n_downgrades",
    "footnotes",
    "method",
]


# ---------------------------------------------------------------------------------------------
# Helpers


def _pct(share: float) -> str:
    return f"{fmt(100 * share, 1)}%"


def _names(frame: pd.DataFrame) -> str:
    return ", ".join(str(s) for s in frame["study"]) if len(frame) else "none"


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def optimal_information_size(mid: float, alpha: float = OIS_ALPHA, power: float = OIS_POWER) -> int:
    """Total participants (two equal groups) needed to detect a standardised difference ``mid`` with a two-sided
    test at ``alpha`` and ``power``: N = 2 x 2 (z_{1-alpha/2} + z_power)^2 / mid^2, rounded up (GRADE guidelines 6,
    Guyatt et al. 2011, J Clin Epidemiol 64:1283)."""
    if not mid > 0:
        raise ValueError(f"the MID must be > 0 for an optimal information size; got {mid}")
    z = float(stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power))
    return int(math.ceil(2 * 2 * z**2 / mid**2 - 1e-9))


def weight_shares(vi, tau2: float) -> np.ndarray:
    """Random-effects inverse-variance weights 1/(v_i + tau^2) as shares of their sum (tau^2 NaN: 0)."""
    v = np.asarray(vi, dtype=float)
    t2 = 0.0 if tau2 is None or math.isnan(tau2) else float(tau2)
    w = 1.0 / (v + t2)
    return w / w.sum()


def certainty(downgrades) -> str:
    """The certainty level from the domains' downgrades (each 0, -1 or -2): 4 + their sum, floored at very low."""
    return LEVELS[max(1, START + int(sum(downgrades)))]


def study_judgements(
    studies: pd.DataFrame,
    rob_overall: pd.DataFrame | None,
    indirectness: pd.DataFrame | None,
    *,
    trial_rob: str | None = None,
    trial_indirectness: str = "no concerns",
) -> pd.DataFrame:
    """``studies`` (study, yi, vi, n, is_trial) with each study's overall risk of bias (``rob``, on RoB 2's
    scale via ROB_LEVEL; None = not assessed) and indirectness judgement, and where each came from
    (``rob_source``, ``indirectness_source``). ``rob_overall``: the overall row per study (study, tool,
    judgement; `imrstats.evidence.risk_of_bias.overall_by_study`); ``indirectness``: study, judgement. The
    trial takes ``trial_rob`` (None: not assessed) and ``trial_indirectness`` from the settings."""
    rob_map = {} if rob_overall is None else dict(zip(rob_overall["study"], rob_overall["judgement"]))
    tool_map = (
        {} if rob_overall is None or "tool" not in rob_overall else dict(zip(rob_overall["study"], rob_overall["tool"]))
    )
    ind_map = {} if indirectness is None else dict(zip(indirectness["study"], indirectness["judgement"]))
    out = studies.copy()
    robs, rob_src, inds, ind_src = [], [], [], []
    for study, is_trial in zip(out["study"], out["is_trial"].astype(bool)):
        if is_trial:
            robs.append(trial_rob)
            rob_src.append("evidence.trial_risk_of_bias" if trial_rob else NOT_ASSESSED)
            inds.append(trial_indirectness)
            ind_src.append("evidence.trial_indirectness")
            continue
        judgement = rob_map.get(study)
        if judgement is not None and str(judgement) not in ROB_LEVEL:
            raise ValueError(f"{study}: unknown overall risk-of-bias judgement {judgement!r}")
        robs.append(None if judgement is None else ROB_LEVEL[str(judgement)])
        rob_src.append(f"{tool_map.get(study, 'risk of bias')} overall" if judgement is not None else NOT_ASSESSED)
        ind = ind_map.get(study)
        inds.append(ind)
        ind_src.append("indirectness table" if ind is not None else NOT_ASSESSED)
    return out.assign(rob=robs, rob_source=rob_src, indirectness=inds, indirectness_source=ind_src)


# ---------------------------------------------------------------------------------------------
# The five domains: each returns (downgrade, reason)


def rate_risk_of_bias(studies: pd.DataFrame, tau2: float) -> tuple[int, str]:
    """RULE_RISK_OF_BIAS on ``studies`` (study, vi, rob, is_trial; rob None = not assessed)."""
    share = weight_shares(studies["vi"], tau2)
    rob = studies["rob"].where(studies["rob"].notna(), NOT_ASSESSED).astype(str)
    high = float(share[(rob == "high").to_numpy()].sum())
    concerns_mask = rob.isin(["some concerns", NOT_ASSESSED]).to_numpy()
    concerns = float(share[concerns_mask].sum())
    if high >= ROB_HIGH_TWO:
        grade = -2
    elif high >= ROB_HIGH_ONE or high + concerns >= ROB_CONCERNS_ONE:
        grade = -1
    else:
        grade = 0
    unassessed = studies.loc[(rob == NOT_ASSESSED).to_numpy()]
    high_names, concern_names = _names(studies.loc[(rob == "high").to_numpy()]), _names(studies.loc[concerns_mask])
    parts = [
        f"High risk of bias: {_pct(high)} of the random-effects weight ({high_names})",
        f"high risk or some concerns together: {_pct(high + concerns)} (some concerns: {concern_names})",
    ]
    if len(unassessed):
        who = ", ".join(
            f"{s} (the user's trial)" if t else str(s) for s, t in zip(unassessed["study"], unassessed["is_trial"])
        )
        parts.append(f"not assessed, so counted as some concerns: {who}")
    verdict = {
        -2: "high risk >= 50%: down 2",
        -1: "high risk >= 25% or high risk and some concerns >= 50%: down 1",
        0: "high risk < 25% and high risk and some concerns < 50%: not downgraded",
    }[grade]
    return grade, "; ".join(parts) + f"; {verdict}."


def rate_inconsistency(
    k: int,
    i2: float,
    pi_low: float,
    pi_high: float,
    mid: float,
    *,
    estimate: float | None = None,
    tau2: float | None = None,
) -> tuple[int, str]:
    """RULE_INCONSISTENCY: I^2 (%), the 95% range of the true effects (``estimate`` +/- 1.96 sqrt(``tau2``))
    and, reported only, the 95% prediction interval of the pooled fit with k studies. Without ``estimate`` and
    ``tau2`` the prediction interval stands in for the range (the stricter reading)."""
    if k < MIN_K_HETEROGENEITY:
        return 0, (
            f"Heterogeneity cannot be assessed with k = {k} studies (the rule needs k >= {MIN_K_HETEROGENEITY}); "
            "not downgraded."
        )
    pi = f"[{fmt(pi_low)}, {fmt(pi_high)}]"
    if estimate is not None and tau2 is not None:
        half = float(stats.norm.ppf(0.975)) * math.sqrt(max(float(tau2), 0.0))
        low, high = float(estimate) - half, float(estimate) + half
        what = f"the 95% range of the true effects [{fmt(low)}, {fmt(high)}] (tau = {fmt(math.sqrt(max(tau2, 0.0)))})"
        shown_pi = f"; the 95% prediction interval {pi} is reported, not rated"
    else:
        low, high, what, shown_pi = pi_low, pi_high, f"the 95% prediction interval {pi}", ""
    spans = bool(low <= -mid and high >= mid)
    high_i2, very_high_i2 = i2 >= I2_ONE, i2 >= I2_TWO
    grade = -2 if very_high_i2 and spans else (-1 if high_i2 or spans else 0)
    span_text = (
        f"includes both <= -{fmt(mid)} and >= +{fmt(mid)}"
        if spans
        else f"does not include both <= -{fmt(mid)} and >= +{fmt(mid)}"
    )
    verdict = {-2: "down 2", -1: "down 1", 0: "not downgraded"}[grade]
    return grade, f"k = {k}: I^2 = {fmt(i2, 1)}%; {what} {span_text}{shown_pi}; {verdict}."


def rate_indirectness(studies: pd.DataFrame, tau2: float) -> tuple[int, str]:
    """RULE_INDIRECTNESS on ``studies`` (study, vi, indirectness; None = not assessed)."""
    share = weight_shares(studies["vi"], tau2)
    judgement = studies["indirectness"].where(studies["indirectness"].notna(), NOT_ASSESSED).astype(str)
    serious_mask = (judgement == "serious concerns").to_numpy()
    serious = float(share[serious_mask].sum())
    grade = -1 if serious >= INDIRECT_ONE else 0
    text = (
        f"Studies with serious concerns about indirectness hold {_pct(serious)} of the random-effects weight "
        f"({_names(studies.loc[serious_mask])})"
    )
    some = studies.loc[(judgement == "some concerns").to_numpy()]
    if len(some):
        text += f"; some concerns: {_names(some)}"
    missing = studies.loc[(judgement == NOT_ASSESSED).to_numpy()]
    if len(missing):
        text += (
            f"; not assessed: {_names(missing)} ({_pct(float(share[(judgement == NOT_ASSESSED).to_numpy()].sum()))})"
        )
    trial = studies.loc[studies["is_trial"].astype(bool)]
    if len(trial):
        text += f"; the user's trial: {trial['indirectness'].iloc[0]} (evidence.trial_indirectness)"
    return grade, text + ("; >= 50%: down 1." if grade else "; below 50%: not downgraded.")


def rate_imprecision(
    ci_low: float, ci_high: float, n_total: float, mid: float, *, n_unknown: int = 0, ois: int | None = None
) -> tuple[int, str]:
    """RULE_IMPRECISION: the pooled SMD's 95% CI against 0 and +/- ``mid``, and the total N against the OIS.
    ``n_unknown``: studies whose N is unknown (left out of ``n_total``; said in the reason)."""
    ois = optimal_information_size(mid) if ois is None else ois
    both_mids = bool(ci_low <= -mid and ci_high >= mid)
    null_and_mid = bool(ci_low <= 0 <= ci_high and (ci_low <= -mid or ci_high >= mid))
    short = bool(n_total < ois)
    grade = -2 if both_mids else (-1 if null_and_mid or short else 0)
    ci = f"95% CI [{fmt(ci_low)}, {fmt(ci_high)}]"
    if both_mids:
        ci_text = f"the {ci} includes both <= -{fmt(mid)} and >= +{fmt(mid)} (the MID)"
    elif null_and_mid:
        ci_text = f"the {ci} includes 0 and an effect at or beyond the MID of {fmt(mid)}"
    elif ci_low <= 0 <= ci_high:
        ci_text = f"the {ci} includes 0 but no effect at or beyond the MID of {fmt(mid)}"
    else:
        ci_text = f"the {ci} excludes 0"
    n_text = f"total N = {int(n_total)} {'<' if short else '>='} OIS = {ois}"
    if n_unknown:
        n_text += f" (N unknown for {_plural(n_unknown, 'study', 'studies')}, not counted)"
    verdict = {-2: "down 2", -1: "down 1", 0: "not downgraded"}[grade]
    return grade, f"{ci_text[0].upper()}{ci_text[1:]}; {n_text}; {verdict}."


def rate_publication_bias(k: int, egger_p: float) -> tuple[int, str]:
    """RULE_PUBLICATION_BIAS: k studies and Egger's test p (used only when k >= 10)."""
    if k < MIN_K_FUNNEL:
        return 0, (
            f"Funnel-based tests are not informative with k = {k} studies (fewer than {MIN_K_FUNNEL}; Cochrane "
            "Handbook 13.3.5.4); not assessed, not downgraded."
        )
    if egger_p is None or math.isnan(egger_p):
        return 0, f"k = {k}, but Egger's test could not be computed; not downgraded."
    grade = -1 if egger_p < EGGER_ALPHA else 0
    return grade, (
        f"k = {k}: Egger's test p = {format_p(egger_p)} " + ("< 0.10: down 1." if grade else ">= 0.10: not downgraded.")
    )


# ---------------------------------------------------------------------------------------------
# One outcome, and the Summary of Findings


def grade_outcome(
    outcome_label: str, studies: pd.DataFrame, pooled: dict, *, mid: float, egger_p: float = math.nan
) -> pd.DataFrame:
    """The five domains for one outcome: a long frame (GRADE_COLUMNS; one row per domain in DOMAINS).

    ``studies``: one row per pooled study (`study_judgements`); ``pooled``: the pooled fit with the trial as a
    mapping with ``k``, ``estimate``, ``ci_low``, ``ci_high``, ``tau2``, ``i2`` (%), ``pi_low``, ``pi_high``;
    ``mid``: the MID on the SMD scale; ``egger_p``: Egger's test p of that fit (needed only when k >= 10)."""
    k = int(pooled["k"])
    if k != len(studies):
        raise ValueError(f"{outcome_label}: the pooled fit has k = {k} but {len(studies)} study rows were given")
    tau2 = float(pooled["tau2"])
    n = pd.to_numeric(studies["n"], errors="coerce")
    rated = {
        "risk_of_bias": rate_risk_of_bias(studies, tau2),
        "inconsistency": rate_inconsistency(
            k,
            float(pooled["i2"]),
            float(pooled["pi_low"]),
            float(pooled["pi_high"]),
            mid,
            estimate=float(pooled["estimate"]) if "estimate" in pooled else None,
            tau2=tau2 if "estimate" in pooled else None,
        ),
        "indirectness": rate_indirectness(studies, tau2),
        "imprecision": rate_imprecision(
            float(pooled["ci_low"]), float(pooled["ci_high"]), float(n.sum()), mid, n_unknown=int(n.isna().sum())
        ),
        "publication_bias": rate_publication_bias(k, egger_p),
    }
    return pd.DataFrame(
        [
            {
                "outcome_label": outcome_label,
                "domain": d,
                "downgrade": rated[d][0],
                "reason": rated[d][1],
                "rule": RULES[d],
            }
            for d in DOMAINS
        ],
        columns=GRADE_COLUMNS,
    )


def footnotes(grade: pd.DataFrame) -> str:
    """The reasons of one outcome's downgrades (the domains that lost a level; a summary of findings explains
    each downgrade, the evidence page lists every domain's reason), joined with " | ", each starting with its
    domain name; "" when nothing was downgraded."""
    down = grade["downgrade"].astype(int) != 0
    return " | ".join(f"{DOMAIN_NAMES[d]}: {r}" for d, r in zip(grade.loc[down, "domain"], grade.loc[down, "reason"]))


def summary_of_findings(grades: pd.DataFrame, numbers: pd.DataFrame) -> pd.DataFrame:
    """The SoF table: one row per outcome of ``numbers`` (in its order), SOF_COLUMNS exactly.

    ``numbers``: one row per outcome with every SoF column except ``certainty``, ``n_downgrades`` and
    ``footnotes``, which come from ``grades`` (the long frames of `grade_outcome`, concatenated):
    certainty by RULE_CERTAINTY, ``n_downgrades`` the number of levels lost (minus the sum), footnotes by
    `footnotes`. An outcome without GRADE rows raises."""
    rows = []
    for _, row in numbers.iterrows():
        grade = grades.loc[grades["outcome_label"] == row["outcome_label"]]
        if grade.empty:
            raise ValueError(f"no GRADE rows for outcome {row['outcome_label']!r}")
        rows.append(
            {
                **row.to_dict(),
                "certainty": certainty(grade["downgrade"]),
                "n_downgrades": int(-grade["downgrade"].sum()),
                "footnotes": footnotes(grade),
            }
        )
    out = pd.DataFrame(rows)
    missing = [c for c in SOF_COLUMNS if c not in out.columns]
    if missing:
        raise ValueError(f"the SoF numbers lack columns {missing}")
    return out[SOF_COLUMNS]
