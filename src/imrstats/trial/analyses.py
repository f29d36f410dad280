"""Trial analyses of one outcome: ITT MMRM with multiple imputation, complete case, per protocol,
subgroup interactions, MNAR delta / tipping point, multiplicity (Jensen et al. 2019, "Statistical analysis").

Data: one row per randomised participant (`outcome_frame`): arm, covariates, sessions attended and the
outcome at baseline, post-intervention (``post``) and 12-month follow-up (``fu12``).

The study design (`trial.design.StudyDesign`, keyword ``design``; an imputation carries its own) names the
arms and the K >= 1 post-baseline visits: the default is the IMR trial's (IMR vs TAU; post, fu12), and
every analysis below reads "IMR - TAU", "post" and "fu12" as intervention - control and the study's visits.

Choices where the paper is vague ("the automatic procedure in SPSS ... 100 imputation estimates"):

* **Imputation model.** Chained equations (`imputation.impute_chained`; proper draws of the regression
  parameters), predictive mean matching (5 donors) by default because it keeps imputations inside the
  instrument's range and its observed (integer) values; Bayesian linear regression (``norm``) is the
  option. Targets: the outcome at baseline, post and fu12 (the baseline is imputed too, so everyone
  randomised is analysed: ITT), each imputed from the other two and from site, sex, age and diagnosis.
  Other instruments' baselines can be added as auxiliary targets (``auxiliary``). By default the
  imputation is done **separately within each arm** (``by_arm=True``): this is the arm included in the
  fullest form, an imputation model with every arm x covariate and arm x outcome interaction, so it is
  not narrower than the analysis model nor than the subgroup (arm x diagnosis, arm x sex) models,
  whose interactions a joint model with an arm main effect would bias toward zero (Sullivan et al.
  2018, Stat Methods Med Res 27:2610). ``by_arm=False`` gives one joint model with arm as a predictor.
* **Analysis model.** `mmrm.fit_mmrm_grid`: post and fu12 as repeated measures, fixed effects
  visit + arm:visit + baseline:visit + covariates, unstructured covariance, REML; each completed data set
  is fitted (warm-started from the previous fit), and the IMR - TAU contrasts and the adjusted means are
  pooled by Rubin's rules (`rubin.pool_rubin`). Refits of the same completed data (delta grid, subgroup
  models) start from the ITT fit's per-imputation Sigma and run as one batch (`mmrm.fit_mmrm_many`);
  `prefit_itt` runs several outcomes' ITT chains in lock step (`mmrm.fit_mmrm_chains`). Every fit takes
  the same start, Newton steps and stopping decisions as when fitted alone. Single-fit df are Satterthwaite
  (default) or Kenward-Roger (``df_method="kenward_roger"``: the KR-adjusted cov(beta) of each completed-data
  fit is then the within-imputation variance that Rubin's rules pool; the 1-df KR df equal Satterthwaite's).
* **df_complete for Barnard-Rubin** is n - p_k, the residual df of the complete-data model at visit k
  (n participants, p_k fixed effects that act at that visit). With complete data and an unstructured
  covariance the MMRM is a multivariate linear model, whose contrast t statistics have exactly n - p_k
  df when all covariates are visit-specific; with shared covariates the Satterthwaite df of the
  completed-data fits is within a fraction of a df of it (their mean is recorded next to it as a
  check). n - p_k is fixed, known before fitting and reproducible in R (pool with ``dfcom``).
* **Complete case**: ANCOVA (OLS) of the outcome at each visit on arm, baseline and covariates, among
  participants with both values, and descriptive n / mean / SD per arm and visit (Jensen et al. 2019, Table 3).
* **Per protocol** (Jensen et al. 2019, Table 4): within the IMR arm, one-way ANOVA of the observed outcome between
  0-threshold and > threshold sessions (the paper's "0-10 vs > 10"), and a linear regression on the
  number of sessions (attendance as a continuous variable).
* **Subgroups**: arm x subgroup interaction per visit in the MI-MMRM (visit-specific interaction columns),
  pooled by Rubin; plus on complete cases the ANCOVA interaction F test (R: ``anova(lm(...))``).
* **MNAR**: delta adjustment (van Buuren 2018, FIMD sec. 3.9.1; Cro et al. 2020, Stat Med 39:2815):
  delta is added to the IMR arm's imputed post and fu12 values of the *same* imputations, the MMRM is
  refitted and pooled; the tipping point is where the 95% CI first includes (or excludes) 0, found on
  the grid and refined by linear interpolation of the CI bound between the two grid points around it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from imrstats.errors import AnalysisError
from imrstats.results import Estimate, ResultMixin, confint_t, summary_block, to_frame
from imrstats.trial.design import (  # noqa: F401  (ALL_TIMEPOINTS, ARMS, TIMEPOINTS: the IMR trial's, re-exported)
    ALL_TIMEPOINTS,
    ARMS,
    DEFAULT_COVARIATES,
    DEFAULT_DESIGN,
    TIMEPOINTS,
    StudyDesign,
    analysable_rows,
    and_join,
    covariate_dummies,
    long_format,
    mmrm_design,
)
from imrstats.trial.mice import impute_chained
from imrstats.trial.mmrm import (
    MMRMResult,
    fit_mmrm_chains,
    fit_mmrm_many,
    reference_grid,
    satterthwaite_df,
)
from imrstats.trial.ols import fit_ols
from imrstats.trial.rubin import pool_rubin

# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------


PARTICIPANT_COLUMNS = ("site", "sex", "age", "diagnosis", "sessions_attended")
_NUMERIC_COLUMNS = ("age", "sessions_attended")


def outcome_frame(
    participants: pd.DataFrame,
    assessments: pd.DataFrame,
    outcome: str,
    *,
    auxiliary: Sequence[str] = (),
    design: StudyDesign = DEFAULT_DESIGN,
    columns: Sequence[str] = PARTICIPANT_COLUMNS,
) -> pd.DataFrame:
    """One row per participant: id, arm, the participant ``columns`` (default site, sex, age, diagnosis,
    sessions_attended; each one required) and the outcome at baseline (column ``baseline``, whatever the baseline
    visit's code) and at each post-baseline visit of ``design`` (columns named by the visit codes; NaN =
    missing); ``auxiliary`` instruments' baselines as ``aux_<key>``. ``sessions_attended``, when not among
    ``columns``, is a column of NaN (no attendance recorded)."""
    need_p = ["id", "arm", *columns]
    clash = [v for v in design.visits if v in ("id", "arm", *columns) or v.startswith("aux_")]
    if clash:
        raise AnalysisError(
            f"visit name(s) {clash} are also participant columns of the trial frame: rename the visits (trial.visits)"
        )
    absent = [c for c in need_p if c not in participants.columns]
    absent += [c for c in ("id", "timepoint", "instrument", "score") if c not in assessments.columns]
    if absent:
        raise AnalysisError(
            f"trial tables lack column(s) {absent}: pass the cleaned participants and "
            "assessments tables (imrstats clean)"
        )
    known = set(assessments["instrument"].astype(str))
    for key in (outcome, *auxiliary):
        if key not in known:
            raise AnalysisError(f"no assessments of instrument {key!r}; instruments present: {sorted(known)[:30]}")
    base = pd.DataFrame(
        {
            "id": participants["id"].astype(str).to_numpy(),
            "arm": participants["arm"].astype(object).where(participants["arm"].notna(), None).to_numpy(),
        }
    )
    base["arm"] = [None if pd.isna(v) else str(v) for v in base["arm"]]
    carried = list(dict.fromkeys(columns)) + ([] if "sessions_attended" in columns else ["sessions_attended"])
    for col in carried:
        if col not in columns:
            base[col] = np.nan
            continue
        values = participants[col]
        numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        if col in _NUMERIC_COLUMNS or numeric:
            base[col] = pd.to_numeric(values).astype(float).to_numpy()
        else:
            base[col] = [None if pd.isna(v) else str(v) for v in values.astype(object)]
    if base["id"].duplicated().any():
        raise AnalysisError("participant ids are not unique: one row per randomised participant is needed")
    scores = _wide_scores(assessments, outcome, design.all_visits)
    if scores.empty or scores[list(design.visits)].isna().all().all():
        present = sorted(
            set(assessments.loc[assessments["instrument"].astype(str) == outcome, "timepoint"].astype(str))
        )
        raise AnalysisError(
            f"no {outcome!r} score at any post-baseline visit {list(design.visits)}; its timepoints are {present}: "
            "name the visits as the assessments' timepoint column does (trial.visits, trial.baseline_visit)"
        )
    out = base.join(scores.rename(columns={design.baseline: "baseline"}), on="id")
    for key in auxiliary:
        aux = _wide_scores(assessments, key, (design.baseline,)).rename(columns={design.baseline: f"aux_{key}"})
        out = out.join(aux, on="id")
    return out.sort_values("id", kind="stable").reset_index(drop=True)


def _wide_scores(assessments: pd.DataFrame, instrument: str, timepoints) -> pd.DataFrame:
    rows = assessments.loc[assessments["instrument"].astype(str) == instrument]
    rows = pd.DataFrame(
        {
            "id": rows["id"].astype(str).to_numpy(),
            "timepoint": rows["timepoint"].astype(str).to_numpy(),
            "score": pd.to_numeric(rows["score"]).astype(float).to_numpy(),
        }
    )
    if rows.duplicated(["id", "timepoint"]).any():
        raise AnalysisError(f"{instrument!r}: more than one score per participant and timepoint; aggregate first")
    wide = rows.pivot(index="id", columns="timepoint", values="score")
    return wide.reindex(columns=list(timepoints)).astype(float)


# --------------------------------------------------------------------------------------------------
# Multiple imputation
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutcomeImputation:
    """m completed copies of the outcome at baseline and each post-baseline visit of ``design`` (and auxiliary
    baselines) for the analysable rows.

    ``imputed`` is (m, n, k) with columns ``targets`` in the row order of ``frame``; ``missing`` (n, k)
    marks the cells that were imputed (used by the delta adjustment)."""

    frame: pd.DataFrame
    targets: tuple
    imputed: np.ndarray
    missing: np.ndarray
    m: int
    method: str
    by_arm: bool
    seed: int | None
    n_dropped: int
    method_text: str
    # baseline covariates imputed in the same chained equations (``missing_covariates="impute"``): per covariate,
    # the (m, n) completed values (numbers, or category labels) and the (n,) cells that were missing
    covariate_values: dict = field(default_factory=dict, compare=False, repr=False)
    covariate_missing: dict = field(default_factory=dict, compare=False, repr=False)
    missing_covariates: str = "impute"
    n_no_arm: int = 0  # rows without an arm (not randomised to either arm): never analysed
    excluded_by_arm: dict = field(default_factory=dict)  # ``exclude``: per arm, participants left out
    notes: tuple = ()
    # per-imputation covariance estimates of the plain ITT fit, filled by the first ITT fit and used as
    # Newton warm starts by later refits of the same completed data (delta grid, subgroup models)
    fitted_sigmas: dict = field(default_factory=dict, compare=False, repr=False)
    # plain ITT fits made ahead by `prefit_itt` (several outcomes' chains in one batch), used by the ITT fit
    itt_fits: dict = field(default_factory=dict, compare=False, repr=False)
    design: StudyDesign = DEFAULT_DESIGN  # the study's arms and visits: every analysis of these imputations uses it

    def column(self, name: str) -> np.ndarray:
        return self.imputed[:, :, self.targets.index(name)]


def impute_outcome(
    frame: pd.DataFrame,
    *,
    covariates: Sequence[str] = DEFAULT_COVARIATES,
    m: int = 100,
    method: str = "pmm",
    maxit: int = 5,
    donors: int = 5,
    by_arm: bool = True,
    seed: int | np.random.Generator,
    missing_covariates: str = "impute",
    design: StudyDesign = DEFAULT_DESIGN,
) -> OutcomeImputation:
    """Impute the outcome's missing baseline and post-baseline visits (and ``aux_*`` baselines) m times by MICE:
    chained equations over the baseline and the K visits of ``design``, each imputed from the others.

    Within each arm separately (``by_arm``) from the covariates, or jointly with arm as a predictor.
    ``seed`` (int or Generator) drives every draw.

    ``missing_covariates="impute"`` (intention to treat: everyone randomised is analysed): a covariate with
    missing values joins the chained equations as a target (`_covariate_targets`): a numeric one by ``method``,
    a two-category one as its 0/1 indicator by pmm (imputations are observed categories only), one with more
    categories gets a category of its own for "missing" (the missing-indicator method, valid for baseline
    covariates in a randomised trial: White & Thompson 2005, Stat Med 24:993). With no covariate missing the
    imputation is exactly the one without covariate targets. ``"exclude"``: participants with a missing
    covariate are left out (counted per arm in ``excluded_by_arm``; the ITT result flags it)."""
    if missing_covariates not in ("impute", "exclude"):
        raise AnalysisError(f"missing_covariates must be 'impute' or 'exclude', got {missing_covariates!r}")
    covariates = list(covariates)
    n_no_arm = int(frame["arm"].isna().sum()) if "arm" in frame.columns else 0
    excluded_by_arm: dict = {}
    if missing_covariates == "exclude":
        rows, n_dropped = analysable_rows(frame, covariates, design)
        gone = frame["arm"].notna() & frame[covariates].isna().any(axis=1)
        excluded_by_arm = {arm: int((gone & (frame["arm"] == arm)).sum()) for arm in design.arms}
    else:
        absent = [c for c in covariates if c not in frame.columns]
        if absent:
            raise AnalysisError(f"trial frame lacks column(s) {absent}; build it with outcome_frame()")
        rows, n_dropped = analysable_rows(frame, [], design)
    cov_missing = {c: rows[c].isna().to_numpy() for c in covariates if rows[c].isna().any()}
    coded, cov_methods, notes = _covariate_targets(rows, covariates, method)
    n_outcome = len(design.outcome_columns)
    targets = list(design.outcome_columns) + [c for c in rows.columns if c.startswith("aux_")]
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    imputed = np.empty((m, len(rows), len(targets)))
    cov_imputed = {c: np.broadcast_to(v, (m, len(rows))).copy() for c, v in coded.items()}
    if by_arm and any(
        (~np.isnan(v[(rows["arm"] == arm).to_numpy()])).sum() < 2 for v in coded.values() for arm in design.arms
    ):
        by_arm = False
        short = [
            c
            for c, v in coded.items()
            if any((~np.isnan(v[(rows["arm"] == a).to_numpy()])).sum() < 2 for a in design.arms)
        ]
        notes.append(
            f"{', '.join(short)} observed for fewer than 2 participants of an arm: imputed jointly (arm as a "
            "predictor) instead of within each arm"
        )
    groups = [rows["arm"] == arm for arm in design.arms] if by_arm else [pd.Series(True, index=rows.index)]
    for mask in groups:
        sel = mask.to_numpy()
        part_covs, filled = {}, {}  # covariate targets of this part; constant ones filled with their value
        for c, v in coded.items():
            obs = v[sel][~np.isnan(v[sel])]
            if np.isnan(v[sel]).any():
                if len(obs) < 2 or obs.var(ddof=1) < 1e-4:  # nothing to model: the one observed value
                    cov_imputed[c][:, sel & np.isnan(v)] = obs[0]
                    filled[c] = _decode_covariate(rows[c], np.array([obs[0]]))[0]
                else:
                    part_covs[c] = v[sel]
        predictors = [c for c in covariates if c not in part_covs]
        predictors = predictors if by_arm else ["arm", *predictors]
        part = rows.loc[mask, targets + predictors].copy()
        for c, value in filled.items():
            part[c] = part[c].where(part[c].notna(), value)
        for c in part_covs:  # a covariate target replaces the predictor: its numeric (0/1) coding
            part[c] = part_covs[c]
        try:
            res = impute_chained(
                part,
                targets=targets + list(part_covs),
                predictors=predictors,
                method=method,
                m=m,
                maxit=maxit,
                donors=donors,
                seed=rng,
                methods={c: cov_methods[c] for c in part_covs} if part_covs else None,
            )
        except AnalysisError as err:
            where = f" in the {rows.loc[mask, 'arm'].iloc[0]} arm" if by_arm else ""
            raise AnalysisError(f"imputation{where} failed: {err}") from None
        imputed[:, sel] = res.imputed[:, :, : len(targets)]
        for j, c in enumerate(part_covs):
            cov_imputed[c][:, sel] = res.imputed[:, :, len(targets) + j]
    name = {"pmm": f"predictive mean matching ({donors} donors)", "norm": "Bayesian linear regression"}[method]
    text = (
        f"MICE {name}, m = {m}, maxit = {maxit}, "
        + ("imputed within each arm" if by_arm else "arm as a predictor")
        + f"; predictors: {', '.join(covariates)} and the outcome's other visits"
        + (f" and auxiliary baselines {', '.join(targets[n_outcome:])}" if len(targets) > n_outcome else "")
        + (
            "; missing baseline covariates imputed in the same chained equations ("
            + ", ".join(f"{c} {int(cov_missing[c].sum())} by {cov_methods[c]}" for c in coded)
            + ")"
            if coded
            else ""
        )
        + (
            "; missing " + ", ".join(c for c in cov_missing if c not in coded) + " analysed as a category '(missing)'"
            if set(cov_missing) - set(coded)
            else ""
        )
    )
    return OutcomeImputation(
        frame=rows,
        targets=tuple(targets),
        imputed=imputed,
        missing=rows[targets].isna().to_numpy(),
        m=m,
        method=method,
        by_arm=by_arm,
        seed=None if isinstance(seed, np.random.Generator) else int(seed),
        n_dropped=n_dropped,
        method_text=text,
        covariate_values={c: _decode_covariate(rows[c], v) for c, v in cov_imputed.items()},
        covariate_missing=cov_missing,
        missing_covariates=missing_covariates,
        n_no_arm=n_no_arm,
        excluded_by_arm=excluded_by_arm,
        notes=tuple(notes),
        design=design,
    )


def _covariate_targets(rows: pd.DataFrame, covariates: Sequence[str], method: str) -> tuple[dict, dict, list]:
    """The covariates with missing values among ``rows`` as numeric imputation targets: {name: values (NaN =
    missing)}, their methods, and notes. Numeric: as is, by ``method``. Two observed categories: the indicator
    of the second sorted level, by pmm. More categories: "(missing)" becomes a category (no target). One
    observed value: filled with it. None observed: an error (nothing to impute from)."""
    coded, methods, notes = {}, {}, []
    for c in covariates:
        col = rows[c]
        miss = col.isna().to_numpy()
        if not miss.any():
            continue
        observed = col[~miss]
        if observed.empty:
            raise AnalysisError(
                f"covariate {c!r} is missing for every participant: nothing to impute it from; "
                "remove it from trial.covariates"
            )
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            coded[c], methods[c] = col.to_numpy(dtype=float), method
            continue
        levels = sorted(observed.astype(str).unique())
        if len(levels) > 2:
            rows[c] = col.where(~miss, "(missing)")
            notes.append(
                f"{c}: {int(miss.sum())} missing value(s) analysed as a category of their own '(missing)' "
                "(missing-indicator method for a baseline covariate of a randomised trial)"
            )
            continue
        codes = np.where(miss, np.nan, (col.astype(str) == levels[-1]).to_numpy(dtype=float))
        coded[c], methods[c] = codes, "pmm"
    return coded, methods, notes


def _decode_covariate(column: pd.Series, values: np.ndarray) -> np.ndarray:
    """Completed (m, n) covariate values back in the column's form: numbers, or the category labels."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return values
    levels = sorted(column.dropna().astype(str).unique())
    if len(levels) == 1:
        return np.full(values.shape, levels[0], dtype=object)
    return np.where(values > 0.5, levels[-1], levels[0]).astype(object)


