"""Reference-based multiple imputation for estimands with intercurrent events (ICH E9(R1)), as rbmi defines it
(Gower-Page et al. 2022; Carpenter, Roger & Kenward 2013; Wolbers et al. 2022).

The parts of one module:

1. Intercurrent events and strategies: the ICE table (participant, first visit affected, strategy), the strategies
   MAR, JR (jump to reference), CR (copy reference), CIR (copy increments in reference) and LMCF (last mean carried
   forward), i.e. how a participant's marginal imputation mean and covariance are composed from the MMRM's beta and
   Sigma; and conditional mean imputation with jackknife inference (Wolbers et al. 2022).
2. Bayesian multiple imputation (rbmi's ``method_bayes``): posterior draws of the MMRM's beta and unstructured Sigma
   by a Gibbs sampler with data augmentation, one random imputation per draw under each participant's strategy, an
   ANCOVA per visit on each completed data set, and Rubin's rules (Barnard-Rubin df) with the Monte Carlo error of
   the pooled numbers.

Part 3 adds delta adjustment and the two-dimensional tipping point; part 4 bootstrap inference for conditional mean
imputation (Wolbers et al. 2022) and the study's MMRM as the analysis of each completed data set, beside the ANCOVA.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from imrstats.core.seeds import spawn_generator
from imrstats.errors import AnalysisError, InputError, SettingsError
from imrstats.results import Estimate, ResultMixin, summary_block, to_frame
from imrstats.trial.design import StudyDesign, analysable_rows, covariate_dummies, long_format, mmrm_design
from imrstats.trial.mmrm.batch import fit_mmrm_many
from imrstats.trial.mmrm.ddf import satterthwaite_df
from imrstats.trial.mmrm.design import MMRMDesign, reference_grid
from imrstats.trial.mmrm.fit import fit_mmrm_grid
from imrstats.trial.rubin import barnard_rubin_df, pool_rubin_many

# ==================================================================================================
# Part 1: intercurrent events, strategies, conditional mean imputation with the jackknife
# ==================================================================================================

STRATEGIES = ("MAR", "JR", "CR", "CIR", "LMCF")
STRATEGY_NAMES = {
    "MAR": "missing at random (own arm)",
    "JR": "jump to reference",
    "CR": "copy reference",
    "CIR": "copy increments in reference",
    "LMCF": "last mean carried forward",
}
ICE_COLUMNS = ("id", "visit", "strategy")
# the inference and analysis choices of conditional mean imputation (Part 4)
CONDMEAN_INFERENCES = ("jackknife", "bootstrap")
BOOTSTRAP_CIS = ("percentile", "normal")
ANALYSES = ("ancova", "mmrm")
BOOTSTRAP_STREAM = 2  # the random stream of the bootstrap samples under the seed (0 and 1: the Bayesian draws)
BOOTSTRAP_FAILURE_THRESHOLD = 0.01  # failed fits allowed, as a share of B (rbmi's method_condmean threshold)
MMRM_BATCH = 64  # completed data sets fitted together by the MMRM engine (bounds the memory of one batch)


def trial_frame_from_long(
    long: pd.DataFrame,
    *,
    id: str,
    visit: str,
    arm: str,
    outcome: str,
    baseline: str,
    visits,
    carry=(),
    source: str = "data",
) -> pd.DataFrame:
    """The trial frame (one row per participant: ``id``, ``arm``, ``baseline``, the ``carry`` columns, then one
    column per visit code holding the outcome, NaN = missing) from a long export with one row per observed
    participant x visit, as rbmi's ``expand_locf`` does: every participant gets every visit, a visit without a
    row (or with a blank outcome) is missing, and the arm, baseline and carried columns are the participant's
    own (they must agree across the participant's rows).

    ``visits``: the post-baseline visits in time order, as a sequence of the values in column ``visit`` (the
    codes are their texts) or a mapping value -> code. Bad input is one `InputError` naming ``source``, row,
    column, value and rule (row numbers count data rows from 1)."""
    mapping = (
        {str(k): str(v) for k, v in visits.items()} if isinstance(visits, dict) else {str(v): str(v) for v in visits}
    )
    if not mapping:
        raise InputError(f"{source}: no visits given; rule: name the post-baseline visits in time order")
    columns = [id, visit, arm, outcome, baseline, *carry]
    absent = [c for c in columns if c not in long.columns]
    if absent:
        raise InputError(f"{source}: column(s) {absent} not found; columns present: {list(long.columns)}")
    data = long.reset_index(drop=True)
    ids = data[id].astype("string").str.strip()
    codes = data[visit].astype("string").str.strip()
    for column, values in ((id, ids), (visit, codes), (arm, data[arm].astype("string").str.strip())):
        blank = values.isna() | (values == "")
        if blank.any():
            i = int(np.flatnonzero(blank.to_numpy())[0])
            raise InputError(f"{source}: row {i + 1}, column {column}, value '': blank; rule: a value is needed")
    unknown = ~codes.isin(list(mapping))
    if unknown.any():
        i = int(np.flatnonzero(unknown.to_numpy())[0])
        raise InputError(
            f"{source}: row {i + 1}, column {visit}, value '{codes.iloc[i]}': not a visit of the design; rule: one "
            f"of {list(mapping)}"
        )
    twice = pd.DataFrame({"id": ids, "visit": codes}).duplicated(keep="first")
    if twice.any():
        i = int(np.flatnonzero(twice.to_numpy())[0])
        raise InputError(
            f"{source}: row {i + 1}, columns {id} and {visit}, value '{ids.iloc[i]}' at '{codes.iloc[i]}': a second "
            "row for this participant and visit; rule: one row per participant and visit"
        )
    order = sorted(ids.unique(), key=str)
    out = pd.DataFrame({"id": order})
    for column, name in ((arm, "arm"), (baseline, "baseline"), *((c, c) for c in carry)):
        values = data[column]
        if column == arm:
            values = values.astype("string").str.strip()
        kept = pd.DataFrame({"id": ids, "value": values}).dropna(subset=["value"])
        per = kept.groupby("id", sort=False)["value"].nunique()
        clash = per[per > 1]
        if len(clash):
            who = str(clash.index[0])
            i = int(np.flatnonzero((ids == who).to_numpy())[0])
            seen = sorted(kept.loc[kept["id"] == who, "value"].astype(str).unique())
            raise InputError(
                f"{source}: row {i + 1}, column {column}, value '{seen[0]}': participant '{who}' has {seen}; rule: "
                "one value per participant"
            )
        first = kept.drop_duplicates("id").set_index("id")["value"]
        out[name] = out["id"].map(first)
        if column == arm:
            out[name] = out[name].astype(object)
        else:
            numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
            out[name] = out[name].astype(float) if numeric or name == "baseline" else out[name].astype(object)
    y = pd.to_numeric(data[outcome], errors="coerce")
    bad = y.isna() & data[outcome].notna() & (data[outcome].astype("string").str.strip() != "")
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"{source}: row {i + 1}, column {outcome}, value '{data[outcome].iloc[i]}': not a number; rule: the "
            "outcome is numeric (blank = missing)"
        )
    wide = pd.DataFrame({"id": ids, "visit": codes.map(mapping), "y": y}).pivot(index="id", columns="visit", values="y")
    for code in mapping.values():
        out[code] = out["id"].map(wide[code]) if code in wide.columns else np.nan
        out[code] = out[code].astype(float)
    return out


def _strategy_of_arm(strategy, design: StudyDesign, what: str) -> dict:
    """Strategy per arm from one name or a mapping arm -> name."""
    per = dict(strategy) if isinstance(strategy, dict) else {arm: strategy for arm in design.arms}
    for arm, name in per.items():
        if arm not in design.arms:
            raise SettingsError([(what, f"names arm {arm!r}, not {design.intervention!r} or {design.control!r}")])
        if name not in STRATEGIES:
            raise SettingsError([(what, f"strategy {name!r} for arm {arm!r} is not one of {list(STRATEGIES)}")])
    return per


def _visit_matrix(frame: pd.DataFrame, design: StudyDesign) -> np.ndarray:
    absent = [c for c in ("id", "arm", *design.visits) if c not in frame.columns]
    if absent:
        raise AnalysisError(
            f"trial frame lacks column(s) {absent}; build it with outcome_frame or trial_frame_from_long"
        )
    return frame[list(design.visits)].to_numpy(dtype=float)


def validate_ice(
    ice: pd.DataFrame, frame: pd.DataFrame, design: StudyDesign, *, source: str = "ICE table"
) -> pd.DataFrame:
    """Check an ICE table (rbmi's ``data_ice``: columns ``id``, ``visit``, ``strategy``; one row per participant
    with an intercurrent event, ``visit`` the first visit it affects) against the trial frame and the design.
    Rules: the columns exist; no blank; ``id`` is a participant of ``frame``; ``visit`` is a post-baseline visit
    code of ``design``; ``strategy`` is one of MAR, JR, CR, CIR, LMCF; one row per ``id``; LMCF needs a visit
    before the ICE. The first broken rule raises one `InputError` naming ``source``, row (data rows from 1),
    column, value and rule. Returns the table as text columns ``id``, ``visit``, ``strategy`` plus ``arm``, sorted
    by id."""
    absent = [c for c in ICE_COLUMNS if c not in ice.columns]
    if absent:
        raise InputError(f"{source}: column(s) {absent} not found; rule: an ICE table has columns {list(ICE_COLUMNS)}")
    table = ice.reset_index(drop=True)
    text = {c: table[c].astype("string").str.strip() for c in ICE_COLUMNS}
    arm_of = dict(zip(frame["id"].astype(str), frame["arm"]))
    checks = (
        ("id", lambda v: v in arm_of, "a participant of the trial frame"),
        ("visit", lambda v: v in design.visits, f"a post-baseline visit of the design, one of {list(design.visits)}"),
        ("strategy", lambda v: v in STRATEGIES, f"one of {list(STRATEGIES)}"),
    )
    for i in range(len(table)):
        for column, ok, rule in checks:
            value = text[column].iloc[i]
            if pd.isna(value) or value == "":
                raise InputError(f"{source}: row {i + 1}, column {column}, value '': blank; rule: a value is needed")
            if not ok(value):
                raise InputError(f"{source}: row {i + 1}, column {column}, value '{value}': rule: {rule}")
        if text["strategy"].iloc[i] == "LMCF" and text["visit"].iloc[i] == design.visits[0]:
            raise InputError(
                f"{source}: row {i + 1}, column visit, value '{design.visits[0]}': LMCF with the ICE at the first "
                "visit has no mean to carry forward; rule: LMCF needs a visit before the ICE (use CR or JR)"
            )
    twice = text["id"].duplicated()
    if twice.any():
        i = int(np.flatnonzero(twice.to_numpy())[0])
        raise InputError(
            f"{source}: row {i + 1}, column id, value '{text['id'].iloc[i]}': a second row for this participant; "
            "rule: one row per participant (the first visit the ICE affects)"
        )
    out = pd.DataFrame({c: text[c].astype(object).to_numpy() for c in ICE_COLUMNS})
    out["arm"] = out["id"].map(arm_of)
    return out.sort_values("id", kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class DerivedIce:
    """An ICE table derived from the data by a rule, with its counts per arm (`ice_counts`) and the rule's text."""

    table: pd.DataFrame
    counts: pd.DataFrame
    rule: str


def ice_counts(ice: pd.DataFrame, frame: pd.DataFrame, design: StudyDesign, *, unclassified=None) -> pd.DataFrame:
    """Per arm: participants, ICEs (by strategy and by the first visit affected), participants without an ICE,
    the missing values imputed under MAR (intermittent: before the ICE, or in a participant without an ICE),
    the missing values at and after an ICE, the observed values after an ICE (kept in the analysis; left out of
    the imputation model's fit under a non-MAR strategy) and ``unclassified`` (participants a rule could not
    classify, e.g. attendance not recorded; a mapping arm -> count)."""
    Y = _visit_matrix(frame, design)
    ids = frame["id"].astype(str).to_numpy()
    T = len(design.visits)
    position = {v: k for k, v in enumerate(design.visits)}
    index = np.full(len(ids), T)
    where = pd.Series(np.arange(len(ids)), index=ids)
    if len(ice):
        index[where[ice["id"].astype(str)].to_numpy()] = ice["visit"].astype(str).map(position).to_numpy()
    post = np.arange(T)[None, :] >= index[:, None]
    missing = np.isnan(Y)
    rows = []
    for arm in design.arms:
        sel = (frame["arm"] == arm).to_numpy()
        mine = ice.loc[ice["arm"] == arm] if "arm" in ice.columns else ice.iloc[0:0]
        row = {
            "arm": arm,
            "n_participants": int(sel.sum()),
            "n_ice": int(len(mine)),
            "n_no_ice": int(sel.sum() - len(mine)),
            "n_unclassified": int((unclassified or {}).get(arm, 0)),
            "n_missing_mar": int((missing & ~post)[sel].sum()),
            "n_missing_after_ice": int((missing & post)[sel].sum()),
            "n_observed_after_ice": int((~missing & post)[sel].sum()),
        }
        for name in STRATEGIES:
            row[f"n_{name.lower()}"] = int((mine["strategy"] == name).sum())
        for visit in design.visits:
            row[f"ice_at_{visit}"] = int((mine["visit"].astype(str) == visit).sum())
        rows.append(row)
    return pd.DataFrame(rows)


def ice_from_dropout(frame: pd.DataFrame, design: StudyDesign, *, strategy="JR") -> DerivedIce:
    """The ICE of each participant whose visits end in a run of missing values (rbmi's usual derivation on the
    antidepressant data: study drug discontinuation): the ICE is at the first visit of that final monotone run,
    i.e. the first visit after which every visit is missing; a participant with every visit missing has it at
    the first visit. A missing value followed by an observed one is intermittent: no ICE, imputed under MAR.
    ``strategy``: one name for every arm or a mapping arm -> name. Counted per arm (`ice_counts`)."""
    per = _strategy_of_arm(strategy, design, "strategy")
    observed = ~np.isnan(_visit_matrix(frame, design))
    T = observed.shape[1]
    last = np.where(observed.any(axis=1), T - 1 - np.argmax(observed[:, ::-1], axis=1), -1)
    has = last < T - 1
    arms = frame["arm"].to_numpy()
    table = pd.DataFrame(
        {
            "id": frame["id"].astype(str).to_numpy()[has],
            "visit": np.array(design.visits, dtype=object)[last[has] + 1],
            "strategy": [per.get(a, "MAR") for a in arms[has]],
        }
    )
    table = validate_ice(table, frame, design, source="ICE table derived from dropout")
    return DerivedIce(
        table,
        ice_counts(table, frame, design),
        "ICE at the first visit of the final run of missing visits (monotone dropout); intermittent missing "
        "values before it imputed under MAR",
    )


def ice_from_attendance(
    frame: pd.DataFrame,
    design: StudyDesign,
    *,
    min_sessions: int,
    visit: str,
    strategy="JR",
    arms=None,
    column: str = "sessions_attended",
) -> DerivedIce:
    """An ICE at ``visit`` for each participant of ``arms`` (default: the intervention arm, the one that offers
    sessions) who attended fewer than ``min_sessions`` sessions (column ``column`` of the trial frame).
    Participants whose attendance is not recorded get no ICE and are counted as unclassified per arm."""
    if visit not in design.visits:
        raise SettingsError([("visit", f"{visit!r} is not one of the post-baseline visits {list(design.visits)}")])
    if column not in frame.columns:
        raise AnalysisError(f"trial frame lacks column {column!r}: attendance is needed for this ICE rule")
    per = _strategy_of_arm(strategy, design, "strategy")
    arms = (design.intervention,) if arms is None else tuple(arms)
    for arm in arms:
        if arm not in design.arms:
            raise SettingsError([("arms", f"names arm {arm!r}, not {design.intervention!r} or {design.control!r}")])
    sessions = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
    in_arms = frame["arm"].isin(arms).to_numpy()
    has = in_arms & (sessions < min_sessions)
    unknown = in_arms & np.isnan(sessions)
    arm_values = frame["arm"].to_numpy()
    table = pd.DataFrame(
        {
            "id": frame["id"].astype(str).to_numpy()[has],
            "visit": visit,
            "strategy": [per.get(a, "MAR") for a in arm_values[has]],
        }
    )
    table = validate_ice(table, frame, design, source="ICE table derived from attendance")
    unclassified = {arm: int((unknown & (arm_values == arm)).sum()) for arm in design.arms}
    return DerivedIce(
        table,
        ice_counts(table, frame, design, unclassified=unclassified),
        f"ICE at {visit} for fewer than {min_sessions} sessions attended ({', '.join(arms)} arm)",
    )


def strategy_means(strategy, mu_own: np.ndarray, mu_ref: np.ndarray, ice_index) -> np.ndarray:
    """Each participant's marginal mean over the visits under its strategy (Carpenter, Roger & Kenward 2013;
    rbmi's strategy functions), from its mean under its own arm ``mu_own`` and under the reference arm
    ``mu_ref`` (both X beta, shape (..., n, T)); ``ice_index`` (n,) the index of the first visit the ICE affects
    (T: no ICE), ``strategy`` (n,) names. With k the ICE index:
    MAR: own; JR: own before k, reference from k; CR: reference at every visit; CIR: own before k, then own at
    k - 1 plus the reference's increments from k - 1 (CR when k = 0); LMCF: own before k, own at k - 1 from k."""
    strategy = np.asarray(strategy, dtype=object)
    ice_index = np.asarray(ice_index, dtype=int)
    mu_own, mu_ref = np.broadcast_arrays(np.asarray(mu_own, dtype=float), np.asarray(mu_ref, dtype=float))
    T = mu_own.shape[-1]
    post = np.arange(T)[None, :] >= ice_index[:, None]
    unknown = sorted(set(strategy) - set(STRATEGIES))
    if unknown:
        raise AnalysisError(f"unknown strategy {unknown}; the strategies are {list(STRATEGIES)}")
    if ((strategy == "LMCF") & (ice_index == 0)).any():
        raise AnalysisError("LMCF with the ICE at the first visit has no mean to carry forward")
    last = np.broadcast_to(np.clip(ice_index - 1, 0, T - 1)[:, None], mu_own.shape[:-1] + (1,))
    own_last = np.take_along_axis(mu_own, last, axis=-1)
    ref_last = np.take_along_axis(mu_ref, last, axis=-1)
    s = strategy[:, None]
    out = np.where((s == "JR") & post, mu_ref, mu_own)
    out = np.where(s == "CR", mu_ref, out)
    cir = np.where(ice_index[:, None] == 0, mu_ref, own_last + mu_ref - ref_last)
    out = np.where((s == "CIR") & post, cir, out)
    return np.where((s == "LMCF") & post, own_last, out)


def strategy_covariance(strategy: str, sigma_own: np.ndarray, sigma_ref: np.ndarray, ice_index: int) -> np.ndarray:
    """The joint covariance over the visits under a strategy (Carpenter, Roger & Kenward 2013): MAR and LMCF the
    own arm's Sigma; CR the reference's; JR and CIR, with the ICE at index k (blocks 1 = visits before k, 2 = from
    k; T own, R reference): Sigma_11 = T_11, Sigma_21 = R_21 R_11^-1 T_11, Sigma_22 = R_22 - R_21 R_11^-1 (R_11 -
    T_11) R_11^-1 R_12, so that the pre-ICE visits keep the own arm's distribution and the post-ICE visits given
    them follow the reference's regression and residual covariance (own when k = T, reference when k = 0).
    With one Sigma for both arms (the MMRM's) every strategy's covariance is that Sigma."""
    if strategy not in STRATEGIES:
        raise AnalysisError(f"unknown strategy {strategy!r}; the strategies are {list(STRATEGIES)}")
    sigma_own, sigma_ref = np.asarray(sigma_own, dtype=float), np.asarray(sigma_ref, dtype=float)
    T = sigma_own.shape[0]
    if strategy in ("MAR", "LMCF"):
        return sigma_own
    if strategy == "CR" or np.array_equal(sigma_own, sigma_ref):
        return sigma_ref
    k = int(ice_index)
    if k >= T:
        return sigma_own
    if k <= 0:
        return sigma_ref
    T11 = sigma_own[:k, :k]
    R11, R21, R22 = sigma_ref[:k, :k], sigma_ref[k:, :k], sigma_ref[k:, k:]
    B = np.linalg.solve(R11, R21.T).T  # R_21 R_11^-1
    S21 = B @ T11
    S22 = R22 - B @ (R11 - T11) @ B.T
    out = np.empty_like(sigma_own)
    out[:k, :k], out[k:, :k], out[:k, k:], out[k:, k:] = T11, S21, S21.T, S22
    return out


def strategy_distribution(strategy: str, mu_own, mu_ref, sigma_own, sigma_ref, ice_index: int):
    """(mean, covariance) of one participant's visits under ``strategy`` (`strategy_means`, `strategy_covariance`)."""
    mu = strategy_means([strategy], np.asarray(mu_own, float)[None], np.asarray(mu_ref, float)[None], [ice_index])[0]
    return mu, strategy_covariance(strategy, sigma_own, sigma_ref, ice_index)


def conditional_means(mu: np.ndarray, sigma: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Conditional mean imputation: ``y`` (n, T; NaN = missing) completed by E[Y_missing | Y_observed] under
    N(mu_i, Sigma): mu_M + Sigma_MO Sigma_OO^-1 (y_O - mu_O), participant by participant (Wolbers et al. 2022).
    ``mu`` (..., n, T) and ``sigma`` (..., T, T), one covariance per leading index (B parameter sets at once);
    returns (..., n, T) with the observed values kept."""
    mu = np.asarray(mu, dtype=float)
    sigma = np.asarray(sigma, dtype=float)
    y = np.asarray(y, dtype=float)
    observed = ~np.isnan(y)
    out = np.broadcast_to(np.where(observed, y, 0.0), mu.shape).copy()
    codes = observed @ (1 << np.arange(y.shape[1]))
    for code in np.unique(codes):
        rows = np.flatnonzero(codes == code)
        obs = observed[rows[0]]
        mis = ~obs
        if not mis.any():
            continue
        mu_r = mu[..., rows, :]
        if not obs.any():
            out[..., rows, :] = mu_r
            continue
        s_oo = sigma[..., obs, :][..., :, obs]
        s_om = sigma[..., obs, :][..., :, mis]
        A = np.linalg.solve(s_oo, s_om)  # (..., observed, missing)
        resid = y[rows][:, obs] - mu_r[..., :, obs]
        filled = mu_r[..., :, mis] + resid @ A
        block = out[..., rows, :]
        block[..., :, mis] = filled
        out[..., rows, :] = block
    return out


def ancova_by_visit(y: np.ndarray, Z: np.ndarray, weights: np.ndarray | None = None) -> dict:
    """ANCOVA per visit (rbmi's default analysis: outcome ~ arm + baseline [+ covariates] at each visit, by OLS)
    of completed data ``y`` (..., n, T) on the analysis design ``Z`` (n, r; column 0 the intercept, column 1 the
    intervention indicator), with ``weights`` (..., n) of 0 or 1 selecting the participants of each data set
    (e.g. leave-one-out samples). Returns arrays (..., T): ``contrast`` (intervention - control), ``lsmean_control``
    and ``lsmean_intervention``: the model's mean with every analysed participant's covariates and the arm set
    (rbmi's default ``counterfactual`` weights; the baseline at its mean)."""
    y = np.asarray(y, dtype=float)
    w = np.ones(y.shape[:-1]) if weights is None else np.asarray(weights, dtype=float)
    ZtW = Z.T * w[..., None, :]  # (..., r, n)
    coef = np.linalg.solve(ZtW @ Z, ZtW @ y)  # (..., r, T)
    zbar = (w @ Z) / w.sum(axis=-1, keepdims=True)  # (..., r)
    means = {}
    for name, value in (("lsmean_control", 0.0), ("lsmean_intervention", 1.0)):
        z = zbar.copy()
        z[..., 1] = value
        means[name] = np.einsum("...r,...rt->...t", z, coef)
    return {"contrast": coef[..., 1, :], **means}


def jackknife_se(estimates: np.ndarray) -> np.ndarray:
    """The jackknife SE of leave-one-out estimates (n, ...): sqrt((n - 1) / n * sum_i (theta_i - mean)^2)."""
    theta = np.asarray(estimates, dtype=float)
    n = theta.shape[0]
    return np.sqrt((n - 1) / n * ((theta - theta.mean(axis=0)) ** 2).sum(axis=0))


@dataclass(frozen=True)
class ImputationModel:
    """The MMRM imputation model of a trial with intercurrent events (rbmi's base imputation model), fitted by
    REML on the observed values with the values at and after an ICE under a non-MAR strategy left out.

    Per participant (``ids`` order): arm, ICE index (T = no ICE) and strategy; ``y`` the outcome grid (NaN =
    missing), ``fit_observed`` the cells the fit used; ``X`` and ``X_ref`` the design under the own arm and with
    the arm set to the reference arm; ``Z`` the analysis design (intercept, intervention, baseline, covariates).
    ``beta``, ``sigma``: the REML fit (one unstructured Sigma for both arms)."""

    ids: tuple
    arms: np.ndarray
    visits: tuple
    y: np.ndarray
    fit_observed: np.ndarray
    X: np.ndarray
    X_ref: np.ndarray
    Z: np.ndarray
    ice_index: np.ndarray
    strategy: np.ndarray
    reference_arm: str
    beta: np.ndarray
    sigma: np.ndarray
    converged: bool
    iterations: int
    notes: str
    design: StudyDesign
    n_excluded: int
    mmrm: MMRMDesign

    @property
    def treated(self) -> np.ndarray:
        return self.Z[:, 1] == 1.0

    def means(self, beta: np.ndarray | None = None) -> np.ndarray:
        """(n, T) marginal means under each participant's strategy at ``beta`` (default: the fit's)."""
        b = self.beta if beta is None else beta
        return strategy_means(self.strategy, self.X @ b, self.X_ref @ b, self.ice_index)

    def impute(self, beta: np.ndarray | None = None, sigma: np.ndarray | None = None) -> np.ndarray:
        """(n, T) the outcome completed by conditional mean imputation under each participant's strategy."""
        return conditional_means(self.means(beta), self.sigma if sigma is None else sigma, self.y)


def fit_imputation_model(
    frame: pd.DataFrame,
    ice: pd.DataFrame,
    design: StudyDesign,
    *,
    covariates=(),
    change: bool = False,
    reference: str | None = None,
) -> ImputationModel:
    """Fit the imputation model: the study's MMRM (``0 + visit + arm:visit`` + baseline by visit or common +
    ``covariates``, unstructured Sigma, REML; `imrstats.trial.design.mmrm_design`) to the trial frame's outcome
    (``change``: minus the baseline, as rbmi's CHANGE) with the values at and after each ICE under a non-MAR
    strategy left out of the fit (rbmi does so: they are kept for the imputation and the analysis). ``ice``: an
    ICE table (`validate_ice`); participants without an ICE are MAR. ``reference``: the reference arm of JR,
    CR and CIR (default: the control arm). Participants with a missing arm, baseline or covariate are left out
    and counted (``n_excluded``)."""
    reference = design.control if reference is None else str(reference)
    if reference not in design.arms:
        raise SettingsError([("reference", f"{reference!r} is not an arm; the arms are {list(design.arms)}")])
    rows, n_excluded = analysable_rows(frame, [*covariates, "baseline"], design)
    rows = rows.assign(_key=rows["id"].astype(str)).sort_values("_key", kind="stable").drop(columns="_key")
    rows = rows.reset_index(drop=True)
    ice = validate_ice(ice, frame, design)
    ice = ice.loc[ice["id"].isin(set(rows["id"].astype(str)))]
    Y = rows[list(design.visits)].to_numpy(dtype=float)
    baseline = rows["baseline"].to_numpy(dtype=float)
    if change:
        Y = Y - baseline[:, None]
    ids = tuple(rows["id"].astype(str))
    n, T = len(ids), len(design.visits)
    position = {v: k for k, v in enumerate(design.visits)}
    ice_index = np.full(n, T)
    strategy = np.full(n, "MAR", dtype=object)
    where = {v: i for i, v in enumerate(ids)}
    for pid, visit, name in ice[["id", "visit", "strategy"]].itertuples(index=False):
        ice_index[where[pid]], strategy[where[pid]] = position[visit], name
    long = long_format(rows, covariates, baseline, design=design)
    mdesign = mmrm_design(long, covariates, design)
    order = [where[str(v)] for v in mdesign.ids]
    if order != list(range(n)) or not mdesign.present.all():
        raise AnalysisError("the imputation model's design grid does not match the trial frame's participants")
    keep = (strategy == "MAR")[:, None] | (np.arange(T)[None, :] < ice_index[:, None])
    fit_observed = ~np.isnan(Y) & keep
    y_fit = np.where(fit_observed, Y, np.nan)
    fit = fit_mmrm_grid(mdesign, y_fit)
    if not fit.converged:
        raise AnalysisError(f"the imputation model (MMRM) did not converge: {fit.notes}")
    arm_cols = [j for j, term in enumerate(mdesign.grid_terms) if term[0] == "arm"]
    visit_cols = [j for j, term in enumerate(mdesign.grid_terms) if term[0] == "visit"]
    X_ref = mdesign.X.copy()
    X_ref[:, :, arm_cols] = mdesign.X[:, :, visit_cols] * float(reference == design.intervention)
    dummies, _ = covariate_dummies(rows, covariates)
    Z = np.column_stack([np.ones(n), (rows["arm"] == design.intervention).to_numpy(float), baseline, dummies])
    return ImputationModel(
        ids=ids,
        arms=rows["arm"].to_numpy(dtype=object),
        visits=tuple(design.visits),
        y=Y,
        fit_observed=fit_observed,
        X=mdesign.X,
        X_ref=X_ref,
        Z=Z,
        ice_index=ice_index,
        strategy=strategy,
        reference_arm=reference,
        beta=fit.beta,
        sigma=fit.sigma,
        converged=fit.converged,
        iterations=fit.iterations,
        notes=fit.notes,
        design=design,
        n_excluded=n_excluded,
        mmrm=mdesign,
    )


def imputation_means(model: ImputationModel, strategy: str | None = None) -> pd.DataFrame:
    """For each participant with an ICE, the marginal mean at each visit at and after the ICE under its strategy
    (or under ``strategy`` for all of them): long frame ``id``, ``arm``, ``strategy``, ``ice_visit``, ``visit``,
    ``mean_own`` (own arm, X beta), ``mean_reference`` (reference arm), ``mean`` (the strategy's), and
    ``imputed`` (the conditional mean given the participant's observed values; NaN where the visit is observed)."""
    names = model.strategy if strategy is None else np.full(len(model.ids), strategy, dtype=object)
    with_ice = model.ice_index < len(model.visits)
    names = np.where(with_ice, names, "MAR")
    own, ref = model.X @ model.beta, model.X_ref @ model.beta
    mean = strategy_means(names, own, ref, model.ice_index)
    imputed = conditional_means(mean, model.sigma, model.y)
    rows = []
    for i in np.flatnonzero(with_ice):
        for k in range(model.ice_index[i], len(model.visits)):
            rows.append(
                {
                    "id": model.ids[i],
                    "arm": model.arms[i],
                    "strategy": names[i],
                    "ice_visit": model.visits[model.ice_index[i]],
                    "visit": model.visits[k],
                    "mean_own": own[i, k],
                    "mean_reference": ref[i, k],
                    "mean": mean[i, k],
                    "imputed": imputed[i, k] if np.isnan(model.y[i, k]) else np.nan,
                }
            )
    return pd.DataFrame(rows)


def _without(design: MMRMDesign, keep: np.ndarray) -> MMRMDesign:
    """The MMRM design of the participants ``keep`` (a design to fit on its grid; it maps no data rows)."""
    return dataclasses.replace(
        design,
        X=design.X[keep],
        present=design.present[keep],
        ids=tuple(np.asarray(design.ids, dtype=object)[keep]),
        arm_of=design.arm_of[keep],
        numeric_values={k: v[keep] for k, v in design.numeric_values.items()},
        row_cell=np.empty(0, dtype=np.intp),
    )


def jackknife_completed(model: ImputationModel, betas: np.ndarray, sigmas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The data completed by conditional mean imputation at the full fit and at each leave-one-out fit
    (`jackknife_fits`): (n + 1, n, T), sample 0 the full one, and the ANCOVA weights (n + 1, n) that leave
    participant b - 1 out of sample b (every sample imputes every participant; the weights drop one)."""
    n = model.y.shape[0]
    beta_all = np.concatenate([model.beta[None], betas])
    sigma_all = np.concatenate([model.sigma[None], sigmas])
    mu = strategy_means(
        model.strategy,
        np.einsum("ntp,bp->bnt", model.X, beta_all),
        np.einsum("ntp,bp->bnt", model.X_ref, beta_all),
        model.ice_index,
    )
    completed = conditional_means(mu, sigma_all, model.y)
    weights = np.ones((n + 1, n))
    weights[np.arange(1, n + 1), np.arange(n)] = 0.0
    return completed, weights


def jackknife_fits(model: ImputationModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The imputation model refitted without each participant in turn, by the MMRM engine's batch fits
    (`fit_mmrm_many` with starts: every fit warm-started at the full fit's Sigma, each taking the Newton steps it
    takes alone). Participants are ordered by (visit pattern in the fit, arm), so the fits leaving out one
    participant of a group share their observed cells and arms and run in one batch. A fit that does not converge
    from the warm start is redone from the OLS start (`fit_mmrm_grid`). Returns (beta (n, p), sigma (n, T, T),
    converged (n,)) in participant order."""
    obs = model.fit_observed
    n, T = obs.shape
    for k, visit in enumerate(model.visits):
        for arm in model.design.arms:
            count = int((obs[:, k] & (model.arms == arm)).sum())
            if count < 2:
                raise AnalysisError(
                    f"the jackknife needs two {arm} participants with a value at {visit} in the imputation model; "
                    f"found {count}"
                )
    y = np.where(obs, model.y, np.nan)
    pattern = obs @ (1 << np.arange(T))
    treated = model.mmrm.arm_of
    order = np.lexsort((treated, pattern))
    ranked = _without(model.mmrm, order)
    y_ranked = y[order]
    p = model.X.shape[2]
    betas, sigmas = np.empty((n, p)), np.empty((n, T, T))
    converged = np.zeros(n, dtype=bool)
    keys = pattern[order] * 2 + treated[order]
    for key in np.unique(keys):
        members = np.flatnonzero(keys == key)  # positions in the ranked order
        keeps = [np.arange(n) != j for j in members]
        designs = [_without(ranked, keep) for keep in keeps]
        grids = np.stack([y_ranked[keep] for keep in keeps])
        starts = np.broadcast_to(model.sigma, (len(members), T, T))
        try:
            fits = fit_mmrm_many(designs, grids, starts=starts)
        except AnalysisError as err:
            who = [model.ids[order[j]] for j in members[:3]] + (["..."] if len(members) > 3 else [])
            raise AnalysisError(f"the imputation model without one of the participants {who}: {err}") from None
        for b, j in enumerate(members):
            i = order[j]
            betas[i], sigmas[i], converged[i] = fits.beta[b], fits.sigma[b], fits.converged[b]
            if not converged[i]:
                redo = fit_mmrm_grid(designs[b], grids[b])
                betas[i], sigmas[i], converged[i] = redo.beta, redo.sigma, redo.converged
    return betas, sigmas, converged


@dataclass(frozen=True)
class CondMeanResult(ResultMixin):
    """Reference-based conditional mean imputation with jackknife or bootstrap inference (Wolbers et al. 2022;
    rbmi's ``method_condmean(type = "jackknife")`` or ``(type = "bootstrap")``).

    ``estimates``: the intervention - control contrast per visit and each arm's LS mean per visit (ANCOVA per
    visit, or the study's MMRM, on the conditional-mean-completed data), with the jackknife SE and normal CI and
    p, or the bootstrap's percentile or normal CI and p (`bootstrap_pool`; column ``bootstrap_se``, the SD of the
    bootstrap estimates; ``se`` NaN for the percentile interval, as rbmi). ``ice_counts``: ICEs per arm
    (`ice_counts`). ``imputed``: per arm and visit, participants, observed and imputed values and the observed
    values left out of the imputation model's fit. ``jackknife_estimates`` (n, q) the leave-one-out estimates in
    ``estimates`` row order (empty with the bootstrap), ``bootstrap_estimates`` (B, q) and ``bootstrap_indices``
    (B, n) the bootstrap samples' estimates and participants (None with the jackknife); none written to JSON.
    ``n_failed``: bootstrap samples whose fit failed, each replaced by the next draw (``bootstrap_failures``:
    draw number and reason). ``fit_seconds``: wall time of the imputation model's REML fits."""

    estimates: pd.DataFrame
    ice_counts: pd.DataFrame
    imputed: pd.DataFrame
    reference_arm: str
    strategies: dict
    n_participants: int
    n_excluded: int
    n_fits: int
    fit_seconds: float
    seconds: float
    method: str
    notes: str
    level: float
    jackknife_estimates: np.ndarray
    inference: str = "jackknife"
    analysis_model: str = "ancova"
    n_samples: int = 0
    n_failed: int = 0
    seed: int | None = None
    bootstrap_ci: str | None = None
    bootstrap_failures: tuple = ()
    bootstrap_estimates: np.ndarray | None = None
    bootstrap_indices: np.ndarray | None = None

    # row-level arrays, and the wall times (not part of a result: outputs stay byte-identical across runs)
    _json_skip = ("jackknife_estimates", "bootstrap_estimates", "bootstrap_indices", "fit_seconds", "seconds")

    def to_frame(self) -> pd.DataFrame:
        return self.estimates

    def summary(self) -> str:
        lines = [
            ("participants (excluded)", f"{self.n_participants} ({self.n_excluded})"),
            ("reference arm", self.reference_arm),
            ("strategies", ", ".join(f"{k}: {v}" for k, v in self.strategies.items()) or "none (all MAR)"),
            ("REML fits", f"{self.n_fits} in {self.fit_seconds:.2f} s"),
        ]
        if self.inference == "bootstrap":
            lines.append(
                (
                    "bootstrap",
                    f"{self.n_samples} samples (seed {self.seed}, stratified by arm), {self.bootstrap_ci} CI; "
                    f"failed fits replaced: {self.n_failed}",
                )
            )
        return summary_block(
            f"Reference-based conditional mean imputation, {self.inference} inference",
            lines,
            self.estimates,
            [f"Method: {self.method}", self.notes],
        )


def reference_based_condmean(
    frame: pd.DataFrame,
    ice: pd.DataFrame,
    design: StudyDesign,
    *,
    covariates=(),
    change: bool = False,
    reference: str | None = None,
    level: float = 0.95,
    outcome: str = "",
    delta: pd.DataFrame | None = None,
    inference: str = "jackknife",
    n_samples: int | None = None,
    seed: int | None = None,
    bootstrap_ci: str = "percentile",
    analysis: str = "ancova",
    failure_threshold: float = BOOTSTRAP_FAILURE_THRESHOLD,
) -> CondMeanResult:
    """Conditional mean imputation under each participant's ICE strategy, ANCOVA per visit (or the study's MMRM),
    jackknife or bootstrap inference (Wolbers et al. 2022; rbmi ``method_condmean`` + ``ancova`` + ``pool``).

    1. `fit_imputation_model` on the trial frame (``change``: analyse the change from baseline); 2. every
    missing value is imputed by its conditional mean given the participant's observed values under the joint
    distribution its strategy composes (`strategy_means`, `strategy_covariance`); 3. the analysis of the
    completed data (`analyse_completed`): ``analysis="ancova"``, ANCOVA at each visit on intercept, arm, baseline
    and ``covariates`` (`ancova_by_visit`), or ``"mmrm"``, the study's MMRM (unstructured Sigma, the baseline by
    visit or common as the design says, ``covariates``), its contrasts and LS means per visit; 4. inference:

    ``inference="jackknife"`` (default; deterministic): all of it again without each participant in turn (n REML
    refits warm-started at the full fit); SE = the jackknife SE (`jackknife_se`), CI estimate -/+ z se and p from
    the normal distribution, as rbmi's ``pool``.

    ``inference="bootstrap"``: steps 1-3 on ``n_samples`` bootstrap samples of the participants, drawn with
    replacement within each arm (`bootstrap_samples`, seeded by ``seed``: the same seed gives the same numbers),
    each refit warm-started at the full fit's Sigma (`condmean_bootstrap_fits`); a sample whose fit fails
    (not estimable on the sample, or not converged) is counted, named in the notes and replaced by the next
    draw, more than ceil(``failure_threshold`` x ``n_samples``) failures raise `AnalysisError` (rbmi's
    ``threshold``). The estimate is the full-data one (the jackknife's); ``bootstrap_ci="percentile"``: CI the
    empirical quantiles of the sample estimates, p by inverting it, no SE; ``"normal"``: SE the SD of the sample
    estimates, normal CI and p (`bootstrap_pool`). Effects are intervention - control.

    ``delta``: a delta table (`delta_template` filled in, or any frame with ``id``, ``visit``, ``delta``;
    `validate_delta`): each delta is added to its imputed value after the imputation and before the analysis, in
    the full sample and in every resampled one (rbmi's ``analyse(delta = )``); observed values are never
    shifted. Without it (None) nothing changes."""
    start = time.perf_counter()
    check_condmean_settings(inference, n_samples, seed, bootstrap_ci, analysis, failure_threshold)
    model = fit_imputation_model(frame, ice, design, covariates=covariates, change=change, reference=reference)
    shift = None if delta is None else delta_shift(validate_delta(delta, frame, design), model)
    n, T = model.y.shape
    notes = []
    if model.n_excluded:
        notes.append(f"{model.n_excluded} participant(s) left out for a missing arm, baseline or covariate")
    boot = None
    if inference == "jackknife":
        betas, sigmas, converged = jackknife_fits(model)
        fit_seconds = time.perf_counter() - start  # the full fit (with its design) and the n leave-one-out fits
        if not converged.all():
            who = [model.ids[i] for i in np.flatnonzero(~converged)][:5]
            raise AnalysisError(f"{int((~converged).sum())} leave-one-out refit(s) did not converge (without {who})")
        completed, weights = jackknife_completed(model, betas, sigmas)
    else:
        boot = condmean_bootstrap_fits(
            model, n_samples=int(n_samples), seed=int(seed), failure_threshold=failure_threshold
        )
        fit_seconds = time.perf_counter() - start
        completed, weights = conditional_mean_samples(model, boot.beta, boot.sigma), boot.weights
        if boot.failures:
            notes.append(boot.note(failure_threshold))
    if shift is not None:
        completed = completed + shift
    est = analyse_completed(model, completed, weights, analysis)  # (1 + samples, 3T)
    counts = {s: int((model.strategy[model.ice_index < T] == s).sum()) for s in STRATEGIES}
    counts = {k: v for k, v in counts.items() if v}
    text = ", ".join(f"{k} ({STRATEGY_NAMES[k]})" for k in counts) or "no ICE (all MAR)"
    if boot is None:
        inference_text = f"jackknife SE ({n} leave-one-out refits), normal CI and p"
    else:
        inference_text = (
            f"bootstrap inference ({n_samples} samples drawn within each arm, seed {seed}, each refit warm-started; "
            + (
                "percentile CI (type-6 quantiles of the sample estimates) and p by inverting it, no SE"
                if bootstrap_ci == "percentile"
                else "SE the SD of the sample estimates, normal CI and p"
            )
            + ")"
        )
    method = (
        f"conditional mean imputation (Wolbers et al. 2022) under {text}, reference arm "
        f"{design.arm_label(model.reference_arm)}; imputation model: MMRM (REML, unstructured Sigma) without the "
        f"values at and after a non-MAR ICE; {analysis_text(analysis, design, covariates)}; {inference_text}"
    )
    if shift is not None:
        method += "; " + delta_text(shift, model)
    rows_out, labels = [], []
    for k, visit in enumerate(design.visits):
        labels.append((f"{design.contrast_label} at {design.visit_label(visit)}", {"timepoint": visit}))
    for arm in (design.control, design.intervention):
        for visit in design.visits:
            labels.append(
                (f"LS mean {design.arm_label(arm)} at {design.visit_label(visit)}", {"arm": arm, "timepoint": visit})
            )
    if boot is None:
        se = jackknife_se(est[1:])
        for j, (quantity, extra) in enumerate(labels):
            extra = {"outcome": outcome, **extra, "n_analysed": n} if outcome else {**extra, "n_analysed": n}
            rows_out.append(
                Estimate.from_wald(quantity, est[0, j], se[j], level, method, notes="; ".join(notes), extra=extra)
            )
    else:
        pooled = bootstrap_pool(est[0], est[1:], level, bootstrap_ci)
        for j, (quantity, extra) in enumerate(labels):
            extra = {"outcome": outcome, **extra} if outcome else dict(extra)
            extra.update(n_analysed=n, bootstrap_se=float(pooled["bootstrap_se"][j]), n_bootstrap=int(n_samples))
            rows_out.append(
                Estimate(
                    quantity,
                    float(est[0, j]),
                    float(pooled["se"][j]),
                    float(pooled["ci_low"][j]),
                    float(pooled["ci_high"][j]),
                    np.nan,
                    float(pooled["statistic"][j]),
                    float(pooled["p"][j]),
                    method,
                    "; ".join(notes),
                    extra,
                )
            )
    ice_table, imputed = _model_counts(model)
    return CondMeanResult(
        estimates=to_frame(rows_out),
        ice_counts=ice_table,
        imputed=imputed,
        reference_arm=model.reference_arm,
        strategies=counts,
        n_participants=n,
        n_excluded=model.n_excluded,
        n_fits=n + 1 if boot is None else 1 + boot.drawn,
        fit_seconds=fit_seconds,
        seconds=time.perf_counter() - start,
        method=method,
        notes="; ".join(notes),
        level=level,
        jackknife_estimates=est[1:] if boot is None else np.empty((0, est.shape[1])),
        inference=inference,
        analysis_model=analysis,
        n_samples=0 if boot is None else int(n_samples),
        n_failed=0 if boot is None else len(boot.failures),
        seed=None if boot is None else int(seed),
        bootstrap_ci=None if boot is None else bootstrap_ci,
        bootstrap_failures=() if boot is None else boot.failures,
        bootstrap_estimates=None if boot is None else est[1:],
        bootstrap_indices=None if boot is None else boot.samples,
    )


# ==================================================================================================
# Part 2: Bayesian multiple imputation (rbmi's method_bayes)
# ==================================================================================================
#
# Posterior draws of (beta, Sigma) of the MMRM by a Gibbs sampler with data augmentation (Tanner & Wong 1987;
# Schafer 1997, ch. 5), then one random imputation per draw under each participant's strategy (Carpenter, Roger &
# Kenward 2013, section 4.3), an ANCOVA per visit on each completed data set, and Rubin's rules.

BAYES_M = 150  # imputations (= posterior draws used), rbmi's quickstart
BAYES_CHAINS = 4
BAYES_BURN_IN = 200  # iterations discarded per chain (rbmi's default warm-up)
BAYES_THIN = 10  # keep every 10th iteration (rbmi's NUTS keeps every 5th; a Gibbs chain mixes more slowly)
BAYES_RHAT_MAX = 1.01  # the project's gate (docs/methods.md: a sampler with R-hat > 1.01 is flagged)
BAYES_ESS_MIN = 400.0  # minimum bulk ESS over the post-burn-in iterations, as the meta stage's gate


@dataclass(frozen=True)
class MMRMPosterior(ResultMixin):
    """Posterior draws of the MMRM's fixed effects ``beta`` (draws, p) and unstructured covariance ``sigma``
    (draws, J, J), in chain order (``chain`` holds each draw's chain), with the sampler's settings and its
    convergence diagnostics over every post-burn-in iteration (rank-normalised split R-hat and bulk ESS,
    Vehtari et al. 2021) of each beta and each distinct element of Sigma. ``converged`` is False, and ``flags``
    says why, when an R-hat exceeds `BAYES_RHAT_MAX` or a bulk ESS falls below `BAYES_ESS_MIN`."""

    beta: np.ndarray
    sigma: np.ndarray
    chain: np.ndarray
    columns: tuple
    times: tuple
    chains: int
    burn_in: int
    thin: int
    iterations: int  # per chain, burn-in included
    seed: int
    prior_df: float
    prior_scale: np.ndarray
    rhat: dict
    ess_bulk: dict
    n_participants: int  # with at least one observed value (the others carry no information on the parameters)
    n_observations: int
    n_no_outcome: int
    seconds: float
    flags: tuple = ()

    _json_skip = ("beta", "sigma", "chain", "prior_scale", "seconds")  # draws, and the wall time

    @property
    def max_rhat(self) -> float:
        return max(self.rhat.values())

    @property
    def min_ess_bulk(self) -> float:
        return min(self.ess_bulk.values())

    @property
    def converged(self) -> bool:
        return not self.flags

    @property
    def method(self) -> str:
        return (
            f"Gibbs sampler with data augmentation for the MMRM (flat prior on beta, inverse-Wishart prior on Sigma "
            f"with {self.prior_df:g} df and scale the REML estimate, as rbmi); {self.chains} chains of "
            f"{self.iterations} iterations, burn-in {self.burn_in}, thinning {self.thin}; max R-hat "
            f"{self.max_rhat:.4f}, min bulk ESS {self.min_ess_bulk:.0f}"
        )

    def _json_extra(self) -> dict:
        return {"max_rhat": self.max_rhat, "min_ess_bulk": self.min_ess_bulk, "converged": self.converged}


def _z_scale(x: np.ndarray) -> np.ndarray:
    """Rank-normalise each parameter's draws (rows of ``x``, shape (P, chains, draws)) jointly over its chains:
    Blom's normal scores of the average ranks (Vehtari et al. 2021, eq. 14)."""
    P = x.shape[0]
    flat = x.reshape(P, -1)
    ranks = stats.rankdata(flat, method="average", axis=1)
    return stats.norm.ppf((ranks - 3 / 8) / (flat.shape[1] + 1 / 4)).reshape(x.shape)


def _split(x: np.ndarray) -> np.ndarray:
    """Each chain split in halves (the middle draw of an odd length dropped): (P, 2 chains, draws // 2)."""
    half = x.shape[2] // 2
    return np.concatenate([x[:, :, :half], x[:, :, x.shape[2] - half :]], axis=1)


def _rhat_classic(x: np.ndarray) -> np.ndarray:
    n = x.shape[2]
    between = n * x.mean(axis=2).var(axis=1, ddof=1)
    within = x.var(axis=2, ddof=1).mean(axis=1)
    return np.sqrt((between / within + n - 1) / n)


def _ess_one(x: np.ndarray) -> float:
    """ESS of one (chains, draws) array by Geyer's initial monotone sequence (Vehtari et al. 2021, section 3.2)."""
    n_chain, n = x.shape
    centred = x - x.mean(axis=1, keepdims=True)
    size = 2 ** int(np.ceil(np.log2(2 * n)))
    f = np.fft.rfft(centred, n=size, axis=1)
    acov = np.fft.irfft(f * np.conj(f), n=size, axis=1)[:, :n] / n
    mean_var = acov[:, 0].mean() * n / (n - 1)
    var_plus = mean_var * (n - 1) / n + (x.mean(axis=1).var(ddof=1) if n_chain > 1 else 0.0)
    rho = 1.0 - (mean_var - acov.mean(axis=0)) / var_plus
    rho[0] = 1.0
    out = np.zeros(n)
    out[:2] = rho[:2]
    even, odd, t = 1.0, rho[1], 1
    while t < n - 3 and even + odd > 0:
        even, odd = rho[t + 1], rho[t + 2]
        if even + odd >= 0:
            out[t + 1], out[t + 2] = even, odd
        t += 2
    max_t = t - 2
    if even > 0:
        out[max_t + 1] = even
    t = 1
    while t <= max_t - 2:
        if out[t + 1] + out[t + 2] > out[t - 1] + out[t]:
            out[t + 1] = out[t + 2] = (out[t - 1] + out[t]) / 2
        t += 2
    tau = -1.0 + 2.0 * out[: max_t + 1].sum() + out[max_t + 1 : max_t + 2].sum()
    return float(n_chain * n / max(tau, 1 / np.log10(n_chain * n)))


def rhat_ess_draws(draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank-normalised split R-hat (the larger of bulk and folded) and bulk ESS of each parameter, for draws of
    shape (parameters, chains, iterations), as Vehtari et al. (2021) define them (ArviZ's ``rhat`` and
    ``ess(method="bulk")``, matched to 1e-10 in the tests); numpy only, so a fit does not pay ArviZ's import."""
    x = np.asarray(draws, dtype=float)
    if x.ndim != 3 or x.shape[2] < 4:
        raise AnalysisError(f"R-hat needs draws shaped (parameters, chains, >= 4 iterations), got {x.shape}")
    split = _split(x)
    bulk = _z_scale(split)
    folded = _z_scale(np.abs(split - np.median(split.reshape(x.shape[0], -1), axis=1)[:, None, None]))
    with np.errstate(divide="ignore", invalid="ignore"):  # a constant parameter: R-hat undefined (NaN)
        rhat = np.maximum(_rhat_classic(bulk), _rhat_classic(folded))
    constant = np.ptp(x.reshape(len(x), -1), axis=1) < np.finfo(float).resolution
    ess = np.array([float(x[k].size) if constant[k] else _ess_one(bulk[k]) for k in range(len(x))])
    rhat = np.where(constant, np.nan, rhat)
    return rhat, ess


@functools.lru_cache(maxsize=None)
def _below_diagonal(J: int) -> tuple[np.ndarray, np.ndarray]:
    return np.tril_indices(J, -1)


def draw_inverse_wishart(rng: np.random.Generator, df: float, scale: np.ndarray) -> np.ndarray:
    """One draw of Sigma ~ inverse-Wishart(df, scale) per scale matrix in ``scale`` (..., J, J), density
    proportional to |Sigma|^-(df + J + 1)/2 exp(-tr(scale Sigma^-1) / 2) (Stan's and scipy's parameterisation).
    Bartlett (1933): Sigma^-1 = L^-T A A' L^-1 ~ Wishart(df, scale^-1) with scale = L L', A lower triangular with
    A_jj^2 ~ chi-square(df - j) (j = 0, ..., J - 1) and standard normals below the diagonal."""
    scale = np.asarray(scale, dtype=float)
    J = scale.shape[-1]
    batch = scale.shape[:-2]
    A = np.zeros((*batch, J, J))
    rows, cols = _below_diagonal(J)
    A[..., rows, cols] = rng.standard_normal((*batch, len(rows)))
    d = np.arange(J)
    A[..., d, d] = np.sqrt(rng.chisquare(df - d, size=(*batch, J)))
    K = np.linalg.cholesky(scale) @ np.swapaxes(np.linalg.inv(A), -1, -2)
    return K @ np.swapaxes(K, -1, -2)


@dataclass(frozen=True)
class _Missing:
    """The participants with a missing cell, for one conditional normal draw of all their missing cells at once.
    The regression coefficients and conditional covariance depend on the visit pattern only: they are computed per
    pattern, with each pattern's observed block of Sigma padded by the identity on its missing visits, so one
    batched solve serves every pattern, monotone or intermittent."""

    rows: np.ndarray  # participants with at least one missing cell
    pattern: np.ndarray  # (rows,) index of the participant's visit pattern
    y: np.ndarray  # (rows, J) observed values, 0 where missing
    obs: np.ndarray  # (rows, J) bool
    oo: np.ndarray  # (patterns, J, J) 1 where both visits are observed
    om: np.ndarray  # (patterns, J, J) 1 where the row visit is observed and the column visit missing
    mm: np.ndarray  # (patterns, J, J) 1 where both are missing
    pad_missing: np.ndarray  # (patterns, J, J) the identity on the missing visits
    pad_observed: np.ndarray  # (patterns, J, J) the identity on the observed visits

    @classmethod
    def build(cls, y: np.ndarray, observed: np.ndarray) -> "_Missing":
        rows = np.flatnonzero(~observed.all(axis=1))
        masks, pattern = np.unique(observed[rows], axis=0, return_inverse=True)
        P = masks.astype(float)
        Q = 1.0 - P
        eye = np.eye(observed.shape[1])
        obs = observed[rows]
        return cls(
            rows=rows,
            pattern=pattern.ravel(),
            y=np.where(obs, y[rows], 0.0),
            obs=obs,
            oo=P[:, :, None] * P[:, None, :],
            om=P[:, :, None] * Q[:, None, :],
            mm=Q[:, :, None] * Q[:, None, :],
            pad_missing=eye * Q[:, None, :],
            pad_observed=eye * P[:, None, :],
        )

    def draw(self, rng: np.random.Generator, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        """One draw of every cell of these participants from N(mu, sigma) (mu (B, rows, J), sigma (B, J, J))
        conditional on their observed cells (which are returned unchanged): on the missing cells
        mu_m + S_mo S_oo^-1 (y_o - mu_o) plus a normal with covariance S_mm - S_mo S_oo^-1 S_om."""
        S = sigma[:, None]
        s_om = S * self.om
        coef = np.linalg.solve(S * self.oo + self.pad_missing, s_om)  # (B, patterns, J, J): 0 off observed x missing
        chol = np.linalg.cholesky(S * self.mm - np.swapaxes(s_om, -1, -2) @ coef + self.pad_observed)
        resid = np.where(self.obs, self.y - mu, 0.0)
        z = rng.standard_normal((*mu.shape, 1))
        draw = mu + (resid[..., None, :] @ coef[:, self.pattern])[..., 0, :] + (chol[:, self.pattern] @ z)[..., 0]
        return np.where(self.obs, self.y, draw)


def _gls_cov_beta(X: np.ndarray, observed: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """(sum_i X_iO' Sigma_OO^-1 X_iO)^-1 over each participant's observed visits O: the GLS covariance of beta."""
    obs = observed.astype(float)
    eye = np.eye(sigma.shape[0])
    padded = sigma * (obs[:, :, None] * obs[:, None, :]) + eye * (1.0 - obs)[:, None, :]
    prec = np.linalg.inv(padded) * (obs[:, :, None] * obs[:, None, :])
    return np.linalg.inv(np.einsum("njp,njk,nkq->pq", X, prec, X))


def sample_mmrm_posterior(
    X: np.ndarray,
    y: np.ndarray,
    observed: np.ndarray,
    *,
    n_draws: int,
    seed: int,
    prior_scale: np.ndarray,
    prior_df: float | None = None,
    start_beta: np.ndarray,
    cov_beta: np.ndarray | None = None,
    chains: int = BAYES_CHAINS,
    burn_in: int = BAYES_BURN_IN,
    thin: int = BAYES_THIN,
    columns: tuple = (),
    times: tuple = (),
) -> MMRMPosterior:
    """Posterior draws of the MMRM y_i = X_i beta + e_i, e_i ~ N(0, Sigma) (unstructured J x J), from the
    ``observed`` cells of ``y`` (participants, J), with design ``X`` (participants, J, p) defined on every cell.

    Prior (rbmi's default, as in the SAS "five macros"): flat on beta; Sigma ~ inverse-Wishart(``prior_df``,
    ``prior_scale``), by default df J + 2 (the fewest with a finite mean) and, as callers pass it, scale the REML
    estimate, so that the prior mean is the REML Sigma.

    Sampler: Gibbs with data augmentation (Tanner & Wong 1987; Schafer 1997, ch. 5). Each iteration draws
    (1) the missing cells from their conditional normal given the observed cells, beta and Sigma; (2) Sigma given
    beta and the completed data from inverse-Wishart(df + n, scale + sum_i e_i e_i'); (3) beta given Sigma and the
    completed data from N(b, (sum_i X_i' Sigma^-1 X_i)^-1), b the GLS estimate. Each step is an exact full
    conditional of the joint posterior of (beta, Sigma, missing cells), whose (beta, Sigma) margin is the
    posterior given the observed data under MAR, for monotone and intermittent missingness alike. Participants with
    no observed cell carry no information on (beta, Sigma) and are left out (counted).

    Chains: ``chains`` chains run as one vectorised batch; chain 1 starts at (``start_beta``, ``prior_scale``) as
    rbmi's starts at the REML fit, the others at overdispersed values (beta + 2 x a normal draw with covariance
    ``cov_beta``, default the GLS covariance at ``prior_scale``; Sigma times a factor between 1/2 and 2), so that
    R-hat can detect a chain that has not forgotten its start. Each chain runs ``burn_in`` + ``thin`` x
    ceil(n_draws / chains) iterations; every ``thin``-th post-burn-in iteration is kept, the first ``n_draws`` in
    chain order returned. R-hat and bulk ESS are computed over all post-burn-in iterations. Seeded: one numpy
    Generator from `spawn_generator(seed, 0)` (the imputations of `reference_based_bayes` use stream 1).
    """
    t0 = time.perf_counter()
    X = np.asarray(X, dtype=float)
    observed = np.asarray(observed, dtype=bool) & np.isfinite(y)
    n_all, J, p = X.shape
    if n_draws < 1 or chains < 2 or burn_in < 0 or thin < 1:
        raise AnalysisError(
            f"sampler settings: n_draws ({n_draws}) must be >= 1, chains ({chains}) >= 2 (R-hat compares chains), "
            f"burn_in ({burn_in}) >= 0, thin ({thin}) >= 1"
        )
    keep = observed.any(axis=1)
    X, y, observed = X[keep], np.where(observed, y, 0.0)[keep], observed[keep]
    n = len(X)
    if n <= p or n <= J:
        raise AnalysisError(
            f"{n} participants with an observed outcome cannot inform {p} fixed effects and a {J} x {J} Sigma"
        )
    prior_df = float(J + 2 if prior_df is None else prior_df)
    S0 = np.asarray(prior_scale, dtype=float)
    rng = spawn_generator(seed, 0)
    per_chain = -(-n_draws // chains)
    iterations = burn_in + thin * per_chain
    missing = _Missing.build(y, observed)
    Xf = X.reshape(n * J, p)
    XX = np.einsum("njp,nkq->jkpq", X, X).reshape(J * J, p * p)

    beta = np.repeat(np.asarray(start_beta, dtype=float)[None], chains, axis=0)
    sigma = np.repeat(S0[None], chains, axis=0)
    L = np.linalg.cholesky(_gls_cov_beta(X, observed, S0) if cov_beta is None else np.asarray(cov_beta, dtype=float))
    beta[1:] += 2.0 * rng.standard_normal((chains - 1, p)) @ L.T
    sigma[1:] *= np.exp(rng.uniform(-np.log(2), np.log(2), size=chains - 1))[:, None, None]
    Y = np.repeat(y[None], chains, axis=0)
    vech = np.tril_indices(J)
    kept_beta = np.empty((chains, thin * per_chain, p))
    kept_sigma = np.empty((chains, thin * per_chain, J, J))
    for it in range(iterations):
        mu = (Xf @ beta.T).T.reshape(chains, n, J)
        Y[:, missing.rows] = missing.draw(rng, mu[:, missing.rows], sigma)
        E = Y - mu
        sigma = draw_inverse_wishart(rng, prior_df + n, S0 + np.swapaxes(E, 1, 2) @ E)
        prec = np.linalg.inv(sigma)
        prec = (prec + np.swapaxes(prec, 1, 2)) / 2
        A = (prec.reshape(chains, J * J) @ XX).reshape(chains, p, p)
        b = (Y @ prec).reshape(chains, n * J) @ Xf
        chol = np.linalg.cholesky(A)
        z = rng.standard_normal((chains, p, 1))
        beta = np.linalg.solve(A, b[:, :, None])[:, :, 0] + np.linalg.solve(np.swapaxes(chol, 1, 2), z)[:, :, 0]
        if it >= burn_in:
            kept_beta[:, it - burn_in] = beta
            kept_sigma[:, it - burn_in] = sigma

    names = [f"beta[{c}]" for c in (columns or range(p))]
    tl = [str(t) for t in (times or range(J))]
    names += [f"Sigma[{tl[a]},{tl[b]}]" for a, b in zip(*vech)]
    diag_draws = np.concatenate([kept_beta, kept_sigma[:, :, vech[0], vech[1]]], axis=2).transpose(2, 0, 1)
    rhat, ess = rhat_ess_draws(diag_draws)
    rhat_d = dict(zip(names, map(float, rhat)))
    ess_d = dict(zip(names, map(float, ess)))
    flags = []
    worst = max(rhat_d, key=lambda k: np.inf if np.isnan(rhat_d[k]) else rhat_d[k])
    if not rhat_d[worst] <= BAYES_RHAT_MAX:
        flags.append(
            f"MCMC NOT CONVERGED: R-hat of {worst} is {rhat_d[worst]:.4f} > {BAYES_RHAT_MAX} over {chains} chains of "
            f"{thin * per_chain} post-burn-in iterations: increase burn_in or thin"
        )
    low = min(ess_d, key=lambda k: -np.inf if np.isnan(ess_d[k]) else ess_d[k])
    if not ess_d[low] >= BAYES_ESS_MIN:
        flags.append(
            f"MCMC NOT CONVERGED: bulk ESS of {low} is {ess_d[low]:.0f} < {BAYES_ESS_MIN:.0f}: increase thin or chains"
        )
    idx = np.arange(thin - 1, thin * per_chain, thin)
    out_beta = kept_beta[:, idx].reshape(chains * per_chain, p)[:n_draws]
    out_sigma = kept_sigma[:, idx].reshape(chains * per_chain, J, J)[:n_draws]
    return MMRMPosterior(
        beta=out_beta,
        sigma=out_sigma,
        chain=np.repeat(np.arange(chains), per_chain)[:n_draws],
        columns=tuple(columns),
        times=tuple(times),
        chains=chains,
        burn_in=burn_in,
        thin=thin,
        iterations=iterations,
        seed=int(seed),
        prior_df=prior_df,
        prior_scale=S0,
        rhat=rhat_d,
        ess_bulk=ess_d,
        n_participants=n,
        n_observations=int(observed.sum()),
        n_no_outcome=int(n_all - n),
        seconds=time.perf_counter() - t0,
        flags=tuple(flags),
    )


def conditional_draws(rng: np.random.Generator, mu: np.ndarray, sigma: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Random imputation: ``y`` (n, T; NaN = missing) completed by one draw per parameter set from N(mu_i, Sigma)
    conditional on participant i's observed values (rbmi's imputation step; every missingness pattern, a participant
    with no observed value drawn from the marginal). ``mu`` (B, n, T) and ``sigma`` (B, T, T); returns (B, n, T)
    with the observed values kept. The random counterpart of `conditional_means`."""
    y = np.asarray(y, dtype=float)
    observed = ~np.isnan(y)
    out = np.broadcast_to(np.where(observed, y, 0.0), mu.shape).copy()
    missing = _Missing.build(y, observed)
    if len(missing.rows):
        out[:, missing.rows] = missing.draw(rng, mu[:, missing.rows], sigma)
    return out


def ancova_inference(y: np.ndarray, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """ANCOVA per visit with standard errors, for Rubin's rules (rbmi's ``ancova()``): completed data ``y``
    (B, n, T) on the analysis design ``Z`` (n, r; column 0 the intercept, column 1 the intervention indicator), the
    same participants in every data set. Returns (estimates, variances), each (B, 3T) in the order of
    `ancova_by_visit`'s contrast, LS mean control, LS mean intervention (every visit), and the residual df n - r.
    Variances: s^2 l' (Z'Z)^-1 l with s^2 the residual mean square of the visit's fit; LS means at the analysed
    participants' mean covariates with the arm set (rbmi's ``counterfactual`` weights, the mean for a numeric
    covariate and the share for a category). Estimates equal `ancova_by_visit`'s (checked in the tests)."""
    n, r = Z.shape
    if n <= r or np.linalg.matrix_rank(Z) < r:
        raise AnalysisError(
            f"ANCOVA: {n} participants for {r} coefficients (rank {np.linalg.matrix_rank(Z)}); a covariate is "
            "constant or collinear: drop it"
        )
    ztz_inv = np.linalg.inv(Z.T @ Z)
    coef = ztz_inv @ (Z.T @ y)  # (B, r, T)
    s2 = ((y - Z @ coef) ** 2).sum(axis=1) / (n - r)  # (B, T)
    zbar = Z.mean(axis=0)
    L = np.array([np.eye(r)[1], zbar, zbar])
    L[1, 1], L[2, 1] = 0.0, 1.0
    est = np.einsum("lr,brt->blt", L, coef).reshape(len(y), -1)
    var = (s2[:, None, :] * np.einsum("lr,rs,ls->l", L, ztz_inv, L)[None, :, None]).reshape(len(y), -1)
    return est, var, n - r


def _chain_ess(values: np.ndarray, chain: np.ndarray) -> np.ndarray:
    """ESS of each column of ``values`` (m, K), draws in chain order (``chain`` (m,)), over the chains' common
    length (bulk ESS as for the sampler); capped at m."""
    chains = np.unique(chain)
    length = min(int((chain == c).sum()) for c in chains)
    if length < 4:
        return np.full(values.shape[1], float(len(values)))
    stacked = np.stack([values[chain == c][:length] for c in chains], axis=1)  # (length, chains, K)
    _, ess = rhat_ess_draws(stacked.transpose(2, 1, 0))
    return np.minimum(np.nan_to_num(ess, nan=len(values)), len(values))


def rubin_mc_error(
    estimates: np.ndarray, variances: np.ndarray, df_complete: float, level: float, ess: np.ndarray | None = None
) -> dict:
    """Monte Carlo standard errors of the pooled numbers of m imputations (rows of ``estimates`` and
    ``variances``, (m, K)): of the pooled estimate sqrt(B / m_eff) (Royston et al. 2009, with m_eff = min(m, the
    ESS of the per-imputation estimates) since the draws come from Markov chains), and of the pooled SE, CI limits
    and p-value by the jackknife over imputations (leave one imputation out, Rubin's rules on the other m - 1;
    rbmi's MCSE), inflated by sqrt(m / m_eff). Arrays (K,) keyed estimate, se, ci_low, ci_high, p."""
    est = np.asarray(estimates, dtype=float)
    var = np.asarray(variances, dtype=float)
    m = est.shape[0]
    m_eff = np.full(est.shape[1], float(m)) if ess is None else np.asarray(ess, dtype=float)
    b = est.var(axis=0, ddof=1)
    # leave-one-out Rubin's rules, all m at once: (m, K)
    q = (est.sum(axis=0) - est) / (m - 1)
    u = (var.sum(axis=0) - var) / (m - 1)
    ss = ((est - est.mean(axis=0)) ** 2).sum(axis=0)
    b_loo = (ss - (est - est.mean(axis=0)) ** 2 * m / (m - 1)) / (m - 2)
    t = u + (1 + 1 / (m - 1)) * b_loo
    df = barnard_rubin_df(m - 1, b_loo, t, df_complete)
    se = np.sqrt(t)
    crit = stats.t.ppf(0.5 + level / 2, df)
    p = 2 * stats.t.sf(np.abs(q / se), df)

    def jack(theta):
        return np.sqrt((m - 1) / m * ((theta - theta.mean(axis=0)) ** 2).sum(axis=0))

    inflate = np.sqrt(m / m_eff)
    return {
        "estimate": np.sqrt(b / m_eff),
        "se": jack(se) * inflate,
        "ci_low": jack(q - crit * se) * inflate,
        "ci_high": jack(q + crit * se) * inflate,
        "p": jack(p) * inflate,
    }


def _model_counts(model: ImputationModel) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ICE counts per arm (`ice_counts`) and, per arm and visit, participants, observed and imputed values and
    the observed values left out of the imputation model's fit, of a fitted `ImputationModel`."""
    design, T = model.design, len(model.visits)
    with_ice = np.flatnonzero(model.ice_index < T)
    ice_table = pd.DataFrame(
        {
            "id": [model.ids[i] for i in with_ice],
            "visit": [model.visits[model.ice_index[i]] for i in with_ice],
            "strategy": model.strategy[with_ice],
            "arm": model.arms[with_ice],
        }
    )
    frame_used = pd.DataFrame({"id": model.ids, "arm": model.arms})
    for k, visit in enumerate(model.visits):
        frame_used[visit] = model.y[:, k]
    left_out = ~np.isnan(model.y) & ~model.fit_observed
    rows = []
    for arm in design.arms:
        sel = model.arms == arm
        for k, visit in enumerate(model.visits):
            rows.append(
                {
                    "arm": arm,
                    "timepoint": visit,
                    "n": int(sel.sum()),
                    "n_observed": int((~np.isnan(model.y[sel, k])).sum()),
                    "n_imputed": int(np.isnan(model.y[sel, k]).sum()),
                    "n_observed_left_out_of_fit": int(left_out[sel, k].sum()),
                }
            )
    return ice_counts(ice_table, frame_used, design), pd.DataFrame(rows)


@dataclass(frozen=True)
class BayesMIResult(ResultMixin):
    """Reference-based Bayesian multiple imputation (rbmi's ``method_bayes`` + ``ancova`` + ``pool``).

    ``estimates``: the intervention - control contrast per visit and each arm's LS mean per visit, pooled by Rubin's
    rules (t CI and p with the Barnard-Rubin df; columns m, qbar, ubar, b, t, riv, lambda, fmi, df_complete), with
    their Monte Carlo standard errors (``mcse_estimate``, ``mcse_se``, ``mcse_ci_low``, ``mcse_ci_high``,
    ``mcse_p``; `rubin_mc_error`) and ``ess_imputations`` (the m_eff used). ``posterior``: the sampler's draws and
    diagnostics (`MMRMPosterior`). ``flags``: what must be shown with the numbers (a sampler that did not converge).
    ``imputation_estimates``/``imputation_variances`` (m, q): each completed data set's analysis (not in JSON);
    ``analysis_model``: ``ancova`` or ``mmrm`` (`reference_based_bayes`)."""

    estimates: pd.DataFrame
    ice_counts: pd.DataFrame
    imputed: pd.DataFrame
    posterior: MMRMPosterior
    reference_arm: str
    strategies: dict
    n_participants: int
    n_excluded: int
    m: int
    seed: int
    sampler_seconds: float
    seconds: float
    method: str
    notes: str
    flags: tuple
    level: float
    imputation_estimates: np.ndarray
    imputation_variances: np.ndarray
    analysis_model: str = "ancova"

    _json_skip = ("imputation_estimates", "imputation_variances", "sampler_seconds", "seconds")

    @property
    def converged(self) -> bool:
        return self.posterior.converged

    def to_frame(self) -> pd.DataFrame:
        return self.estimates

    def summary(self) -> str:
        d = self.posterior
        return summary_block(
            "Reference-based Bayesian multiple imputation (Rubin's rules)",
            [
                ("participants (excluded)", f"{self.n_participants} ({self.n_excluded})"),
                ("reference arm", self.reference_arm),
                ("strategies", ", ".join(f"{k}: {v}" for k, v in self.strategies.items()) or "none (all MAR)"),
                ("imputations", f"{self.m} (seed {self.seed})"),
                (
                    "sampler",
                    f"{d.chains} chains x {d.iterations} iterations (burn-in {d.burn_in}, thin {d.thin}) in "
                    f"{self.sampler_seconds:.2f} s; max R-hat {d.max_rhat:.4f}, min bulk ESS {d.min_ess_bulk:.0f}",
                ),
            ],
            self.estimates,
            [*self.flags, f"Method: {self.method}", self.notes],
        )


def bayes_completed(
    model: ImputationModel, *, seed: int, m: int, chains: int, burn_in: int, thin: int
) -> tuple[MMRMPosterior, np.ndarray]:
    """The posterior draws of a fitted imputation model (`sample_mmrm_posterior`, seeded by ``seed``, stream 0)
    and the ``m`` data sets (m, n, T) completed by one random imputation per draw under each participant's
    strategy (`conditional_draws`, stream 1): steps 2 and 3 of `reference_based_bayes`."""
    posterior = sample_mmrm_posterior(
        model.X,
        model.y,
        model.fit_observed,
        n_draws=m,
        seed=seed,
        prior_scale=model.sigma,
        start_beta=model.beta,
        chains=chains,
        burn_in=burn_in,
        thin=thin,
        times=model.visits,
    )
    mu = strategy_means(
        model.strategy,
        np.einsum("ntp,bp->bnt", model.X, posterior.beta),
        np.einsum("ntp,bp->bnt", model.X_ref, posterior.beta),
        model.ice_index,
    )
    return posterior, conditional_draws(spawn_generator(seed, 1), mu, posterior.sigma, model.y)


def reference_based_bayes(
    frame: pd.DataFrame,
    ice: pd.DataFrame,
    design: StudyDesign,
    *,
    seed: int,
    m: int = BAYES_M,
    covariates=(),
    change: bool = False,
    reference: str | None = None,
    chains: int = BAYES_CHAINS,
    burn_in: int = BAYES_BURN_IN,
    thin: int = BAYES_THIN,
    level: float = 0.95,
    outcome: str = "",
    delta: pd.DataFrame | None = None,
    analysis: str = "ancova",
) -> BayesMIResult:
    """Bayesian multiple imputation under each participant's ICE strategy, ANCOVA per visit, Rubin's rules
    (rbmi ``method_bayes`` + ``impute`` + ``analyse(ancova)`` + ``pool``; Carpenter, Roger & Kenward 2013).

    1. `fit_imputation_model` (REML; values at and after a non-MAR ICE left out, as rbmi); 2. ``m`` posterior
    draws of (beta, Sigma) given those data (`sample_mmrm_posterior`: Gibbs sampler with data augmentation, flat
    prior on beta, inverse-Wishart(T + 2, REML Sigma) on Sigma; ``chains``, ``burn_in``, ``thin``; seeded by
    ``seed``); 3. per draw, each participant's missing values drawn from the conditional normal given their observed
    values (post-ICE observed values included) under the joint distribution their strategy composes
    (`strategy_means`; one Sigma for both arms, so every strategy's covariance is that Sigma,
    `strategy_covariance`); 4. ``analysis="ancova"``: ANCOVA at each visit on intercept, arm, baseline and
    ``covariates`` (`ancova_inference`); ``"mmrm"``: the study's MMRM on each completed data set (unstructured
    Sigma, REML; the baseline by visit or common as the design says, ``covariates``; `mmrm_inference`), its
    contrasts and LS means per visit with their model-based variances; 5. Rubin's rules with the Barnard-Rubin df,
    complete-data df n - r for the ANCOVA, for the MMRM its Satterthwaite df per quantity (the mean over the
    imputations: the df of one completed-data fit, which barely varies between imputations; `pool_rubin_many`),
    and the Monte Carlo errors (`rubin_mc_error`). A sampler that did not converge (R-hat > 1.01 or bulk ESS < 400)
    is flagged in ``flags`` and the notes of every row. Effects are intervention - control.

    ``delta``: a delta table (`delta_template` filled in, or any frame with ``id``, ``visit``, ``delta``;
    `validate_delta`): each delta is added to its imputed value in every completed data set, after the imputation
    and before the ANCOVA (rbmi's ``analyse(delta = )``); observed values are never shifted. The draws do not
    depend on it: with the same ``seed`` the data sets are the same ones, shifted. Without it nothing changes."""
    start = time.perf_counter()
    if m < 3:
        raise SettingsError([("m", f"must be >= 3 (Rubin's rules and their Monte Carlo error), got {m}")])
    if analysis not in ANALYSES:
        raise SettingsError([("analysis", f"{analysis!r} is not one of {list(ANALYSES)}")])
    model = fit_imputation_model(frame, ice, design, covariates=covariates, change=change, reference=reference)
    shift = None if delta is None else delta_shift(validate_delta(delta, frame, design), model)
    n, T = model.y.shape
    posterior, completed = bayes_completed(model, seed=seed, m=m, chains=chains, burn_in=burn_in, thin=thin)
    if shift is not None:
        completed = completed + shift
    if analysis == "ancova":
        est, var, df_complete = ancova_inference(completed, model.Z)
        df_text = f"complete-data df {df_complete}"
    else:
        est, var, dfs = mmrm_inference(model, completed)
        df_complete = dfs.mean(axis=0)
        df_text = (
            f"complete-data df the MMRM's Satterthwaite df, mean over the imputations ({df_complete.min():.4g} to "
            f"{df_complete.max():.4g})"
        )
    labels = [(f"{design.contrast_label} at {design.visit_label(v)}", {"timepoint": v}) for v in design.visits]
    for arm in (design.control, design.intervention):
        labels += [
            (f"LS mean {design.arm_label(arm)} at {design.visit_label(v)}", {"arm": arm, "timepoint": v})
            for v in design.visits
        ]
    pooled = pool_rubin_many(est, var, df_complete, quantities=[q for q, _ in labels])
    crit = stats.t.ppf(0.5 + level / 2, pooled["df"].to_numpy())
    pooled["ci_low"] = pooled["estimate"] - crit * pooled["se"]
    pooled["ci_high"] = pooled["estimate"] + crit * pooled["se"]
    ess = _chain_ess(est, posterior.chain)
    mc = rubin_mc_error(est, var, df_complete, level, ess)
    counts = {s: int((model.strategy[model.ice_index < T] == s).sum()) for s in STRATEGIES}
    counts = {k: v for k, v in counts.items() if v}
    text = ", ".join(f"{k} ({STRATEGY_NAMES[k]})" for k in counts) or "no ICE (all MAR)"
    method = (
        f"Bayesian multiple imputation (m = {m}; rbmi method_bayes) under {text}, reference arm "
        f"{design.arm_label(model.reference_arm)}; imputation model: MMRM without the values at and after a non-MAR "
        f"ICE, {posterior.method}; {analysis_text(analysis, design, covariates)}"
        + f"; Rubin's rules, Barnard-Rubin df ({df_text}), {level:.0%} t CI"
    )
    if shift is not None:
        method += "; " + delta_text(shift, model)
    notes = []
    if model.n_excluded:
        notes.append(f"{model.n_excluded} participant(s) left out for a missing arm, baseline or covariate")
    if posterior.n_no_outcome:
        notes.append(
            f"{posterior.n_no_outcome} participant(s) without an observed value in the imputation model: imputed "
            "from their strategy's marginal distribution"
        )
    flags = tuple(f"{outcome}: {f}" if outcome else f for f in posterior.flags)
    pooled["method"] = method
    pooled["notes"] = "; ".join([*flags, *notes])
    if outcome:
        pooled["outcome"] = outcome
    pooled["timepoint"] = [extra["timepoint"] for _, extra in labels]
    pooled["arm"] = [extra.get("arm") for _, extra in labels]
    pooled["n_analysed"] = n
    for key, values in mc.items():
        pooled[f"mcse_{key}"] = values
    pooled["ess_imputations"] = ess
    ice_table, imputed = _model_counts(model)
    return BayesMIResult(
        estimates=pooled,
        ice_counts=ice_table,
        imputed=imputed,
        posterior=posterior,
        reference_arm=model.reference_arm,
        strategies=counts,
        n_participants=n,
        n_excluded=model.n_excluded,
        m=m,
        seed=int(seed),
        sampler_seconds=posterior.seconds,
        seconds=time.perf_counter() - start,
        method=method,
        notes="; ".join(notes),
        flags=flags,
        level=level,
        imputation_estimates=est,
        imputation_variances=var,
        analysis_model=analysis,
    )


# ==================================================================================================
# Part 3: delta adjustment and the two-dimensional tipping point
# ==================================================================================================
#
# rbmi's marginal delta adjustment (Gower-Page et al. 2022; Cro et al. 2020): the data are imputed under MAR or a
# reference-based strategy, a delta is added to imputed values, and the analysis runs on the shifted data. The
# imputation model is not refitted, so with conditional mean imputation every estimate is linear in the deltas.

DELTA_COLUMNS = ("id", "visit", "delta")
DELTA_TEMPLATE_COLUMNS = ("id", "arm", "visit", "is_mar", "is_missing", "is_post_ice", "strategy", "delta")
TIPPING_METHODS = ("condmean_jackknife", "condmean_bootstrap", "bayes")
CONCLUSIONS = ("significant negative", "not significant", "significant positive")


def _participant_ice(frame: pd.DataFrame, ice: pd.DataFrame, design: StudyDesign):
    """(ids as text, arms, outcome grid (n, T), ICE index (T = none), strategy) in frame order."""
    Y = _visit_matrix(frame, design)
    ids = frame["id"].astype(str).to_numpy()
    twice = pd.Series(ids).duplicated()
    if twice.any():
        i = int(np.flatnonzero(twice.to_numpy())[0])
        raise InputError(f"trial frame: row {i + 1}, column id, value '{ids[i]}': rule: one row per participant")
    table = validate_ice(ice, frame, design)
    T = len(design.visits)
    position = {v: k for k, v in enumerate(design.visits)}
    where = {v: i for i, v in enumerate(ids)}
    ice_index = np.full(len(ids), T)
    strategy = np.full(len(ids), "MAR", dtype=object)
    for pid, visit, name in table[["id", "visit", "strategy"]].itertuples(index=False):
        ice_index[where[pid]], strategy[where[pid]] = position[visit], name
    return ids, frame["arm"].to_numpy(dtype=object), Y, ice_index, strategy


def _delta_vector(values, name: str, T: int) -> np.ndarray:
    try:
        out = np.asarray(values, dtype=float).ravel()
    except (TypeError, ValueError):
        raise SettingsError([(name, f"must be {T} numbers (one per post-baseline visit), got {values!r}")]) from None
    if len(out) != T or not np.isfinite(out).all():
        raise SettingsError([(name, f"must be {T} finite numbers (one per post-baseline visit), got {list(out)}")])
    return out


def delta_template(
    frame: pd.DataFrame, ice: pd.DataFrame, design: StudyDesign, *, delta=None, dlag=None
) -> pd.DataFrame:
    """The delta table for a user to fill in (rbmi's ``delta_template()``): one row per participant x post-baseline
    visit, participants in id order (as text), visits in design order, with columns

    ``id``, ``arm``, ``visit``; ``is_mar`` (False at and after an ICE whose strategy is not MAR: a missing value
    there is imputed under the strategy); ``is_missing`` (the value is missing: it is imputed); ``is_post_ice`` (at
    or after the participant's ICE, `validate_ice`); ``strategy`` (the strategy a missing value is imputed under,
    MAR before the ICE or without one; missing (NaN) for an observed value); ``delta`` = 0.

    A delta is added to an imputed value after the imputation (`reference_based_condmean`,
    `reference_based_bayes`, ``delta=``); observed values are never shifted (`validate_delta` refuses a non-zero
    delta on one). ``delta`` and ``dlag`` (one number per visit each, as rbmi): each participant's delta at a visit
    at or after the ICE is the cumulative sum over the visits from the ICE to it of ``dlag[j] * delta[visit]``,
    j = 0 at the ICE visit; 0 before the ICE and on observed values. E.g. delta = (5, 6, 7, 8), dlag = (1, 2, 3, 4)
    and the ICE at visit 2 give 0, 6, 20, 44; a constant d after the ICE is delta = (d, ..., d), dlag =
    (1, 0, ..., 0); d per visit since the ICE (d, 2d, 3d, ...) is dlag = (1, 1, ..., 1). Participants with a
    missing arm, baseline or covariate are listed; the analyses leave them out (and count them)."""
    ids, arms, Y, ice_index, strategy = _participant_ice(frame, ice, design)
    T = len(design.visits)
    post = np.arange(T)[None, :] >= ice_index[:, None]
    missing = np.isnan(Y)
    is_mar = ~post | (strategy == "MAR")[:, None]
    values = np.zeros(Y.shape)
    if delta is not None or dlag is not None:
        if delta is None or dlag is None:
            raise SettingsError([("delta" if delta is None else "dlag", "delta and dlag go together: give both")])
        d, lag = _delta_vector(delta, "delta", T), _delta_vector(dlag, "dlag", T)
        for k in np.unique(ice_index[ice_index < T]):
            rows = ice_index == k
            values[rows, k:] = np.cumsum(lag[: T - k] * d[k:])
        values[~missing] = 0.0
    named = np.where(is_mar, "MAR", strategy[:, None])
    order = np.argsort(ids, kind="stable")
    table = pd.DataFrame(
        {
            "id": np.repeat(ids[order], T),
            "arm": np.repeat(arms[order], T),
            "visit": np.tile(np.array(design.visits, dtype=object), len(ids)),
            "is_mar": is_mar[order].ravel(),
            "is_missing": missing[order].ravel(),
            "is_post_ice": post[order].ravel(),
            "strategy": np.where(missing, named, None)[order].ravel(),
            "delta": values[order].ravel(),
        }
    )
    return table


def write_delta_template(template: pd.DataFrame, path) -> None:
    """Write a delta table (`delta_template`) as CSV for a user to fill in: the template's columns, booleans as
    True/False, an observed value's strategy blank, deltas in full precision."""
    template.loc[:, list(DELTA_TEMPLATE_COLUMNS)].to_csv(path, index=False, float_format="%.17g")


def validate_delta(
    delta: pd.DataFrame, frame: pd.DataFrame, design: StudyDesign, *, source: str = "delta table"
) -> pd.DataFrame:
    """Check a delta table (rbmi's ``delta`` argument of ``analyse()``: columns ``id``, ``visit``, ``delta``; other
    columns, such as those of `delta_template`, are read only for ``arm``) against the trial frame and the design.
    Rules, row by row (data rows counted from 1): ``id`` a participant of the frame; ``visit`` a post-baseline
    visit code of the design; ``delta`` a finite number; ``arm``, where given, the participant's arm; a non-zero
    delta only where the value is missing (deltas shift imputed values, never observed ones); one row per
    participant and visit. The first broken rule raises one `InputError` naming ``source``, row, column, value and
    rule. Participant x visit cells without a row take delta 0 (as rbmi). Returns ``id``, ``visit`` (text) and
    ``delta`` (float)."""
    absent = [c for c in DELTA_COLUMNS if c not in delta.columns]
    if absent:
        raise InputError(
            f"{source}: column(s) {absent} not found; rule: a delta table has columns {list(DELTA_COLUMNS)} "
            f"(write one with delta_template); columns present: {list(delta.columns)}"
        )
    table = delta.reset_index(drop=True)
    ids = table["id"].astype("string").str.strip()
    visits = table["visit"].astype("string").str.strip()
    raw = table["delta"]
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        values = raw.to_numpy(dtype=float)
        blank = np.isnan(values)
    else:
        text = raw.astype("string").str.strip()
        blank = (text.isna() | (text == "")).to_numpy()
        values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
    Y = _visit_matrix(frame, design)
    frame_ids = frame["id"].astype(str).to_numpy()
    row_of = {v: i for i, v in enumerate(frame_ids)}
    arm_of = dict(zip(frame_ids, frame["arm"].astype(str)))
    col_of = {v: k for k, v in enumerate(design.visits)}
    known_id = ids.isin(list(row_of)).fillna(False).to_numpy(dtype=bool)
    known_visit = visits.isin(list(design.visits)).fillna(False).to_numpy(dtype=bool)
    observed = np.zeros(len(table), dtype=bool)
    both = known_id & known_visit
    if both.any():
        r = np.array([row_of[v] for v in ids[both]])
        c = np.array([col_of[v] for v in visits[both]])
        observed[both] = ~np.isnan(Y[r, c])
    arms = table["arm"].astype("string").str.strip() if "arm" in table.columns else None

    def shown(series, i):
        value = series.iloc[i] if isinstance(series, pd.Series) else series[i]
        return "" if pd.isna(value) else str(value)

    for i in range(len(table)):
        if not known_id[i]:
            value = shown(ids, i)
            why = "blank; rule: a value is needed" if value == "" else "rule: a participant of the trial frame"
            raise InputError(f"{source}: row {i + 1}, column id, value '{value}': {why}")
        if not known_visit[i]:
            value = shown(visits, i)
            rule = f"a post-baseline visit of the design, one of {list(design.visits)}"
            why = "blank; rule: a value is needed" if value == "" else f"rule: {rule}"
            raise InputError(f"{source}: row {i + 1}, column visit, value '{value}': {why}")
        if blank[i]:
            raise InputError(
                f"{source}: row {i + 1}, column delta, value '': blank; rule: a number is needed (0 = no shift)"
            )
        if not np.isfinite(values[i]):
            raise InputError(
                f"{source}: row {i + 1}, column delta, value '{shown(raw, i)}': not a finite number; rule: the "
                "delta is a number in the outcome's units"
            )
        if arms is not None and shown(arms, i) not in ("", arm_of[ids.iloc[i]]):
            raise InputError(
                f"{source}: row {i + 1}, column arm, value '{shown(arms, i)}': participant '{ids.iloc[i]}' is in arm "
                f"'{arm_of[ids.iloc[i]]}' in the data; rule: the arm of the participant (or blank)"
            )
        if observed[i] and values[i] != 0.0:
            raise InputError(
                f"{source}: row {i + 1}, column delta, value '{shown(raw, i)}': participant '{ids.iloc[i]}' has an "
                f"observed value at visit '{visits.iloc[i]}'; rule: a delta shifts imputed (missing) values only, "
                "so it is 0 where the value is observed"
            )
    twice = pd.DataFrame({"id": ids, "visit": visits}).duplicated()
    if twice.any():
        i = int(np.flatnonzero(twice.to_numpy())[0])
        raise InputError(
            f"{source}: row {i + 1}, columns id and visit, value '{ids.iloc[i]}' at '{visits.iloc[i]}': a second row "
            "for this participant and visit; rule: one row per participant and visit"
        )
    return pd.DataFrame(
        {"id": ids.astype(object).to_numpy(), "visit": visits.astype(object).to_numpy(), "delta": values}
    )


def read_delta(path, frame: pd.DataFrame, design: StudyDesign) -> pd.DataFrame:
    """Read a delta table from a CSV file (`write_delta_template`, filled in) and check it (`validate_delta`; the
    errors name the file). Every column is read as text, so ids and visit codes keep their spelling."""
    from pathlib import Path

    path = Path(path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found; rule: a delta table (CSV) written by write_delta_template") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not a readable CSV file ({err}); rule: a comma-separated delta table") from None
    return validate_delta(table, frame, design, source=str(path))


def delta_shift(delta: pd.DataFrame, model: ImputationModel) -> np.ndarray:
    """The (n, T) deltas of a checked delta table (`validate_delta`) in the imputation model's participant and
    visit order: 0 where the table has no row; rows of participants the model left out (missing arm, baseline or
    covariate; counted in ``n_excluded``) are not used. Non-zero only on missing values."""
    n, T = model.y.shape
    out = np.zeros((n, T))
    where = {v: i for i, v in enumerate(model.ids)}
    col = {v: k for k, v in enumerate(model.visits)}
    rows = delta["id"].astype(str).map(where)
    kept = rows.notna().to_numpy()
    r = rows[kept].to_numpy(dtype=int)
    c = delta["visit"].astype(str)[kept].map(col).to_numpy(dtype=int)
    out[r, c] = delta["delta"].to_numpy(dtype=float)[kept]
    if (out[~np.isnan(model.y)] != 0.0).any():
        raise AnalysisError("a delta on an observed value: deltas shift imputed values only (use validate_delta)")
    return out


def delta_text(shift: np.ndarray, model: ImputationModel) -> str:
    """The method text of a delta adjustment: how many imputed values were shifted, per arm, and by how much."""
    design = model.design
    parts = []
    for arm in design.arms:
        cells = shift[model.arms == arm]
        moved = cells[cells != 0.0]
        if len(moved):
            parts.append(
                f"{len(moved)} of {design.arm_label(arm)}'s {int(np.isnan(model.y[model.arms == arm]).sum())} imputed "
                f"values by {moved.min():+.4g} to {moved.max():+.4g}"
            )
        else:
            parts.append(f"none of {design.arm_label(arm)}'s imputed values")
    return (
        "delta adjustment after the imputation (rbmi analyse(delta)): shifted "
        + "; ".join(parts)
        + "; observed values not shifted"
    )


@dataclass(frozen=True)
class TippingGrid(ResultMixin):
    """A two-dimensional tipping-point analysis (Cro et al. 2020; rbmi vignette "Advanced functionality", section
    "Simple delta adjustments and tipping point analyses"): the intervention - control contrast at ``timepoint``
    over a grid of shifts added to the imputed values of each arm.

    ``grid``: one row per cell (intervention delta outer, control delta inner): ``delta_intervention``,
    ``delta_control``, ``estimate``, ``se``, ``ci_low``, ``ci_high`` (level 1 - alpha), ``df`` (NaN for the normal
    jackknife), ``statistic``, ``p``, ``significant`` (p < alpha), ``conclusion`` (one of `CONCLUSIONS`: the sign
    is that of intervention - control) and ``boundary`` (see `tipping_point_2d`); with the Bayesian method also
    the Monte Carlo SEs ``mcse_estimate`` and ``mcse_p``. ``tipping_points``: where p = alpha between neighbouring
    grid values whose conclusions differ, solved along each grid line (``varied``: the arm whose delta varies).
    ``at_zero``: the estimate, se, p and conclusion without a delta. ``shifted``: per arm and visit the
    participants, imputed values, the imputed values the deltas shift (at and after the ICE) and those they do not
    (intermittent values before the ICE or without one, imputed under MAR), and the largest multiplier of the
    delta (> 1 when ``cumulative``). ``flags``: what must be shown with the numbers (the Bayesian sampler did not
    converge; `MMRMPosterior`)."""

    grid: pd.DataFrame
    tipping_points: pd.DataFrame
    at_zero: dict
    shifted: pd.DataFrame
    timepoint: str
    outcome: str
    alpha: float
    cumulative: bool
    deltas_intervention: tuple
    deltas_control: tuple
    n_participants: int
    n_excluded: int
    n_fits: int
    seconds: float
    method: str
    notes: str
    design: StudyDesign
    flags: tuple = ()

    _json_skip = ("design", "seconds")

    def matrix(self, column: str = "p") -> np.ndarray:
        """``column`` of the grid as a (len(deltas_intervention), len(deltas_control)) array."""
        return self.grid[column].to_numpy().reshape(len(self.deltas_intervention), len(self.deltas_control))

    def to_frame(self) -> pd.DataFrame:
        """The grid as estimate rows (canonical columns, then the deltas, conclusion and boundary)."""
        d = self.design
        g = self.grid
        out = pd.DataFrame(
            {
                "quantity": [
                    f"{d.contrast_label} at {d.visit_label(self.timepoint)}, delta {d.arm_label(d.intervention)} "
                    f"{a:+g}, {d.arm_label(d.control)} {c:+g}"
                    for a, c in zip(g["delta_intervention"], g["delta_control"])
                ],
                **{k: g[k] for k in ("estimate", "se", "ci_low", "ci_high", "df", "statistic", "p")},
                "method": self.method,
                "notes": self.notes,
                "outcome": self.outcome,
                "timepoint": self.timepoint,
            }
        )
        extra = [c for c in g.columns if c not in out.columns]
        return pd.concat([out, g[extra]], axis=1)

    def summary(self) -> str:
        d = self.design
        z = self.at_zero
        points = [
            f"p = {self.alpha:g} at delta {d.arm_label(d.intervention)} {r.delta_intervention:+.4g}, "
            f"{d.arm_label(d.control)} {r.delta_control:+.4g} ({r.from_conclusion} -> {r.to_conclusion})"
            for r in self.tipping_points.itertuples()
            if (r.varied == "intervention" and r.delta_control == 0.0)
            or (r.varied == "control" and r.delta_intervention == 0.0)
        ]
        return summary_block(
            f"Two-dimensional tipping point of {self.outcome or 'the outcome'} at {d.visit_label(self.timepoint)}",
            [
                ("participants (excluded)", f"{self.n_participants} ({self.n_excluded})"),
                ("without delta", f"{z['estimate']:.4g} (SE {z['se']:.4g}, p {z['p']:.4g}): {z['conclusion']}"),
                ("grid", f"{len(self.deltas_intervention)} x {len(self.deltas_control)} cells"),
                ("cells at the boundary", int(self.grid["boundary"].sum())),
            ],
            None,
            [*self.flags, *points, f"Method: {self.method}", self.notes],
        )


def _grid_values(values, name: str) -> tuple:
    try:
        out = np.asarray(list(values), dtype=float)
    except (TypeError, ValueError):
        raise SettingsError([(name, f"must be a list of numbers (outcome units), got {values!r}")]) from None
    if out.ndim != 1 or len(out) == 0 or not np.isfinite(out).all():
        raise SettingsError([(name, f"must be one or more finite numbers (outcome units), got {values!r}")])
    if len(np.unique(out)) != len(out):
        raise SettingsError([(name, f"has a repeated value: {sorted(out.tolist())}")])
    return tuple(float(v) for v in np.sort(out))


def _conclusion(estimate, p, alpha) -> np.ndarray:
    """0 significant negative, 1 not significant, 2 significant positive (index into `CONCLUSIONS`)."""
    estimate, p = np.asarray(estimate, dtype=float), np.asarray(p, dtype=float)
    return np.where(p < alpha, np.where(estimate > 0, 2, 0), 1)


def _boundary(codes: np.ndarray) -> np.ndarray:
    """Cells whose conclusion differs from that of a neighbour along a grid line (left, right, above, below)."""
    out = np.zeros(codes.shape, dtype=bool)
    across = codes[1:, :] != codes[:-1, :]
    out[1:, :] |= across
    out[:-1, :] |= across
    along = codes[:, 1:] != codes[:, :-1]
    out[:, 1:] |= along
    out[:, :-1] |= along
    return out


def _tipping_roots(evaluate, deltas_a, deltas_c, codes, alpha) -> list[dict]:
    """p = alpha between neighbouring grid values with different conclusions, along each grid line, by Brent's
    method on p - alpha (two roots, either side of the estimate's zero, when both neighbours are significant with
    opposite signs)."""
    from scipy.optimize import brentq

    rows = []

    def solve(fixed_is_a, fixed, lo, hi, code_lo, code_hi):
        def at(x):
            return evaluate(fixed, x) if fixed_is_a else evaluate(x, fixed)

        def p_gap(x):
            return at(x)[2] - alpha

        spans = [(lo, hi)]
        if code_lo != 1 and code_hi != 1:  # significant both sides with opposite signs: cross 0 first
            zero = brentq(lambda x: at(x)[0], lo, hi, xtol=1e-12, rtol=1e-14)
            spans = [(lo, zero), (zero, hi)]
        for a, b in spans:
            if np.sign(p_gap(a)) == np.sign(p_gap(b)):
                continue
            x = brentq(p_gap, a, b, xtol=1e-12, rtol=1e-14)
            est, se, p = at(x)
            rows.append(
                {
                    "varied": "control" if fixed_is_a else "intervention",
                    "delta_intervention": fixed if fixed_is_a else x,
                    "delta_control": x if fixed_is_a else fixed,
                    "estimate": est,
                    "se": se,
                    "p": p,
                    "from_conclusion": CONCLUSIONS[code_lo],
                    "to_conclusion": CONCLUSIONS[code_hi],
                }
            )

    for i, a in enumerate(deltas_a):
        for j in np.flatnonzero(codes[i, 1:] != codes[i, :-1]):
            solve(True, a, deltas_c[j], deltas_c[j + 1], codes[i, j], codes[i, j + 1])
    for j, c in enumerate(deltas_c):
        for i in np.flatnonzero(codes[1:, j] != codes[:-1, j]):
            solve(False, c, deltas_a[i], deltas_a[i + 1], codes[i, j], codes[i + 1, j])
    return rows


def tipping_point_2d(
    frame: pd.DataFrame,
    ice: pd.DataFrame,
    design: StudyDesign,
    *,
    deltas_intervention,
    deltas_control,
    method: str = "condmean_jackknife",
    visit: str | None = None,
    cumulative: bool = False,
    alpha: float = 0.05,
    covariates=(),
    change: bool = False,
    reference: str | None = None,
    outcome: str = "",
    seed: int | None = None,
    m: int = BAYES_M,
    chains: int = BAYES_CHAINS,
    burn_in: int = BAYES_BURN_IN,
    thin: int = BAYES_THIN,
    n_samples: int | None = None,
    bootstrap_ci: str = "percentile",
    failure_threshold: float = BOOTSTRAP_FAILURE_THRESHOLD,
) -> TippingGrid:
    """Two-dimensional tipping-point analysis (Cro et al. 2020, section 4; rbmi vignette "Advanced
    functionality", tipping point analyses): for every pair (a, c) of ``deltas_intervention`` x ``deltas_control``
    (outcome units), a is added to every imputed value of the intervention arm and c to every imputed value of the
    control arm at and after the participant's ICE (or, ``cumulative``, a and c times the number of visits since
    the ICE, counting the ICE visit as 1: rbmi's ``delta_template`` with dlag = (1, ..., 1)); the contrast
    (intervention - control) at ``visit`` (default the last) is estimated on the shifted data with its SE, CI
    (level 1 - ``alpha``) and p. Missing values before the ICE or of participants without one (MAR) are not
    shifted (counted in ``shifted``).

    ``method``: ``condmean_jackknife`` (`reference_based_condmean`; deterministic): the deltas change the imputed
    values, not the imputation model, so the n + 1 REML fits of one jackknife run serve the whole grid, and since
    the ANCOVA is linear in the data each sample's estimate is e_b + a t_b + c u_b (t_b, u_b: the ANCOVA contrast
    of the unit shifts in sample b): the grid costs one jackknife run plus two ANCOVAs. The jackknife SE is taken
    over the shifted leave-one-out estimates, so it changes with the deltas (leaving out a participant with an
    imputed value changes the share of shifted values). ``condmean_bootstrap`` (`reference_based_condmean` with
    ``inference="bootstrap"``: needs ``seed`` and ``n_samples``; ``bootstrap_ci``): the same linearity on the
    bootstrap samples, whose fits (one set, seeded) serve the whole grid; the percentile CI and p, or the normal
    ones, per cell. ``bayes`` (`reference_based_bayes`, needs ``seed``; ``m``,
    ``chains``, ``burn_in``, ``thin``): one set of draws and imputations serves every cell (common random numbers),
    Rubin's rules per cell, with the Monte Carlo SEs of the estimate and of p.

    Conclusion per cell: significant positive (p < alpha, estimate > 0), significant negative, or not significant.
    The tipping contour is where the conclusion changes, i.e. where p = alpha: a cell is marked ``boundary`` when
    its conclusion differs from that of at least one neighbour along a grid line (the cell before or after it in
    intervention delta or in control delta), so the marked cells lie on both sides of the contour, which passes
    between them. ``tipping_points`` locates the contour exactly on each grid line between such neighbours (Brent's
    method on p - alpha; a contour that crosses a grid line twice between two neighbours with the same conclusion is
    not seen at the grid's resolution)."""
    start = time.perf_counter()
    if method not in TIPPING_METHODS:
        raise SettingsError([("method", f"{method!r} is not one of {list(TIPPING_METHODS)}")])
    if not 0.0 < float(alpha) < 0.5:
        raise SettingsError([("alpha", f"must be between 0 and 0.5, got {alpha!r}")])
    visit = design.visits[-1] if visit is None else str(visit)
    if visit not in design.visits:
        raise SettingsError([("visit", f"{visit!r} is not one of the post-baseline visits {list(design.visits)}")])
    if method == "bayes" and seed is None:
        raise SettingsError([("seed", "the Bayesian method needs a seed")])
    if method == "bayes" and m < 3:
        raise SettingsError([("m", f"must be >= 3 (Rubin's rules and their Monte Carlo error), got {m}")])
    if method == "condmean_bootstrap":
        check_condmean_settings("bootstrap", n_samples, seed, bootstrap_ci, "ancova", failure_threshold)
    grid_a = _grid_values(deltas_intervention, "deltas_intervention")
    grid_c = _grid_values(deltas_control, "deltas_control")
    alpha = float(alpha)
    level = 1.0 - alpha
    k = design.visits.index(visit)
    model = fit_imputation_model(frame, ice, design, covariates=covariates, change=change, reference=reference)
    n, T = model.y.shape
    unit = delta_shift(
        delta_template(frame, ice, design, delta=np.ones(T), dlag=np.ones(T) if cumulative else np.eye(T)[0]),
        model,
    )
    unit_a = np.where((model.arms == design.intervention)[:, None], unit, 0.0)
    unit_c = np.where((model.arms == design.control)[:, None], unit, 0.0)
    A = np.asarray(grid_a)[:, None]
    C = np.asarray(grid_c)[None, :]
    notes, flags = [], ()
    if model.n_excluded:
        notes.append(f"{model.n_excluded} participant(s) left out for a missing arm, baseline or covariate")

    if method == "condmean_jackknife":
        betas, sigmas, converged = jackknife_fits(model)
        if not converged.all():
            who = [model.ids[i] for i in np.flatnonzero(~converged)][:5]
            raise AnalysisError(f"{int((~converged).sum())} leave-one-out refit(s) did not converge (without {who})")
        completed, weights = jackknife_completed(model, betas, sigmas)
        e = ancova_by_visit(completed[..., k : k + 1], model.Z, weights)["contrast"][:, 0]
        t = ancova_by_visit(np.broadcast_to(unit_a[:, k : k + 1], (n + 1, n, 1)), model.Z, weights)["contrast"][:, 0]
        u = ancova_by_visit(np.broadcast_to(unit_c[:, k : k + 1], (n + 1, n, 1)), model.Z, weights)["contrast"][:, 0]
        crit = stats.norm.ppf(0.5 + level / 2)

        def evaluate(a, c):
            samples = e + a * t + c * u
            se = float(jackknife_se(samples[1:]))
            return float(samples[0]), se, float(2 * stats.norm.sf(abs(samples[0] / se)))

        samples = e[None, None, :] + A[..., None] * t[None, None, :] + C[..., None] * u[None, None, :]
        estimate = samples[..., 0]
        se = jackknife_se(np.moveaxis(samples[..., 1:], -1, 0))
        statistic = estimate / se
        p = 2 * stats.norm.sf(np.abs(statistic))
        df = np.full(estimate.shape, np.nan)
        extra = {}
        n_fits = n + 1
        text = (
            f"conditional mean imputation with jackknife inference (Wolbers et al. 2022; {n} leave-one-out refits "
            "shared by every cell), normal CI and p"
        )
    elif method == "condmean_bootstrap":
        boot = condmean_bootstrap_fits(
            model, n_samples=int(n_samples), seed=int(seed), failure_threshold=failure_threshold
        )
        if boot.failures:
            notes.append(boot.note(failure_threshold))
        completed, weights = conditional_mean_samples(model, boot.beta, boot.sigma), boot.weights
        S = len(weights)
        e = ancova_by_visit(completed[..., k : k + 1], model.Z, weights)["contrast"][:, 0]
        t = ancova_by_visit(np.broadcast_to(unit_a[:, k : k + 1], (S, n, 1)), model.Z, weights)["contrast"][:, 0]
        u = ancova_by_visit(np.broadcast_to(unit_c[:, k : k + 1], (S, n, 1)), model.Z, weights)["contrast"][:, 0]

        def evaluate(a, c):
            one = e + a * t + c * u
            r = bootstrap_pool(one[:1], one[1:, None], level, bootstrap_ci)
            return float(r["estimate"][0]), float(r["se"][0]), float(r["p"][0])

        samples = (e[None, None, :] + A[..., None] * t[None, None, :] + C[..., None] * u[None, None, :]).reshape(-1, S)
        shape = (len(grid_a), len(grid_c))
        r = {
            key: v.reshape(shape)
            for key, v in bootstrap_pool(samples[:, 0], samples[:, 1:].T, level, bootstrap_ci).items()
        }
        estimate, se, statistic, p = r["estimate"], r["se"], r["statistic"], r["p"]
        ci_bounds = (r["ci_low"], r["ci_high"])
        df = np.full(shape, np.nan)
        extra = {"bootstrap_se": r["bootstrap_se"]}
        n_fits = 1 + boot.drawn
        text = (
            f"conditional mean imputation with bootstrap inference (Wolbers et al. 2022; {n_samples} samples drawn "
            f"within each arm, seed {seed}, their refits shared by every cell), {bootstrap_ci} CI and p"
        )
    else:
        posterior, completed = bayes_completed(model, seed=seed, m=m, chains=chains, burn_in=burn_in, thin=thin)
        base = completed[..., k : k + 1]
        ua, uc = unit_a[:, k : k + 1], unit_c[:, k : k + 1]
        ess_chain = posterior.chain

        def pooled(cells):
            est = np.empty((m, len(cells)))
            var = np.empty((m, len(cells)))
            for j, (a, c) in enumerate(cells):
                res, v, dfc = ancova_inference(base + a * ua + c * uc, model.Z)
                est[:, j], var[:, j] = res[:, 0], v[:, 0]
            frame_ = pool_rubin_many(est, var, dfc)
            return frame_, est, var, dfc

        def evaluate(a, c):
            row = pooled([(a, c)])[0].iloc[0]
            return float(row["estimate"]), float(row["se"]), float(row["p"])

        cells = [(a, c) for a in grid_a for c in grid_c]
        table, est, var, dfc = pooled(cells)
        shape = (len(grid_a), len(grid_c))
        estimate = table["estimate"].to_numpy().reshape(shape)
        se = table["se"].to_numpy().reshape(shape)
        df = table["df"].to_numpy().reshape(shape)
        statistic = estimate / se
        p = table["p"].to_numpy().reshape(shape)
        crit = stats.t.ppf(0.5 + level / 2, df)
        mc = rubin_mc_error(est, var, dfc, level, _chain_ess(est, ess_chain))
        extra = {"mcse_estimate": mc["estimate"], "mcse_p": mc["p"]}
        n_fits = 1
        text = (
            f"Bayesian multiple imputation (m = {m}, seed {seed}; the same draws and imputations in every cell), "
            f"{posterior.method}; Rubin's rules, Barnard-Rubin df, t CI and p"
        )
        flags = tuple(f"{outcome}: {f}" if outcome else f for f in posterior.flags)
    if method != "condmean_bootstrap":
        ci_bounds = (estimate - crit * se, estimate + crit * se)
    codes = _conclusion(estimate, p, alpha)
    boundary = _boundary(codes)
    grid = pd.DataFrame(
        {
            "delta_intervention": np.repeat(grid_a, len(grid_c)),
            "delta_control": np.tile(grid_c, len(grid_a)),
            "estimate": estimate.ravel(),
            "se": se.ravel(),
            "ci_low": ci_bounds[0].ravel(),
            "ci_high": ci_bounds[1].ravel(),
            "df": df.ravel(),
            "statistic": statistic.ravel(),
            "p": p.ravel(),
            "significant": (p < alpha).ravel(),
            "conclusion": np.asarray(CONCLUSIONS, dtype=object)[codes].ravel(),
            "boundary": boundary.ravel(),
            **{key: np.asarray(v).ravel() for key, v in extra.items()},
        }
    )
    points = pd.DataFrame(
        _tipping_roots(evaluate, grid_a, grid_c, codes, alpha),
        columns=[
            "varied",
            "delta_intervention",
            "delta_control",
            "estimate",
            "se",
            "p",
            "from_conclusion",
            "to_conclusion",
        ],
    )
    est0, se0, p0 = evaluate(0.0, 0.0)
    at_zero = {
        "estimate": est0,
        "se": se0,
        "p": p0,
        "conclusion": CONCLUSIONS[int(_conclusion(est0, p0, alpha))],
    }
    shifted_rows = []
    for arm in design.arms:
        sel = model.arms == arm
        for j, v in enumerate(design.visits):
            missing = np.isnan(model.y[sel, j])
            moved = unit[sel, j] != 0.0
            shifted_rows.append(
                {
                    "arm": arm,
                    "timepoint": v,
                    "n": int(sel.sum()),
                    "n_imputed": int(missing.sum()),
                    "n_shifted": int(moved.sum()),
                    "n_imputed_not_shifted": int((missing & ~moved).sum()),
                    "max_multiplier": float(unit[sel, j].max()) if sel.any() else 0.0,
                }
            )
    counts = {s: int((model.strategy[model.ice_index < T] == s).sum()) for s in STRATEGIES}
    strategies = ", ".join(f"{s} ({STRATEGY_NAMES[s]}) {c}" for s, c in counts.items() if c) or "no ICE (all MAR)"
    how = "times the number of visits since the ICE (1 at the ICE visit)" if cumulative else "the same at every visit"
    full = (
        f"two-dimensional tipping point (Cro et al. 2020): deltas added to the imputed values at and after the ICE, "
        f"{how}, of {design.arm_label(design.intervention)} (deltas_intervention) and "
        f"{design.arm_label(design.control)} (deltas_control), after the imputation (ICE strategies: {strategies}; "
        f"reference arm {design.arm_label(model.reference_arm)}); {text}; ANCOVA at {design.visit_label(visit)} on "
        "arm and baseline"
        + (f" and {', '.join(covariates)}" if covariates else "")
        + f"; conclusion changes where p = {alpha:g}"
    )
    return TippingGrid(
        grid=grid,
        tipping_points=points,
        at_zero=at_zero,
        shifted=pd.DataFrame(shifted_rows),
        timepoint=visit,
        outcome=outcome,
        alpha=alpha,
        cumulative=bool(cumulative),
        deltas_intervention=grid_a,
        deltas_control=grid_c,
        n_participants=n,
        n_excluded=model.n_excluded,
        n_fits=n_fits,
        seconds=time.perf_counter() - start,
        method=full,
        notes="; ".join(notes),
        design=design,
        flags=flags,
    )


# ==================================================================================================
# Part 4: bootstrap inference for conditional mean imputation; the MMRM as the analysis of completed data
# ==================================================================================================
#
# Wolbers et al. (2022), section 3 and appendix; rbmi's ``method_condmean(type = "bootstrap")`` and ``pool()``:
# the imputation model is refitted on B bootstrap samples of the participants, drawn with replacement within each
# arm (rbmi's default stratification: the arm), each sample is completed by conditional mean imputation at its own
# fit and analysed; the estimate is the full-data one, its CI the percentile interval of the B sample estimates or
# estimate -/+ z x their SD (the normal interval). The analysis of each completed data set is the ANCOVA per visit
# or the study's MMRM (`analyse_completed`).

# the constants of this part (CONDMEAN_INFERENCES, BOOTSTRAP_CIS, ANALYSES, ...) are at the top of Part 1


def check_condmean_settings(
    inference: str, n_samples, seed, bootstrap_ci: str, analysis: str, failure_threshold: float = 0.01
) -> None:
    """The settings of `reference_based_condmean` beyond the model: one `SettingsError` listing each bad one."""
    problems = []
    if inference not in CONDMEAN_INFERENCES:
        problems.append(("inference", f"{inference!r} is not one of {list(CONDMEAN_INFERENCES)}"))
    if analysis not in ANALYSES:
        problems.append(("analysis", f"{analysis!r} is not one of {list(ANALYSES)}"))
    if inference == "bootstrap":
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 2:
            problems.append(("n_samples", f"the bootstrap needs a whole number of samples >= 2, got {n_samples!r}"))
        if seed is None:
            problems.append(("seed", "the bootstrap needs a seed (its samples are random)"))
        if bootstrap_ci not in BOOTSTRAP_CIS:
            problems.append(("bootstrap_ci", f"{bootstrap_ci!r} is not one of {list(BOOTSTRAP_CIS)}"))
        if not 0.0 <= float(failure_threshold) < 1.0:
            problems.append(("failure_threshold", f"must be in [0, 1), got {failure_threshold!r}"))
    if problems:
        raise SettingsError(problems)


def bootstrap_samples(strata, count: int, seed: int) -> np.ndarray:
    """The first ``count`` bootstrap samples of the participants (``strata``: one label per participant, e.g. the
    arm), as a (count, n) array of participant indices: each sample draws, within each stratum (in sorted label
    order), as many participants as it holds, with replacement and equal probability (rbmi's ``sample_ids`` with
    its default strata, the arm), so every sample keeps each arm's size. One numpy Generator,
    ``spawn_generator(seed, BOOTSTRAP_STREAM)``, draws the samples in turn: sample k is the same whatever
    ``count`` is (a prefix), which `reference_based_condmean` relies on when it replaces a failed sample by the
    next one."""
    strata = np.asarray(strata, dtype=object)
    rng = spawn_generator(seed, BOOTSTRAP_STREAM)
    groups = [np.flatnonzero(strata == s) for s in sorted(set(strata.tolist()), key=str)]
    return (
        np.stack([_bootstrap_draw(rng, groups) for _ in range(int(count))])
        if count
        else np.empty((0, len(strata)), int)
    )


def _bootstrap_draw(rng: np.random.Generator, groups: list) -> np.ndarray:
    return np.concatenate([g[rng.integers(0, len(g), len(g))] for g in groups])


def sample_weights(samples: np.ndarray, n: int) -> np.ndarray:
    """(S, n) how often each participant is in each sample (frequency weights: a weighted analysis of all n equals
    the analysis of the sample with its repeated participants)."""
    samples = np.asarray(samples, dtype=int)
    return np.stack([np.bincount(s, minlength=n) for s in samples]).astype(float) if len(samples) else np.empty((0, n))


def bootstrap_fit(model: ImputationModel, sample: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """The imputation model refitted on one bootstrap sample (participant indices, repeats allowed: each copy a
    participant of its own): REML warm-started at the full fit's Sigma, redone from the OLS start if that does
    not converge (as `jackknife_fits`). Returns (beta, Sigma, "") or (None, None, why it failed: not estimable on
    the sample, or not converged)."""
    sample = np.asarray(sample, dtype=int)
    design = _without(model.mmrm, sample)
    grid = np.where(model.fit_observed, model.y, np.nan)[sample]
    try:
        fit = fit_mmrm_grid(design, grid, start=model.sigma)
        if not fit.converged:
            fit = fit_mmrm_grid(design, grid)
    except (AnalysisError, np.linalg.LinAlgError) as err:
        return None, None, str(err)
    if not fit.converged:
        return None, None, f"did not converge ({fit.notes})"
    return fit.beta, fit.sigma, ""


@dataclass(frozen=True)
class BootstrapFits:
    """The imputation model on B bootstrap samples: ``samples`` (B, n) the participant indices of the samples
    kept, ``beta`` (B, p), ``sigma`` (B, T, T); ``failures``: (draw number from 1, reason) of each sample whose fit
    failed and was replaced by the next draw; ``drawn`` = B + failures."""

    samples: np.ndarray
    beta: np.ndarray
    sigma: np.ndarray
    failures: tuple
    drawn: int
    limit: int
    seed: int

    @property
    def weights(self) -> np.ndarray:
        """(1 + B, n) frequency weights: row 0 the full data (every participant once), then the samples."""
        n = self.samples.shape[1]
        return np.concatenate([np.ones((1, n)), sample_weights(self.samples, n)])

    def note(self, threshold: float) -> str:
        if not self.failures:
            return ""
        shown = "; ".join(f"draw {k}: {why}" for k, why in self.failures[:3]) + (
            "; ..." if len(self.failures) > 3 else ""
        )
        return (
            f"{len(self.failures)} of {self.drawn} bootstrap samples could not be fitted and were replaced by the next "
            f"draws ({shown}); at most ceil({threshold:g} x B) = {self.limit} allowed, as rbmi"
        )


def condmean_bootstrap_fits(
    model: ImputationModel, *, n_samples: int, seed: int, failure_threshold: float = BOOTSTRAP_FAILURE_THRESHOLD
) -> BootstrapFits:
    """The imputation model refitted on ``n_samples`` bootstrap samples (`bootstrap_samples`, stratified by arm,
    seeded by ``seed``; `bootstrap_fit`, warm-started). A sample whose fit fails is counted, its reason kept, and
    replaced by the next draw of the same stream (rbmi's ``get_draws_mle``); more than ceil(``failure_threshold``
    x ``n_samples``) failures raise `AnalysisError`."""
    limit = int(np.ceil(failure_threshold * n_samples))
    rng = spawn_generator(seed, BOOTSTRAP_STREAM)
    strata = model.arms.astype(object)
    groups = [np.flatnonzero(strata == s) for s in sorted(set(strata.tolist()), key=str)]
    kept, betas, sigmas, failures = [], [], [], []
    drawn = 0
    while len(kept) < n_samples:
        sample = _bootstrap_draw(rng, groups)
        drawn += 1
        beta, sigma, why = bootstrap_fit(model, sample)
        if beta is None:
            failures.append((drawn, why))
            if len(failures) > limit:
                raise AnalysisError(
                    f"{len(failures)} of {drawn} bootstrap samples could not be fitted (more than "
                    f"ceil({failure_threshold:g} x {n_samples}) = {limit}); first: draw {failures[0][0]}: "
                    f"{failures[0][1]}"
                )
            continue
        kept.append(sample)
        betas.append(beta)
        sigmas.append(sigma)
    return BootstrapFits(
        samples=np.stack(kept),
        beta=np.stack(betas),
        sigma=np.stack(sigmas),
        failures=tuple(failures),
        drawn=drawn,
        limit=limit,
        seed=int(seed),
    )


def conditional_mean_samples(model: ImputationModel, betas: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """(1 + S, n, T): every participant completed by conditional mean imputation under its strategy at the full
    fit (row 0) and at each of S parameter sets (``betas`` (S, p), ``sigmas`` (S, T, T)). A participant's
    completed values depend on its own data and the parameters only, so a bootstrap sample's completed data are
    its participants' rows (with their repeats; `sample_weights`)."""
    beta_all = np.concatenate([model.beta[None], betas])
    sigma_all = np.concatenate([model.sigma[None], sigmas])
    mu = strategy_means(
        model.strategy,
        np.einsum("ntp,bp->bnt", model.X, beta_all),
        np.einsum("ntp,bp->bnt", model.X_ref, beta_all),
        model.ice_index,
    )
    return conditional_means(mu, sigma_all, model.y)


def mmrm_analysis_L(design: MMRMDesign) -> np.ndarray:
    """(3T, p): the rows of the contrast (intervention - control) per visit, the control arm's and the intervention
    arm's LS mean per visit of the study's MMRM on completely observed data (emmeans' reference grid:
    `imrstats.trial.mmrm.design.reference_grid`, numeric covariates at their mean over the analysed participants,
    categories equally weighted), in the order of `ancova_by_visit`'s results."""
    means, _ = reference_grid(design, np.ones(design.present.shape, dtype=bool))
    control, intervention = means[0::2], means[1::2]
    return np.concatenate([intervention - control, control, intervention])


def _fit_completed(designs: list, grids: np.ndarray, start: np.ndarray, what: str):
    """Fits of completely observed grids on designs of one shape, in batches (`fit_mmrm_many`, each warm-started at
    ``start``; a fit that does not converge is redone from the OLS start, `fit_mmrm_grid`). Yields (index, beta,
    cov_beta, dcov_beta, cov_theta)."""
    T = grids.shape[2]
    for lo in range(0, len(designs), MMRM_BATCH):
        chunk = list(range(lo, min(lo + MMRM_BATCH, len(designs))))
        fits = fit_mmrm_many(
            [designs[i] for i in chunk], grids[chunk], starts=np.broadcast_to(start, (len(chunk), T, T))
        )
        for b, i in enumerate(chunk):
            if fits.converged[b]:
                yield i, fits.beta[b], fits.cov_beta[b], fits.dcov_beta[b], fits.cov_theta[b]
                continue
            redo = fit_mmrm_grid(designs[i], grids[i])
            if not redo.converged:
                raise AnalysisError(f"the MMRM analysis of {what} {i} did not converge: {redo.notes}")
            yield i, redo.beta, redo.cov_beta_model, redo.dcov_beta, redo.cov_theta


def analyse_completed(
    model: ImputationModel, completed: np.ndarray, weights: np.ndarray | None = None, analysis: str = "ancova"
) -> np.ndarray:
    """Estimates (S, 3T) of S completed data sets (``completed`` (S, n, T)), each of the participants given by
    ``weights`` (S, n) (how often each is in the data set: 1 everywhere for the full data, 0 for one left out by
    the jackknife, counts for a bootstrap sample), in the order contrast (intervention - control), LS mean
    control, LS mean intervention, visit by visit within each.

    ``analysis``: ``ancova`` (`ancova_by_visit`: outcome ~ arm + baseline + covariates at each visit, rbmi's
    default) or ``mmrm`` (the study's MMRM, `imrstats.trial.design.mmrm_design`: a mean per visit, arm by visit,
    the baseline slope per visit or common as the design says, covariates shared across visits, unstructured
    Sigma, REML; fitted by the project's engine on each data set's participants with their repeats, warm-started
    at the imputation model's Sigma; contrasts and LS means `mmrm_analysis_L`). With a separate baseline slope per
    visit and no other covariate the two give the same estimates: on complete data with the same regressors at
    every visit, the GLS estimate is OLS visit by visit whatever Sigma is (Zellner 1962)."""
    completed = np.asarray(completed, dtype=float)
    S, n, T = completed.shape
    w = np.ones((S, n)) if weights is None else np.asarray(weights, dtype=float)
    if analysis == "ancova":
        res = ancova_by_visit(completed, model.Z, w)
        return np.concatenate([res["contrast"], res["lsmean_control"], res["lsmean_intervention"]], axis=1)
    if analysis != "mmrm":
        raise SettingsError([("analysis", f"{analysis!r} is not one of {list(ANALYSES)}")])
    counts = np.rint(w).astype(int)
    if (np.abs(counts - w) > 1e-12).any() or (counts < 0).any():
        raise AnalysisError("the MMRM analysis needs whole-number participant weights (how often each is in a sample)")
    rows = [np.repeat(np.arange(n), counts[s]) for s in range(S)]
    out = np.empty((S, 3 * T))
    by_size: dict[int, list[int]] = {}
    for s, r in enumerate(rows):
        by_size.setdefault(len(r), []).append(s)
    for members in by_size.values():
        designs = [_without(model.mmrm, rows[s]) for s in members]
        grids = np.stack([completed[s][rows[s]] for s in members])
        for i, beta, *_ in _fit_completed(designs, grids, model.sigma, "completed data set"):
            out[members[i]] = mmrm_analysis_L(designs[i]) @ beta
    return out


def mmrm_inference(model: ImputationModel, completed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The study's MMRM (`analyse_completed` with ``mmrm``) on each of m completed data sets of all participants
    (``completed`` (m, n, T)): estimates, variances (from the model-based cov(beta), (X'WX)^-1) and Satterthwaite
    df, each (m, 3T) in `analyse_completed`'s order, for Rubin's rules."""
    completed = np.asarray(completed, dtype=float)
    m, n, T = completed.shape
    L = mmrm_analysis_L(model.mmrm)
    est, var, df = (np.empty((m, 3 * T)) for _ in range(3))
    for i, beta, cov_beta, dcov, cov_theta in _fit_completed([model.mmrm] * m, completed, model.sigma, "imputation"):
        est[i] = L @ beta
        var[i] = np.einsum("lp,pq,lq->l", L, cov_beta, L)
        df[i] = satterthwaite_df(L, cov_beta, dcov, cov_theta)
    return est, var, df


def percentile_p(boot: np.ndarray) -> np.ndarray:
    """Two-sided p of the percentile bootstrap by inverting its interval (Wolbers et al. 2022, appendix; rbmi's
    ``pval_percentile``): per column of ``boot`` (B, K), q = the level at which the type-6 quantile of the B
    estimates is 0 (the p of H1: theta > 0; 1 - q that of H1: theta < 0), p = min(1, 2 min(q, 1 - q)). All
    estimates > 0: q = 0; all < 0: q = 1; all 0: p = 1; estimates equal to 0 at sorted ranks j0..j1:
    q = j0 / (B + 1) for the one side, 1 - j1 / (B + 1) for the other. Otherwise q is found exactly: between the
    sorted estimates x_j < 0 < x_(j+1) the quantile function is linear, so q = (j + x_j / (x_j - x_(j+1))) / (B + 1)
    (rbmi finds it by uniroot, to its default tolerance of about 1e-4). p = 0 means every estimate lies on one side
    of 0: the percentile p resolves nothing below about 2 / (B + 1)."""
    boot = np.asarray(boot, dtype=float)
    B = boot.shape[0]
    out = np.empty(boot.shape[1])
    for k in range(boot.shape[1]):
        x = np.sort(boot[:, k])
        if (x == 0).all():
            greater, less = 1.0, 1.0
        elif x[0] > 0:
            greater, less = 0.0, 1.0
        elif x[-1] < 0:
            greater, less = 1.0, 0.0
        elif (x == 0).any():
            ranks = np.flatnonzero(x == 0) + 1
            greater, less = ranks[0] / (B + 1), 1.0 - ranks[-1] / (B + 1)
        else:
            j = int((x < 0).sum())  # x[j - 1] < 0 < x[j]
            q = (j + x[j - 1] / (x[j - 1] - x[j])) / (B + 1)
            greater, less = q, 1.0 - q
        out[k] = min(1.0, 2.0 * min(greater, less))
    return out


def bootstrap_pool(estimate: np.ndarray, boot: np.ndarray, level: float, ci: str) -> dict:
    """Bootstrap inference (Efron & Tibshirani 1993; Wolbers et al. 2022, appendix; rbmi's ``pool()`` for
    bootstrap results) for the full-data ``estimate`` (K,) from the B sample estimates ``boot`` (B, K): arrays (K,)
    keyed estimate, se, ci_low, ci_high, statistic, p, bootstrap_se. ``bootstrap_se``: the SD (n - 1 divisor) of
    the B estimates. ``normal``: se = bootstrap_se, CI estimate -/+ z se, p from z = estimate / se (rbmi's
    ``pool_bootstrap_normal``). ``percentile``: CI = the (1 - level) / 2 and (1 + level) / 2 quantiles of the B
    estimates, R's type 6 (numpy's ``weibull``: the p-quantile at rank (B + 1) p, linear between ranks, the
    extremes beyond them); p by inverting that interval (`percentile_p`); no SE (NaN, as rbmi's
    ``pool_bootstrap_percentile``) and no statistic."""
    estimate = np.asarray(estimate, dtype=float)
    boot = np.asarray(boot, dtype=float)
    sd = boot.std(axis=0, ddof=1)
    if ci == "normal":
        crit = stats.norm.ppf(0.5 + level / 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(sd > 0, estimate / sd, np.nan)
        return {
            "estimate": estimate,
            "se": sd,
            "ci_low": estimate - crit * sd,
            "ci_high": estimate + crit * sd,
            "statistic": z,
            "p": 2 * stats.norm.sf(np.abs(z)),
            "bootstrap_se": sd,
        }
    if ci != "percentile":
        raise SettingsError([("bootstrap_ci", f"{ci!r} is not one of {list(BOOTSTRAP_CIS)}")])
    low, high = np.quantile(boot, [0.5 - level / 2, 0.5 + level / 2], axis=0, method="weibull")
    nan = np.full(estimate.shape, np.nan)
    return {
        "estimate": estimate,
        "se": nan,
        "ci_low": low,
        "ci_high": high,
        "statistic": nan,
        "p": percentile_p(boot),
        "bootstrap_se": sd,
    }


def analysis_text(analysis: str, design: StudyDesign, covariates=()) -> str:
    """The method text of the analysis of the completed data (`analyse_completed`)."""
    more = f" and {', '.join(covariates)}" if covariates else ""
    if analysis == "ancova":
        return "ANCOVA per visit on arm and baseline" + more
    slope = "one common baseline slope" if design.baseline_slope == "common" else "a baseline slope per visit"
    return (
        f"the study's MMRM on each completed data set (visit, arm by visit, {slope}"
        + (f", {', '.join(covariates)}" if covariates else "")
        + "; unstructured Sigma, REML), its contrasts and LS means per visit"
    )