# --------------------------------------------------------------------------------------------------
# MMRM on each completed data set
# --------------------------------------------------------------------------------------------------


def _with_baseline(design, baseline_by_design_row: np.ndarray):
    """The same design with the baseline columns replaced (the baseline is imputed too)."""
    X = design.X.copy()
    b = np.where(design.present, baseline_by_design_row[:, None], np.nan)
    for j, term in enumerate(design.grid_terms):
        if term[0] == "numeric_by_visit" and term[1] == "baseline":
            X[:, term[2], j] = np.where(design.present[:, term[2]], baseline_by_design_row, 0.0)
        elif term[0] == "numeric" and term[1] == "baseline":  # one common baseline slope
            X[:, :, j] = np.where(design.present, baseline_by_design_row[:, None], 0.0)
    numeric = dict(design.numeric_values, baseline=b)
    return dataclasses.replace(design, X=X, numeric_values=numeric)


def complete_data_df(design) -> np.ndarray:
    """n - p_k per visit: participants minus the fixed effects that act at visit k."""
    n = design.X.shape[0]
    p_k = (np.abs(design.X) > 0).any(axis=0).sum(axis=1)
    return (n - p_k).astype(float)


@dataclass(frozen=True)
class ImputedFits:
    """Per-imputation estimates and variances of the L rows, plus fit bookkeeping."""

    estimates: np.ndarray  # (m, L)
    variances: np.ndarray  # (m, L)
    satterthwaite: np.ndarray  # (m, n_contrasts) df of the arm contrasts
    n_not_converged: int
    first: MMRMResult


@dataclass
class _FitView:
    """What an ``L_fn`` reads of one completed-data fit: the columns and the (arm x visit) reference grid
    of that imputation's design (its baseline mean enters the adjusted means)."""

    design: object
    observed: np.ndarray

    @property
    def columns(self) -> tuple:
        return self.design.columns

    @property
    def times(self) -> tuple:
        return self.design.times

    @cached_property
    def _grid(self):
        return reference_grid(self.design, self.observed)

    @property
    def means_L(self) -> np.ndarray:
        return self._grid[0]

    @property
    def means_labels(self) -> tuple:
        return tuple(self._grid[1])

    @cached_property
    def contrast_L(self) -> np.ndarray:
        return self.means_L[1::2] - self.means_L[0::2]


def fit_imputations(
    imp: OutcomeImputation, covariates, L_fn, *, extra=None, delta: float = 0.0, df_method: str = "satterthwaite"
) -> tuple[ImputedFits, object]:
    """Fit the MMRM to each completed data set (warm-started) and collect L beta and L'cov L, where
    ``L_fn(fit) -> (L, labels)`` reads ``fit.columns`` / ``contrast_L`` / ``means_L`` (`_FitView`);
    ``delta`` is added to the intervention arm's imputed post-baseline values."""
    fits, design = _fit_imputations_deltas(imp, covariates, L_fn, [delta], extra=extra, df_method=df_method)
    return fits[0], design


def _fit_imputations_deltas(
    imp: OutcomeImputation, covariates, L_fn, deltas, *, extra=None, df_method: str = "satterthwaite"
) -> tuple[list[ImputedFits], object]:
    """`fit_imputations` for several deltas on the same imputations and design (built once).

    Warm starts: the plain ITT fit runs through the imputations in order, each Newton run started at the
    previous imputation's Sigma, and keeps its per-imputation Sigmas in ``imp.fitted_sigmas``; every later
    refit of the same completed data (delta grid, subgroup models) starts from those, so its m fits are
    independent and are run together as one batch (`mmrm.fit_mmrm_many`). Without them each delta is a
    chain of its own, as the ITT fit."""
    prefit = None if list(deltas) != [0.0] or extra else imp.itt_fits.get(tuple(covariates))
    if prefit is not None and tuple(prefit.designs[0].ids) not in imp.fitted_sigmas:
        design, designs, grids = prefit.designs[0], list(prefit.designs), [None]
    else:
        design, designs, grids = completed_designs(imp, covariates, deltas, extra)
        prefit = None
    starts = imp.fitted_sigmas.get(tuple(design.ids))
    runs = [None] * len(deltas)
    for k, delta in enumerate(deltas):  # in order, as separate calls would: chains until Sigmas are kept
        if starts is not None:
            break
        runs[k] = prefit if prefit is not None else fit_mmrm_many(designs, grids[k])
        if not delta and not extra:
            starts = imp.fitted_sigmas[tuple(design.ids)] = runs[k].sigma
    rest = [k for k, run in enumerate(runs) if run is None]
    if rest:
        every = fit_mmrm_many(
            designs * len(rest),
            np.concatenate([grids[k] for k in rest]),
            starts=np.concatenate([np.asarray(starts)] * len(rest)),
        )
        for j, k in enumerate(rest):
            runs[k] = _fits_slice(every, j * imp.m, imp.m)
    views = [_FitView(d, runs[0].observed) for d in designs]
    return [_collect(run, views, L_fn, df_method) for run in runs], designs[-1]


def completed_designs(imp: OutcomeImputation, covariates, deltas, extra=None):
    """The MMRM design (built once), its copy per imputation with that imputation's baseline, and per delta
    the (m, participants, visits) outcome grids with delta added to the intervention arm's imputed
    post-baseline values (the study design is the imputation's, ``imp.design``).

    Imputed covariates (``imp.covariate_values``) and ``extra`` columns given per imputation ((m, n, T)
    arrays, e.g. an interaction with an imputed subgroup) make each imputation's design its own."""
    rows, study = imp.frame, imp.design
    covs = tuple(covariates) + tuple(extra or {})
    imputed_covs = [c for c in covariates if c in imp.covariate_values]
    per_imputation = imputed_covs or any(np.ndim(v) == 3 for v in (extra or {}).values())
    y_cols = [imp.targets.index(t) for t in study.visits]
    b_col = imp.targets.index("baseline")
    if not per_imputation:
        design = mmrm_design(long_format(rows, covariates, np.zeros(len(rows)), extra, study), covs, study)
        order = pd.Index(rows["id"]).get_indexer(list(design.ids))
        designs = [_with_baseline(design, imp.imputed[i, order, b_col]) for i in range(imp.m)]
    else:
        bases = []
        for i in range(imp.m):
            completed = rows.copy()
            for c in imputed_covs:
                completed[c] = imp.covariate_values[c][i]
            extra_i = {k: (v[i] if np.ndim(v) == 3 else v) for k, v in (extra or {}).items()}
            bases.append(
                mmrm_design(long_format(completed, covariates, np.zeros(len(rows)), extra_i, study), covs, study)
            )
        design = bases[0]
        if any(b.columns != design.columns or b.ids != design.ids for b in bases):
            raise AnalysisError(
                "the completed data sets' designs differ in their columns (an imputed covariate's category is "
                "absent from one of them): set trial.missing_covariates: exclude or merge categories"
            )
        order = pd.Index(rows["id"]).get_indexer(list(design.ids))
        designs = [_with_baseline(b, imp.imputed[i, order, b_col]) for i, b in enumerate(bases)]
    shifted = imp.missing[:, y_cols] & (rows["arm"].to_numpy() == study.intervention)[:, None]
    grids = []
    for delta in deltas:
        shift = delta * shifted if delta else np.zeros((len(rows), len(study.visits)))
        grids.append(np.stack([(imp.imputed[i][:, y_cols] + shift)[order] for i in range(imp.m)]))
    return design, designs, grids


def prefit_itt(imputations: Sequence[OutcomeImputation], *, covariates: Sequence[str] = DEFAULT_COVARIATES) -> int:
    """Make the plain ITT MMRM fits of several outcomes' imputations ahead, in one batch per shared design
    structure (`mmrm.fit_mmrm_chains`: the outcomes' warm-started chains in lock step), and keep them on
    each imputation for `itt_mi_mmrm`, which then pools them instead of fitting; every fit is the one
    `itt_mi_mmrm` would make (same start, steps and stopping). Returns the number of imputations prefitted;
    a group that cannot be fitted together is left to `itt_mi_mmrm` (which reports its error)."""
    groups: dict = {}
    for imp in imputations:
        try:
            design, designs, grids = completed_designs(imp, covariates, [0.0])
        except AnalysisError:
            continue
        key = (design.ids, design.columns, design.present.tobytes(), design.arm_of.tobytes(), imp.m)
        groups.setdefault(key, []).append((imp, designs, grids[0]))
    done = 0
    for members in groups.values():
        try:
            fits = fit_mmrm_chains([d for _, d, _ in members], np.stack([g for _, _, g in members]))
        except AnalysisError:
            continue
        for (imp, designs, _), fit in zip(members, fits):
            imp.itt_fits[tuple(covariates)] = fit
            done += 1
    return done


def _fits_slice(fits, start: int, size: int):
    sl = slice(start, start + size)
    return dataclasses.replace(
        fits,
        designs=fits.designs[sl],
        sigma=fits.sigma[sl],
        beta=fits.beta[sl],
        cov_beta=fits.cov_beta[sl],
        dcov_beta=fits.dcov_beta[sl],
        cov_theta=fits.cov_theta[sl],
        reml_loglik=fits.reml_loglik[sl],
        converged=fits.converged[sl],
        iterations=fits.iterations[sl],
        notes=fits.notes[sl],
    )


def _kr_note(df_method: str) -> str:
    return "; Kenward-Roger adjusted cov(beta) per completed data set" if df_method == "kenward_roger" else ""


def _collect(fits, views, L_fn, df_method: str = "satterthwaite") -> ImputedFits:
    """L beta, L'cov(beta)L and the arm contrasts' Satterthwaite df of each fit (as `MMRMResult` has them);
    with Kenward-Roger, cov(beta) is each fit's KR-adjusted one (its 1-df KR df are the Satterthwaite df)."""
    cov = fits.kenward_roger_cov_beta if df_method == "kenward_roger" else fits.cov_beta
    ests, vars_, dfs = [], [], []
    for i, view in enumerate(views):
        L, _ = L_fn(view)
        ests.append(L @ fits.beta[i])
        vars_.append(np.einsum("lp,pq,lq->l", L, cov[i], L))
        dfs.append(satterthwaite_df(view.contrast_L, fits.cov_beta[i], fits.dcov_beta[i], fits.cov_theta[i]))
    return ImputedFits(
        np.array(ests), np.array(vars_), np.array(dfs), int((~fits.converged).sum()), fits.result(0, df_method)
    )


def _means_and_contrasts(res: MMRMResult):
    labels = [("contrast", t, None) for t in res.times] + [("mean", t, a) for a, t in res.means_labels]
    return np.vstack([res.contrast_L, res.means_L]), labels


def _pool_rows(fits: ImputedFits, df_complete, labels, quantity, extras, method_note) -> list[Estimate]:
    out = []
    for j in range(fits.estimates.shape[1]):
        if not np.all(fits.variances[:, j] > 0):
            raise AnalysisError(f"{quantity(j)}: a completed-data variance is not positive; the model is degenerate")
        est = pool_rubin(
            fits.estimates[:, j], fits.variances[:, j], df_complete[j], quantity=quantity(j), method_note=method_note
        )
        out.append(dataclasses.replace(est, extra={**extras(j), **est.extra}))
    return out


@dataclass(frozen=True)
class ITTResult(ResultMixin):
    """Pooled ITT MI-MMRM: intervention - control per visit (``contrasts``) and adjusted means per arm and
    visit, each row with Rubin's diagnostics (riv, lambda, fmi, m, df_complete)."""

    outcome: str
    contrasts: pd.DataFrame
    adjusted_means: pd.DataFrame
    n_participants: int
    n_dropped: int
    n_imputed: dict
    n_not_converged: int
    df_complete: dict
    mean_satterthwaite_df: dict
    imputation_method: str
    method: str
    flags: tuple = ()
    # who was analysed, per arm: counted from the fitted MMRM design, not from the randomised count
    n_analysed_by_arm: dict = field(default_factory=dict)
    n_randomised_by_arm: dict = field(default_factory=dict)
    n_excluded_by_arm: dict = field(default_factory=dict)  # missing covariates, trial.missing_covariates: exclude
    n_covariates_imputed_by_arm: dict = field(default_factory=dict)  # participants with >= 1 imputed covariate
    n_outcome_imputed_by_arm: dict = field(default_factory=dict)  # participants with >= 1 imputed outcome value
    n_covariate_cells_imputed: dict = field(default_factory=dict)
    missing_covariates: str = "impute"
    design: StudyDesign = DEFAULT_DESIGN

    _json_skip = ("design",)
    _json_rename = {
        "n_dropped": "n_dropped_missing_covariates",
        "n_not_converged": "n_fits_not_converged",
        "imputation_method": "imputation",
    }

    def to_frame(self) -> pd.DataFrame:
        """The pooled intervention - control contrasts per visit, then the adjusted means per arm and visit."""
        return pd.concat([self.contrasts, self.adjusted_means], ignore_index=True)

    def confint(self, level: float = 0.95) -> pd.DataFrame:
        """The pooled rows with t(Barnard-Rubin df) CIs at ``level``."""
        return confint_t(self.to_frame(), level)

    def summary(self) -> str:
        """The analysis, n, imputation and fit counts, and the pooled contrasts."""
        return summary_block(
            f"ITT MI-MMRM of {self.outcome or 'the outcome'}",
            [
                ("participants", self.n_participants),
                ("analysed of randomised", self.population_text()),
                ("dropped (missing covariates)", self.n_dropped),
                ("imputed cells", ", ".join(f"{k} {v}" for k, v in self.n_imputed.items())),
                (
                    "imputed covariate cells",
                    ", ".join(f"{k} {v}" for k, v in self.n_covariate_cells_imputed.items()) or "none",
                ),
                ("MMRM fits not converged", self.n_not_converged),
            ],
            self.contrasts,
            [f"Method: {self.method}", *self.flags],
        )

    def population_text(self) -> str:
        """'IMR 80 of 80, TAU 79 of 80' (+ excluded / imputed covariates): who the pooled numbers describe."""
        text = ", ".join(
            f"{self.design.arm_label(arm)} {self.n_analysed_by_arm.get(arm, 0)} of "
            f"{self.n_randomised_by_arm.get(arm, 0)}"
            for arm in self.design.arms
        )
        excluded = sum(self.n_excluded_by_arm.values())
        if excluded:
            text += f"; {excluded} excluded for a missing baseline covariate"
        imputed = sum(self.n_covariates_imputed_by_arm.values())
        if imputed:
            text += f"; {imputed} with imputed baseline covariate(s)"
        return text


def itt_mi_mmrm(
    frame: pd.DataFrame,
    *,
    outcome: str = "",
    covariates: Sequence[str] = DEFAULT_COVARIATES,
    imputation: OutcomeImputation | None = None,
    m: int = 100,
    method: str = "pmm",
    maxit: int = 5,
    donors: int = 5,
    by_arm: bool = True,
    seed: int | None = None,
    level: float = 0.95,
    df_method: str = "satterthwaite",
    missing_covariates: str = "impute",
    design: StudyDesign = DEFAULT_DESIGN,
) -> ITTResult:
    """ITT analysis: impute (or reuse ``imputation``, made with the same ``design``), fit the MMRM to each
    completed data set and pool the intervention - control contrast per visit and the adjusted means per arm
    and visit by Rubin's rules (Barnard-Rubin df with df_complete = n - p_k). Non-converged fits are counted
    and flagged."""
    if imputation is not None and imputation.design != design:
        raise AnalysisError("the imputation was made for another study design than the one given to itt_mi_mmrm")
    if imputation is None:
        if seed is None:
            raise AnalysisError("itt_mi_mmrm needs a seed (or a ready imputation): imputation is random")
        imputation = impute_outcome(
            frame,
            covariates=covariates,
            m=m,
            method=method,
            maxit=maxit,
            donors=donors,
            by_arm=by_arm,
            seed=seed,
            missing_covariates=missing_covariates,
            design=design,
        )
    study = design
    fits, design = fit_imputations(imputation, covariates, _means_and_contrasts, df_method=df_method)
    _, labels = _means_and_contrasts(fits.first)
    dfc_visit = complete_data_df(design)
    dfc = np.array([dfc_visit[study.visits.index(t)] for _, t, _ in labels])
    mmrm_method = fits.first.method
    note = f"{imputation.method_text}; per imputation: {mmrm_method}"
    rows = _pool_rows(
        fits,
        dfc,
        labels,
        lambda j: (
            f"{study.contrast_label} at {study.visit_label(labels[j][1])}"
            if labels[j][0] == "contrast"
            else f"adjusted mean {study.arm_label(labels[j][2])} at {study.visit_label(labels[j][1])}"
        ),
        lambda j: {
            "outcome": outcome,
            "timepoint": str(labels[j][1]),
            **({"arm": labels[j][2]} if labels[j][2] else {}),
        },
        note,
    )
    rows = [_relevel(r, level) for r in rows]
    k = len(study.visits)
    flags = []
    if fits.n_not_converged:
        flags.append(
            f"{outcome}: the MMRM did not converge on {fits.n_not_converged} of {imputation.m} "
            "completed data sets; pooled results include those fits"
        )
    contrasts = to_frame(rows[:k])
    contrasts["n_not_converged"] = fits.n_not_converged
    counts = _itt_counts(frame, imputation, design)
    expected = {arm: counts["n_randomised_by_arm"][arm] - counts["n_excluded_by_arm"].get(arm, 0) for arm in study.arms}
    if counts["n_analysed_by_arm"] != expected:
        flags.append(
            f"{outcome or 'ITT'}: the ITT model analysed {counts['n_analysed_by_arm']} participants per arm, not the "
            f"{expected} expected: check the covariates and the arm column"
        )
    excluded = sum(counts["n_excluded_by_arm"].values())
    if excluded:
        flags.append(
            f"{outcome or 'ITT'}: {excluded} randomised participant(s) EXCLUDED from the ITT analysis for a "
            "missing baseline covariate (trial.missing_covariates: exclude): analysed "
            + ", ".join(
                f"{study.arm_label(a)} {counts['n_analysed_by_arm'][a]} of {counts['n_randomised_by_arm'][a]}"
                for a in study.arms
            )
        )
    if imputation.n_no_arm:
        flags.append(
            f"{outcome or 'ITT'}: {imputation.n_no_arm} participant row(s) without an arm "
            f"({study.arm_label(study.intervention)} or {study.arm_label(study.control)}) not analysed"
        )
    flags.extend(f"{outcome or 'ITT'}: {note}" for note in imputation.notes)
    n_total = sum(counts["n_analysed_by_arm"].values())
    contrasts["n_analysed"] = n_total
    for arm in study.arms:
        contrasts[f"n_{study.arm_key(arm)}"] = counts["n_analysed_by_arm"][arm]
    contrasts["n_randomised"] = sum(counts["n_randomised_by_arm"].values())
    contrasts["n_excluded_missing_covariates"] = excluded
    contrasts["n_covariates_imputed"] = sum(counts["n_covariates_imputed_by_arm"].values())
    adjusted = to_frame(rows[k:])
    adjusted["n_analysed"] = adjusted["arm"].map(counts["n_analysed_by_arm"])
    return ITTResult(
        outcome=outcome,
        contrasts=contrasts,
        adjusted_means=adjusted,
        n_participants=n_total,
        n_dropped=imputation.n_dropped,
        n_imputed={t: int(imputation.missing[:, j].sum()) for j, t in enumerate(imputation.targets)},
        n_not_converged=fits.n_not_converged,
        df_complete={t: float(dfc_visit[i]) for i, t in enumerate(study.visits)},
        mean_satterthwaite_df={t: float(fits.satterthwaite[:, i].mean()) for i, t in enumerate(study.visits)},
        imputation_method=imputation.method_text,
        method=f"ITT MI-MMRM: {imputation.method_text}; {mmrm_method}; Rubin's rules, Barnard-Rubin df "
        "(df_complete = n - p per visit)",
        flags=tuple(flags),
        missing_covariates=imputation.missing_covariates,
        design=study,
        **counts,
    )


def _itt_counts(frame: pd.DataFrame, imputation: OutcomeImputation, design) -> dict:
    """Per arm: analysed (the fitted design's participants), randomised (rows of ``frame`` in the arm), excluded
    for a missing covariate, with imputed covariates and with an imputed outcome value; imputed covariate cells."""
    rows, study = imputation.frame, imputation.design
    arm_of = np.asarray(design.arm_of, dtype=bool)
    analysed = {study.intervention: int(arm_of.sum()), study.control: int((~arm_of).sum())}
    randomised = {arm: int((frame["arm"] == arm).sum()) for arm in study.arms}
    cov_any = np.zeros(len(rows), dtype=bool)
    for miss in imputation.covariate_missing.values():
        cov_any |= miss
    outcome_any = imputation.missing[:, : len(study.outcome_columns)].any(axis=1)
    in_arm = {arm: (rows["arm"] == arm).to_numpy() for arm in study.arms}
    return {
        "n_analysed_by_arm": analysed,
        "n_randomised_by_arm": randomised,
        "n_excluded_by_arm": {arm: int(imputation.excluded_by_arm.get(arm, 0)) for arm in study.arms},
        "n_covariates_imputed_by_arm": {arm: int((cov_any & in_arm[arm]).sum()) for arm in study.arms},
        "n_outcome_imputed_by_arm": {arm: int((outcome_any & in_arm[arm]).sum()) for arm in study.arms},
        "n_covariate_cells_imputed": {c: int(v.sum()) for c, v in imputation.covariate_missing.items()},
    }


def _relevel(est: Estimate, level: float) -> Estimate:
    """Rubin's pooled rows come with 95% CIs; recompute for another level from estimate, se and df."""
    if abs(level - 0.95) < 1e-12:
        return est
    crit = stats.t.ppf(0.5 + level / 2, est.df)
    return dataclasses.replace(
        est,
        ci_low=est.estimate - crit * est.se,
        ci_high=est.estimate + crit * est.se,
        method=est.method.replace("95% CI", f"{100 * level:g}% CI"),
    )


def likelihood_mmrm(
    frame: pd.DataFrame,
    *,
    covariates: Sequence[str] = DEFAULT_COVARIATES,
    level: float = 0.95,
    df_method: str = "satterthwaite",
    design: StudyDesign = DEFAULT_DESIGN,
) -> MMRMResult:
    """MMRM on the observed data without imputation (valid under MAR given the model's covariates):
    participants with an observed baseline and at least one observed post-baseline visit. The K visits of
    ``design`` with an unstructured K x K covariance, the baseline slope per visit or common
    (``design.baseline_slope``); contrasts intervention - control per visit."""
    rows, _ = analysable_rows(frame, covariates, design)
    rows = rows.loc[rows["baseline"].notna()].reset_index(drop=True)
    if rows.empty:
        raise AnalysisError("no participant has an observed baseline: the likelihood MMRM needs it as a covariate")
    long = long_format(rows, covariates, rows["baseline"].to_numpy(), design=design)
    long["y"] = rows[list(design.visits)].to_numpy().reshape(-1)
    built = mmrm_design(long, covariates, design)
    return built.fit(long["y"].to_numpy(), level=level, df_method=df_method)


# --------------------------------------------------------------------------------------------------
# Complete case
# --------------------------------------------------------------------------------------------------


def count_exclusions(
    frame: pd.DataFrame,
    covariates: Sequence[str] = (),
    observed: Sequence = (),
    design: StudyDesign = DEFAULT_DESIGN,
) -> dict:
    """Who an analysis leaves out: ``n_randomised`` (rows in either arm of ``design``), ``n_excluded`` and
    ``excluded_because`` ("3 a missing covariate (age, sex); 12 no post"), each participant counted under the
    first reason that applies: a missing covariate, then each entry of ``observed`` (a column, or a tuple of
    columns of which at least one must be observed) in turn."""
    rows = frame.loc[frame["arm"].isin(design.arms)]
    steps = []
    if len(covariates):
        steps.append((f"a missing covariate ({', '.join(covariates)})", rows[list(covariates)].isna().any(axis=1)))
    for need in observed:
        cols = [need] if isinstance(need, str) else list(need)
        steps.append((f"no {' or '.join(cols)}", rows[cols].isna().all(axis=1)))
    left = pd.Series(True, index=rows.index)
    parts, total = [], 0
    for why, miss in steps:
        k = int((left & miss).sum())
        if k:
            parts.append(f"{k} {why}")
        left &= ~miss
        total += k
    return {"n_randomised": int(len(rows)), "n_excluded": total, "excluded_because": "; ".join(parts)}


def describe_by_arm(frame: pd.DataFrame, *, outcome: str = "", design: StudyDesign = DEFAULT_DESIGN) -> pd.DataFrame:
    """Observed n, mean and SD (divisor n - 1) per arm and visit (Jensen et al. 2019, Table 3, complete case);
    ``timepoint`` holds the visit codes."""
    out = []
    for tp in design.outcome_columns:
        for arm in design.arms:
            y = frame.loc[frame["arm"] == arm, tp].dropna()
            out.append(
                {
                    "outcome": outcome,
                    "timepoint": design.visit_code(tp),
                    "arm": arm,
                    "n": int(len(y)),
                    "mean": float(y.mean()) if len(y) else math.nan,
                    "sd": float(y.std(ddof=1)) if len(y) > 1 else math.nan,
                }
            )
    return pd.DataFrame(out)


def complete_case(
    frame: pd.DataFrame,
    *,
    outcome: str = "",
    covariates: Sequence[str] = DEFAULT_COVARIATES,
    level: float = 0.95,
    design: StudyDesign = DEFAULT_DESIGN,
    timepoints: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(descriptives, ANCOVA): n / mean / SD per arm and visit, and per post-baseline visit (``timepoints``,
    default every visit of ``design``) the OLS intervention - control coefficient of y_t ~ arm + baseline +
    covariates among participants with y_t and baseline observed (R: ``lm``; t test on n - p df)."""
    rows, _ = analysable_rows(frame, covariates, design)
    timepoints = design.visits if timepoints is None else tuple(timepoints)
    unknown = [t for t in timepoints if t not in design.visits]
    if unknown:
        raise AnalysisError(f"timepoint(s) {unknown} are not post-baseline visits {list(design.visits)}")
    estimates = []
    key_i, key_c = (f"n_{design.arm_key(a)}" for a in design.arms)
    for tp in timepoints:
        cc = rows.loc[rows[tp].notna() & rows["baseline"].notna()]
        Z, _ = covariate_dummies(cc, covariates)
        treated = (cc["arm"] == design.intervention).to_numpy(float)
        X = np.column_stack([np.ones(len(cc)), treated, cc["baseline"].to_numpy(), Z])
        fit = fit_ols(X, cc[tp].to_numpy(), f"complete-case ANCOVA of {outcome or 'the outcome'} at {tp}")
        estimates.append(
            Estimate.from_t(
                f"{design.contrast_label} at {design.visit_label(tp)}",
                fit.beta[1],
                math.sqrt(fit.cov[1, 1]),
                fit.df,
                level,
                f"complete-case ANCOVA (OLS): {tp} ~ arm + baseline + {' + '.join(covariates)}; t(n - p)",
                extra={
                    "outcome": outcome,
                    "timepoint": tp,
                    "n": int(len(cc)),
                    key_i: int((cc["arm"] == design.intervention).sum()),
                    key_c: int((cc["arm"] == design.control).sum()),
                    **count_exclusions(frame, covariates, ("baseline", tp), design),
                },
            )
        )
    return describe_by_arm(rows, outcome=outcome, design=design), to_frame(estimates)


# --------------------------------------------------------------------------------------------------
# Per protocol
# --------------------------------------------------------------------------------------------------


def per_protocol(
    frame: pd.DataFrame,
    *,
    outcome: str = "",
    threshold: int = 10,
    timepoints: Sequence[str] | None = None,
    level: float = 0.95,
    design: StudyDesign = DEFAULT_DESIGN,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Within the intervention arm (Jensen et al. 2019, Table 4: the IMR arm): (groups, continuous), at each
    post-baseline visit of ``design`` (or ``timepoints``).

    ``groups``: per visit, n / mean / SD for 0-``threshold`` and > ``threshold`` sessions, the difference
    (high - low) with its pooled-variance t CI, and the one-way ANOVA F, df and p (equal to the t test).
    ``continuous``: the slope of the outcome on sessions attended (OLS, per session), its t test
    (identical to the one-way ANOVA F of the paper's "attendance as a continuous variable")."""
    timepoints = design.visits if timepoints is None else tuple(timepoints)
    imr = frame.loc[frame["arm"] == design.intervention]
    arm_name, key = design.arm_label(design.intervention), design.arm_key(design.intervention)
    if imr["sessions_attended"].isna().all():
        raise AnalysisError(f"no sessions attended recorded in the {arm_name} arm: no per-protocol analysis")
    groups, slopes = [], []
    for tp in timepoints:
        d = imr.loc[imr[tp].notna() & imr["sessions_attended"].notna()]
        high = d["sessions_attended"].to_numpy() > threshold
        y = d[tp].to_numpy()
        row = {"outcome": outcome, "timepoint": tp, "threshold": threshold}
        gone = count_exclusions(imr, (), ("sessions_attended", tp), design)
        row.update({f"n_{key}_randomised": gone["n_randomised"], "n_excluded": gone["n_excluded"]})
        row["excluded_because"] = gone["excluded_because"]
        for name, sel in ((f"0-{threshold}", ~high), (f">{threshold}", high)):
            part = "low" if name.startswith("0") else "high"
            row.update(
                {
                    f"n_{part}": int(sel.sum()),
                    f"mean_{part}": float(y[sel].mean()) if sel.any() else math.nan,
                    f"sd_{part}": float(y[sel].std(ddof=1)) if sel.sum() > 1 else math.nan,
                }
            )
        X = np.column_stack([np.ones(len(d)), high.astype(float)])
        what = f"per-protocol ANOVA of {outcome or 'the outcome'} at {tp}"
        fit = fit_ols(X, y, what)
        est = Estimate.from_t(
            f"{'>'}{threshold} minus 0-{threshold} sessions at {design.visit_label(tp)}",
            fit.beta[1],
            math.sqrt(fit.cov[1, 1]),
            fit.df,
            level,
            f"{arm_name} arm only, observed cases; one-way ANOVA (F = t^2, pooled variance)",
            extra=row,
        )
        groups.append(dataclasses.replace(est, extra={**row, "F": est.statistic**2, "df1": 1, "df2": fit.df}))
        X = np.column_stack([np.ones(len(d)), d["sessions_attended"].to_numpy(float)])
        fit = fit_ols(X, y, f"per-protocol regression on sessions of {outcome or 'the outcome'} at {tp}")
        slopes.append(
            Estimate.from_t(
                f"change per session attended at {design.visit_label(tp)}",
                fit.beta[1],
                math.sqrt(fit.cov[1, 1]),
                fit.df,
                level,
                f"{arm_name} arm only, observed cases; OLS of outcome on sessions attended",
                extra={
                    "outcome": outcome,
                    "timepoint": tp,
                    "n": int(len(d)),
                    f"n_{key}_randomised": gone["n_randomised"],
                    "n_excluded": gone["n_excluded"],
                    "excluded_because": gone["excluded_because"],
                },
            )
        )
    return to_frame(groups), to_frame(slopes)


# --------------------------------------------------------------------------------------------------
# Subgroups
# --------------------------------------------------------------------------------------------------


def _subgroup_levels(rows: pd.DataFrame, subgroup: str, design: StudyDesign = DEFAULT_DESIGN) -> list[str]:
    if subgroup not in rows.columns:
        raise AnalysisError(f"subgroup variable {subgroup!r} is not a column; choose from {list(rows.columns)}")
    levels = sorted(rows[subgroup].dropna().astype(str).unique())
    if len(levels) < 2:
        raise AnalysisError(f"subgroup {subgroup!r} has {len(levels)} level(s): no interaction to test")
    for lev in levels:
        for arm in design.arms:
            if not ((rows[subgroup].astype(str) == lev) & (rows["arm"] == arm)).any():
                raise AnalysisError(
                    f"subgroup {subgroup}={lev!r} has no {arm} participant: the arm x {subgroup} "
                    "interaction is not estimable; drop the subgroup or merge levels"
                )
    return levels


def subgroup_interactions(
    frame: pd.DataFrame,
    subgroup: str,
    *,
    imputation: OutcomeImputation,
    outcome: str = "",
    covariates: Sequence[str] = DEFAULT_COVARIATES,
    level: float = 0.95,
    df_method: str = "satterthwaite",
) -> pd.DataFrame:
    """Arm x ``subgroup`` in the ITT MI-MMRM: visit-specific interaction columns intervention x level x visit
    are added to the analysis model (``subgroup`` stays a covariate); per visit of the imputation's design, the
    pooled interaction (difference of the intervention - control effect between a level and the reference
    level, Rubin / Barnard-Rubin) and the pooled intervention - control effect within each level."""
    rows, study = imputation.frame, imputation.design
    levels = _subgroup_levels(rows, subgroup, study)
    covs = tuple(covariates) if subgroup in covariates else (*covariates, subgroup)
    imputed = imputation.covariate_values.get(subgroup) if subgroup in covariates else None
    if imputed is None and rows[subgroup].isna().any():
        raise AnalysisError(
            f"subgroup {subgroup!r} is missing for {int(rows[subgroup].isna().sum())} participant(s) and is not "
            "an imputed covariate: add it to trial.covariates so that everyone stays in the ITT model"
        )
    treated = (rows["arm"] == study.intervention).to_numpy(float)
    visits, contrast = study.visits, study.contrast_label
    extra, index = {}, {}
    for lev in levels[1:]:
        # per imputation when the subgroup variable was imputed: (m, n) membership, else (n,)
        in_level = (
            (rows[subgroup].astype(str) == lev).to_numpy(float)
            if imputed is None
            else (imputed.astype(str) == lev).astype(float)
        )
        for k, tp in enumerate(visits):
            name = f"{study.arm_key(study.intervention)}_x_{subgroup}_{lev}_{tp}"
            cols = np.zeros(in_level.shape + (len(visits),))
            cols[..., k] = treated * in_level
            extra[name], index[(lev, tp)] = cols, name

    specs = []  # (kind, level, timepoint)
    for tp in visits:
        specs += [("interaction", lev, tp) for lev in levels[1:]]
        specs += [("within", lev, tp) for lev in levels]

    def L_fn(res: MMRMResult):
        col = {c: j for j, c in enumerate(res.columns)}
        L = np.zeros((len(specs), len(res.columns)))
        for r, (kind, lev, tp) in enumerate(specs):
            if kind == "within":
                L[r, col[f"arm[{study.intervention}]:time[{tp}]"]] = 1.0
            if lev != levels[0]:
                L[r, col[index[(lev, tp)]]] = 1.0
        return L, specs

    fits, design = fit_imputations(imputation, covs, L_fn, extra=extra, df_method=df_method)
    dfc_visit = complete_data_df(design)
    dfc = np.array([dfc_visit[visits.index(tp)] for _, _, tp in specs])
    note = (
        f"{imputation.method_text}; MMRM with {study.arm_label(study.intervention)} x {subgroup} x visit columns"
        + _kr_note(df_method)
    )
    pooled = _pool_rows(
        fits,
        dfc,
        specs,
        lambda j: (
            f"interaction: ({contrast} | {subgroup}={specs[j][1]}) - ({contrast} | {subgroup}={levels[0]}) "
            f"at {study.visit_label(specs[j][2])}"
            if specs[j][0] == "interaction"
            else f"{contrast} within {subgroup}={specs[j][1]} at {study.visit_label(specs[j][2])}"
        ),
        lambda j: {
            "outcome": outcome,
            "subgroup": subgroup,
            "level": specs[j][1],
            "reference_level": levels[0],
            "kind": specs[j][0],
            "timepoint": specs[j][2],
        },
        note,
    )
    frame_out = to_frame([_relevel(r, level) for r in pooled])
    frame_out["n_not_converged"] = fits.n_not_converged
    return frame_out


def subgroup_interaction_cc(
    frame: pd.DataFrame,
    subgroup: str,
    *,
    outcome: str = "",
    timepoint: str | None = None,
    covariates: Sequence[str] = DEFAULT_COVARIATES,
    design: StudyDesign = DEFAULT_DESIGN,
) -> tuple[pd.DataFrame, dict]:
    """Complete-case arm x ``subgroup`` at one visit (default the last visit of ``design``): (descriptives,
    test). Descriptives: n / mean / SD per
    level and arm with the within-level Welch-free pooled t test p (as Jensen et al. 2019, Table 4); test: the ANCOVA
    interaction F test, y ~ baseline + covariates + arm * subgroup vs the model without arm:subgroup
    (R: ``anova(lm(...))`` with the interaction last)."""
    timepoint = design.visits[-1] if timepoint is None else timepoint
    if timepoint not in design.visits:
        raise AnalysisError(f"timepoint must be one of {design.visits}, got {timepoint!r}")
    rows, _ = analysable_rows(frame, [c for c in covariates if c != subgroup] + [subgroup], design)
    levels = _subgroup_levels(rows, subgroup, design)
    cc = rows.loc[rows[timepoint].notna() & rows["baseline"].notna()]
    ki, kc = (design.arm_key(arm) for arm in design.arms)
    desc = []
    for lev in levels:
        part = cc.loc[cc[subgroup].astype(str) == lev]
        a, b = (part.loc[part["arm"] == arm, timepoint].to_numpy() for arm in design.arms)
        p = stats.ttest_ind(a, b).pvalue if len(a) > 1 and len(b) > 1 else math.nan
        desc.append(
            {
                "outcome": outcome,
                "subgroup": subgroup,
                "level": lev,
                "timepoint": timepoint,
                f"n_{ki}": len(a),
                f"mean_{ki}": a.mean() if len(a) else math.nan,
                f"sd_{ki}": a.std(ddof=1) if len(a) > 1 else math.nan,
                f"n_{kc}": len(b),
                f"mean_{kc}": b.mean() if len(b) else math.nan,
                f"sd_{kc}": b.std(ddof=1) if len(b) > 1 else math.nan,
                "p_t_test": float(p),
            }
        )
    others = [c for c in covariates if c != subgroup]
    Z, _ = covariate_dummies(cc, others)
    S, _ = covariate_dummies(cc, [subgroup])
    treated = (cc["arm"] == design.intervention).to_numpy(float)
    X0 = np.column_stack([np.ones(len(cc)), cc["baseline"].to_numpy(), Z, treated, S])
    X1 = np.column_stack([X0, S * treated[:, None]])
    what = f"complete-case arm x {subgroup} model of {outcome or 'the outcome'} at {timepoint}"
    f0, f1 = fit_ols(X0, cc[timepoint].to_numpy(), what), fit_ols(X1, cc[timepoint].to_numpy(), what)
    df1 = S.shape[1]
    F = ((f0.rss - f1.rss) / df1) / (f1.rss / f1.df)
    test = {
        "outcome": outcome,
        "subgroup": subgroup,
        "timepoint": timepoint,
        "n": int(len(cc)),
        **count_exclusions(
            frame, [c for c in covariates if c != subgroup] + [subgroup], ("baseline", timepoint), design
        ),
        "F": float(F),
        "df1": int(df1),
        "df2": int(f1.df),
        "p": float(stats.f.sf(F, df1, f1.df)),
        "method": f"complete-case ANCOVA, nested-model F test of arm x {subgroup} "
        f"({timepoint} ~ baseline + {' + '.join(others)} + arm * {subgroup})",
    }
    return pd.DataFrame(desc), test


# --------------------------------------------------------------------------------------------------
# MNAR delta adjustment and tipping point
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TippingPoint(ResultMixin):
    """Delta-adjusted pooled intervention - control at ``timepoint`` over the grid, and the tipping point(s).

    ``points``: one row per direction searched (deltas below / above 0) with the delta at which the
    CI's significance status first changes (NaN if not within the grid) and a sentence saying so."""

    outcome: str
    timepoint: str
    grid: pd.DataFrame
    points: pd.DataFrame
    significant_at_zero: bool
    method: str
    design: StudyDesign = DEFAULT_DESIGN

    _json_skip = ("design",)
    _json_rename = {"points": "tipping_points"}

    def to_frame(self) -> pd.DataFrame:
        """The delta-adjusted pooled intervention - control at ``timepoint`` over the grid, one row per delta."""
        return to_frame(
            [
                Estimate(
                    f"{self.design.contrast_label} at {self.design.visit_label(self.timepoint)}, delta {r['delta']:+g}",
                    r["estimate"],
                    r["se"],
                    r["ci_low"],
                    r["ci_high"],
                    r["df"],
                    p=r["p"],
                    method=self.method,
                    extra={
                        "outcome": self.outcome,
                        "timepoint": self.timepoint,
                        "delta": r["delta"],
                        "fmi": r["fmi"],
                        "excludes_zero": r["excludes_zero"],
                    },
                )
                for _, r in self.grid.iterrows()
            ]
        )

    def summary(self) -> str:
        """The sensitivity analysis, the tipping point per direction and the grid."""
        statements = [str(s) for s in self.points.get("statement", pd.Series(dtype=object))]
        return summary_block(
            f"MNAR tipping point of {self.outcome or 'the outcome'} at {self.timepoint}",
            [("CI excludes 0 at delta 0", self.significant_at_zero)],
            self.to_frame(),
            statements + [f"Method: {self.method}"],
        )


def delta_tipping_point(
    imputation: OutcomeImputation,
    *,
    deltas: Sequence[float],
    timepoint: str | None = None,
    outcome: str = "",
    covariates: Sequence[str] = DEFAULT_COVARIATES,
    higher_is_better: bool = True,
    level: float = 0.95,
    verify: bool = True,
    df_method: str = "satterthwaite",
) -> TippingPoint:
    """Delta-adjusted MI (MNAR sensitivity): for each delta (outcome units) add delta to the intervention
    arm's imputed post-baseline values (every visit of the imputation's design), refit the MMRM on every
    completed data set and pool the intervention - control contrast at ``timepoint`` (any visit; default the
    first). The tipping point, per direction from 0, is the delta at which the
    ``level`` CI first includes 0 (if the ITT result excludes it) or first excludes 0 (if it includes it):
    the first grid point where the status changes, refined by linear interpolation of the relevant CI
    bound between it and its neighbour towards 0; with ``verify`` the pooled CI is recomputed at the
    interpolated delta (``ci_low_at_tip`` / ``ci_high_at_tip``: the crossing bound should be ~0)."""
    deltas = sorted({float(d) for d in deltas} | {0.0})
    study = imputation.design
    timepoint = study.visits[0] if timepoint is None else timepoint
    if len(deltas) < 2:
        raise AnalysisError("delta grid needs at least one non-zero shift")
    if timepoint not in study.visits:
        raise AnalysisError(f"timepoint must be one of {study.visits}, got {timepoint!r}")
    k = study.visits.index(timepoint)

    def L_fn(res):
        return res.contrast_L[[k]], [timepoint]

    def pooled_at(ds) -> list[dict]:
        runs, design = _fit_imputations_deltas(imputation, covariates, L_fn, ds, df_method=df_method)
        out = []
        for d, fits in zip(ds, runs):
            est = _relevel(pool_rubin(fits.estimates[:, 0], fits.variances[:, 0], complete_data_df(design)[k]), level)
            out.append(
                {
                    "delta": d,
                    "estimate": est.estimate,
                    "se": est.se,
                    "ci_low": est.ci_low,
                    "ci_high": est.ci_high,
                    "df": est.df,
                    "p": est.p,
                    "fmi": est.extra["fmi"],
                    "excludes_zero": bool(est.ci_low > 0 or est.ci_high < 0),
                    "n_not_converged": fits.n_not_converged,
                }
            )
        return out

    grid = pd.DataFrame(pooled_at(deltas))  # every delta refits the same m completed data sets: one batch
    zero = grid.loc[grid["delta"] == 0.0].iloc[0]
    points = [
        _tip(grid, side, bool(zero["excludes_zero"]), higher_is_better, outcome, timepoint, study) for side in (-1, 1)
    ]
    check = [point for point in points if point["reached"] and verify]
    for point, at in zip(check, pooled_at([p["tipping_delta"] for p in check]) if check else []):
        # check the interpolated tipping point by refitting there
        point.update(ci_low_at_tip=at["ci_low"], ci_high_at_tip=at["ci_high"], estimate_at_tip=at["estimate"])
    method = (
        f"delta-adjusted MI: delta added to the {study.arm_label(study.intervention)} arm's imputed "
        f"{and_join([study.visit_label(v) for v in study.visits])} values of the same "
        f"{imputation.m} imputations, MMRM refitted and pooled (Rubin, Barnard-Rubin df); tipping point by "
        "grid search refined by linear interpolation of the CI bound" + _kr_note(df_method)
    )
    return TippingPoint(
        outcome, timepoint, grid, pd.DataFrame(points), bool(zero["excludes_zero"]), method, design=study
    )


def _tip(
    grid: pd.DataFrame,
    side: int,
    sig0: bool,
    higher_is_better: bool,
    outcome: str,
    timepoint: str,
    design: StudyDesign = DEFAULT_DESIGN,
) -> dict:
    part = grid.loc[grid["delta"] * side >= 0].sort_values("delta", key=lambda s: s.abs()).reset_index(drop=True)
    arm = design.arm_label(design.intervention)
    favour = f"favouring {arm}" if (side > 0) == higher_is_better else f"against {arm}"
    change = "includes 0" if sig0 else "excludes 0"
    out = {
        "outcome": outcome,
        "timepoint": timepoint,
        "direction": f"delta {'<' if side < 0 else '>'} 0 ({favour})",
        "tipping_delta": math.nan,
        "bound": "",
        "reached": False,
    }
    flips = np.flatnonzero(part["excludes_zero"].to_numpy() != sig0)
    if not len(flips):
        out["statement"] = (
            f"The 95% CI never {change} for shifts {favour} up to {part['delta'].iloc[-1]:+g} "
            "(end of the grid): no tipping point in this direction."
        )
        return out
    i = flips[0]
    before, after = part.iloc[i - 1], part.iloc[i]
    # the bound that crosses 0: the one nearer to 0 at the flipped point (or before it)
    ref = after if not sig0 else before
    bound = "ci_low" if abs(ref["ci_low"]) < abs(ref["ci_high"]) else "ci_high"
    x0, x1, y0, y1 = before["delta"], after["delta"], before[bound], after[bound]
    tip = x0 + (0 - y0) * (x1 - x0) / (y1 - y0) if y1 != y0 else x1
    out.update(
        tipping_delta=float(tip),
        bound=bound,
        reached=True,
        statement=(
            f"Adding {tip:+.3g} points to the {arm} arm's missing values ({favour}) makes the "
            f"95% CI of {design.contrast_label} at {design.visit_label(timepoint)} "
            f"{'include' if sig0 else 'exclude'} 0."
        ),
    )
    return out


# --------------------------------------------------------------------------------------------------
# Multiplicity
# --------------------------------------------------------------------------------------------------


def adjust_pvalues(p, method: str = "holm") -> np.ndarray:
    """Holm (1979) step-down or Benjamini-Hochberg (1995) step-up adjusted p-values, as R's
    ``p.adjust``: NaN entries stay NaN and do not count towards the number of tests."""
    p = np.asarray(p, dtype=float)
    if method not in ("holm", "bh"):
        raise AnalysisError(f"method must be 'holm' or 'bh', got {method!r}")
    if np.any((p < 0) | (p > 1)):
        raise AnalysisError("p-values must lie in [0, 1]")
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    n = len(ok)
    if not n:
        return out
    values = p[ok]
    if method == "holm":
        order = np.argsort(values, kind="stable")
        adj = np.minimum(1.0, np.maximum.accumulate((n - np.arange(n)) * values[order]))
    else:
        order = np.argsort(values, kind="stable")[::-1]
        adj = np.minimum(1.0, np.minimum.accumulate(n / np.arange(n, 0, -1) * values[order]))
    result = np.empty(n)
    result[order] = adj
    out[ok] = result
    return out
