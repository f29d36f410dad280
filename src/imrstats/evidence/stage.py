"""Your trial in the pooled evidence: the trial as the newest study of the meta-analysis.

The trial stage's results (ITT MI-MMRM contrasts; complete-case arm summaries) are put on the scale of the
meta-analysis of published IMR trials and added to it as the newest study:

* **Conversion** (``trial_effects_for_meta``). Both analyses divide by the same SD: by default the pooled
  within-arm SD of the *observed* outcome at that visit, s_p = sqrt(((n1-1) sd1^2 + (n2-1) sd2^2) / (n1+n2-2)),
  because that is the SD every published arm-summary SMD in ``data/published/`` divides by (metafor
  ``escalc(measure="SMD")`` on endpoint means and SDs), so the trial lands on its peers' scale. The baseline
  SD (pre-randomisation, observed for nearly everyone, untouched by the intervention) is the option
  ``standardise_by: baseline_sd``. With the SD's df m = n1 + n2 - 2 and Hedges' exact correction
  J(m) (Hedges 1981, eq. 6e):

      g = J(m) * sign * MD / s,   v = (SE_MD / s)^2 + g^2 / (2 (n1 + n2))

  which is escalc's large-sample SMD variance with 1/n1 + 1/n2 replaced by (SE_MD / s)^2; for an unadjusted
  difference with the pooled-variance SE the two are identical (Borenstein et al. 2009, ch. 4; Cochrane
  Handbook 6.5.1.2 for SMDs from adjusted differences). ITT: MD and SE_MD are the Rubin-pooled MI-MMRM
  contrast (baseline- and covariate-adjusted). Complete case: the observed arm means (exactly the
  conversion the published Jensen 2019 rows get). ``sign`` = +1 if higher is better, else -1, so a positive
  g favours IMR; ``md`` stays IMR - TAU on the instrument's own scale.
* **Side by side** (``pool_side_by_side``): per outcome, the published studies the meta stage pools
  (``meta_stage.outcome_inputs``) without and with the trial, by REML + Knapp-Hartung (``meta.rma``) and by
  the Bayesian normal-normal model with the meta stage's main prior and engine (``meta.bayes.engine``:
  exact quadrature, milliseconds a fit, or NUTS through ``meta_bayes.gated_fit``). The published-only fits
  are the meta stage's own, read back from its outputs (``read_meta_fits``) when the stage is given them
  (the pipeline does), else fitted here with the same seeds. ``replaces_study`` drops a published study from
  the "with" analysis when the user's trial *is* that study.
* **GRADE and the Summary of Findings** (``imrstats.evidence.grade``, docs/grade.md): per key outcome
  (``evidence.summary_outcomes``; default the trial's primary outcome's label first) the certainty of the
  pooled evidence *with* the trial (ITT, at the primary visit if compared, else the first compared visit) by
  five documented rules, each reason quoting its numbers; the published studies' risk of bias and indirectness
  from ``data/published/`` (the trial's from ``evidence.trial_risk_of_bias`` / ``trial_indirectness``); the
  pooled fit restricted to studies at low risk of bias beside the main one; the traffic-light figure.
* **How surprising is this trial** (``predictive_percentiles_*``): where the trial's g falls in the
  predictive distribution of a new trial from the published studies alone (without the replaced study).
  ``pct_true``: the share of the posterior draws of mu_new = mu + tau z below g (the definition used throughout;
  frequentist analogue: the t(k-1) prediction distribution mu_hat + t sqrt(se^2 + tau^2) under Knapp-Hartung,
  else normal, as ``MetaResult.predict``). mu_new is a new trial's *true* effect; the trial's estimate also
  carries its own sampling error, so ``pct_observed`` uses the predictive distribution of an observed
  estimate, N(mu, tau^2 + v_trial): E_post[Phi((g - mu) / sqrt(tau^2 + v_trial))] over the draws
  (Rao-Blackwellised, no extra randomness), frequentist (g - mu_hat) / sqrt(se^2 + tau^2 + v_trial) on the
  same t or normal. Under the model pct_observed is uniform, so it is the calibrated surprise measure.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from imrstats.config import section_settings, stage_seed
from imrstats.errors import AnalysisError, InputError, SettingsError
from imrstats.evidence.grade import (
    RULE_CERTAINTY,
    RULES,
    grade_outcome,
    optimal_information_size,
    study_judgements,
    summary_of_findings,
)
from imrstats.meta import effect_sizes as es
from imrstats.meta.random_effects import MetaResult, rma
from imrstats.pipeline.stage_result import StageResult
from imrstats.report.format import format_number as fmt  # the report's one number formatter
from imrstats.results import to_records

FAVOURS = "positive favours IMR"
ANALYSES = ("itt", "complete_case")
ANALYSIS_NAMES = {"itt": "ITT (MI-MMRM)", "complete_case": "complete case"}
TRIAL_TIMEPOINTS = ("post", "fu12")
SD_SOURCES = ("visit_sd", "baseline_sd")

# ---------------------------------------------------------------------------------------------
# Settings


def evidence_settings(settings: dict | None) -> tuple[dict, dict]:
    """The (evidence, meta) sections, each overlaid on its defaults and checked by
    `imrstats.config.section_settings` (defaults in workflow/schemas/config.schema.yaml; a bad key raises
    `SettingsError` naming it). ``settings`` is ``{"evidence": ..., "meta": ...}`` (what the rule passes;
    with the trial section under ``trial``, read by `check_trial_design`) or the evidence section alone (meta
    defaults)."""
    raw = dict(settings or {})
    if set(raw) <= {"evidence", "meta", "trial"} and raw:
        ev_raw, meta_raw = raw.get("evidence"), raw.get("meta")
    else:
        ev_raw, meta_raw = raw, None
    ev, meta = section_settings("evidence", ev_raw), section_settings("meta", meta_raw)
    unknown = [label for label in ev["summary_outcomes"] or [] if label not in meta["outcomes"]]
    if unknown:
        raise SettingsError(
            [
                (
                    "evidence.summary_outcomes",
                    f"{unknown} are not outcome labels of meta.outcomes {list(meta['outcomes'])}",
                )
            ]
        )
    return ev, meta


def check_trial_design(ev: dict, trial: dict | None) -> None:
    """The trial's study design (``trial``: the config's trial section, `StudyDesign.from_settings`) must be
    one this stage can compare with the published IMR trials: ``evidence.timepoints`` visits of the design
    and its arms IMR and TAU (the codes the trial stage's descriptives carry). Otherwise a `SettingsError`
    naming the key and the design's visits or arms (a study of another design sets ``evidence.enabled:
    false``)."""
    from imrstats.trial.design import StudyDesign

    design = StudyDesign.from_settings(trial)
    problems = []
    absent = [tp for tp in ev["timepoints"] if tp not in design.visits]
    if absent:
        problems.append(
            (
                "evidence.timepoints",
                f"{absent} not among the trial's post-baseline visits {list(design.visits)} (trial.visits); "
                "name visits of the design, or set evidence.enabled: false",
            )
        )
    if design.arms != ("IMR", "TAU"):
        problems.append(
            (
                "evidence.enabled",
                f"the trial's arms {list(design.arms)} (trial.arms) are not IMR and TAU, the arms of the published "
                "trials it is compared with; set evidence.enabled: false",
            )
        )
    if problems:
        raise SettingsError(problems)


# ---------------------------------------------------------------------------------------------
# The trial stage's results


def read_trial_results(trial_dir: str | Path) -> dict[str, pd.DataFrame]:
    """The trial stage's tables needed here (``tables/trial_itt_contrasts.csv``,
    ``tables/trial_descriptives.csv``) from its output directory; a missing table is simply absent."""
    trial_dir = Path(trial_dir)
    if not (trial_dir / "result.json").exists() and not (trial_dir / "tables").is_dir():
        raise InputError(
            f"no trial stage results in {trial_dir}: run the trial stage first (imrstats trial / snakemake trial)"
        )
    out = {}
    for name in ("trial_itt_contrasts", "trial_descriptives"):
        path = trial_dir / "tables" / f"{name}.csv"
        if path.exists():
            out[name] = pd.read_csv(path)
    if not out and (trial_dir / "result.json").exists():
        return json.loads((trial_dir / "result.json").read_text())
    return out


def _trial_frames(trial) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ITT contrasts, descriptives) from the trial stage's tables (dict of frames, or its StageResult) or
    its record (``result.json`` as a dict)."""
    if isinstance(trial, StageResult):
        trial = trial.tables
    if not isinstance(trial, dict):
        raise InputError("the trial results must be the trial stage's tables (dict of frames) or its record")
    if "trial_itt_contrasts" in trial or "trial_descriptives" in trial:
        itt = trial.get("trial_itt_contrasts", pd.DataFrame())
        desc = trial.get("trial_descriptives", pd.DataFrame())
    elif "outcomes" in trial:
        itt = pd.DataFrame(
            [
                row
                for o in trial["outcomes"].values()
                if isinstance(o, dict) and "itt" in o
                for row in o["itt"].get("contrasts", [])
            ]
        )
        desc = pd.DataFrame(trial.get("descriptives", []))
    else:
        raise InputError(
            "the trial results hold neither trial_itt_contrasts / trial_descriptives tables nor a "
            "record with 'outcomes': is this the trial stage's output?"
        )
    itt = itt if len(itt) else pd.DataFrame(columns=["outcome", "timepoint", "estimate", "se", "df"])
    desc = desc if len(desc) else pd.DataFrame(columns=["outcome", "timepoint", "arm", "n", "mean", "sd"])
    return itt, desc


# ---------------------------------------------------------------------------------------------
# Conversion


def smd_from_mean_difference(
    md: float, md_se: float, sd: float, sd_df: float, sd_n: float, *, higher_is_better: bool = True
) -> dict:
    """Hedges' g and its variance from a (possibly adjusted) mean difference IMR - TAU and the SD it is
    divided by: g = J(m) sign md / sd, v = (md_se / sd)^2 + g^2 / (2 sd_n), with m = ``sd_df`` the SD's df
    and ``sd_n`` = n1 + n2 of the SD's sample. Reduces to metafor's escalc SMD (vtype "LS") when md_se is
    the pooled-variance SE sd sqrt(1/n1 + 1/n2) of an unadjusted difference."""
    values = np.array([md, md_se, sd, sd_df, sd_n], dtype=float)
    if not np.all(np.isfinite(values)):
        raise AnalysisError(f"cannot standardise: a missing value among md {md}, se {md_se}, sd {sd}, df {sd_df}")
    if sd <= 0 or md_se <= 0:
        raise AnalysisError(f"cannot standardise: the SD ({sd:g}) and the SE ({md_se:g}) must be > 0")
    j = float(es.hedges_correction(sd_df))
    g = j * (1.0 if higher_is_better else -1.0) * md / sd
    return {"yi": g, "vi": (md_se / sd) ** 2 + g**2 / (2 * sd_n), "hedges_j": j}


def _pooled_sd(rows: pd.DataFrame) -> tuple[float, int, int, int]:
    """(pooled within-arm SD, df, n_imr, n_tau) from the descriptives of one outcome and visit."""
    by = rows.set_index("arm")
    if not {"IMR", "TAU"} <= set(by.index):
        raise AnalysisError("the descriptives lack an arm")
    n1, n2 = int(by.at["IMR", "n"]), int(by.at["TAU", "n"])
    sd1, sd2 = float(by.at["IMR", "sd"]), float(by.at["TAU", "sd"])
    if n1 < 2 or n2 < 2 or not (math.isfinite(sd1) and math.isfinite(sd2)):
        raise AnalysisError(f"too few observed values for an SD (n_imr = {n1}, n_tau = {n2})")
    sd = math.sqrt(((n1 - 1) * sd1**2 + (n2 - 1) * sd2**2) / (n1 + n2 - 2))
    if sd <= 0:
        raise AnalysisError("the observed SD is 0 in both arms: a standardized difference is undefined")
    return sd, n1 + n2 - 2, n1, n2


def _instrument_for(label: str, keys: list[str], available: set[str]) -> str | None:
    return next((k for k in keys if k in available), None)


def _one_row(analysis, key, tp, itt, desc, ev, hib) -> dict:
    at = desc.loc[(desc["outcome"] == key) & (desc["timepoint"] == tp)]
    if at.empty:
        raise AnalysisError(f"no descriptives for {key} at {tp}")
    sd_visit, df_visit, n1, n2 = _pooled_sd(at)
    if ev["standardise_by"] == "baseline_sd":
        base = desc.loc[(desc["outcome"] == key) & (desc["timepoint"] == "baseline")]
        if base.empty:
            raise AnalysisError(f"no baseline descriptives for {key}")
        sd, sd_df, b1, b2 = _pooled_sd(base)
        sd_n, source = b1 + b2, (f"pooled within-arm SD of the observed baseline (n = {b1} + {b2}; pre-randomisation)")
    else:
        sd, sd_df, sd_n = sd_visit, df_visit, n1 + n2
        source = f"pooled within-arm SD of the observed outcome at {tp} (n = {n1} + {n2}; as escalc SMD)"
    if analysis == "itt":
        row = itt.loc[(itt["outcome"] == key) & (itt["timepoint"] == tp)]
        if row.empty:
            raise AnalysisError(f"no ITT contrast for {key} at {tp} (did the trial stage analyse it?)")
        md, md_se, md_df = (float(row.iloc[0][c]) for c in ("estimate", "se", "df"))
        se_for_smd = md_se
        conversion = (
            "g = J(m) sign MD / s, v = (SE_MD / s)^2 + g^2 / (2 n_s); MD, SE_MD: Rubin-pooled "
            "MI-MMRM contrast (adjusted for baseline and covariates)"
        )
    else:
        by = at.set_index("arm")
        m1, m2 = float(by.at["IMR", "mean"]), float(by.at["TAU", "mean"])
        md = m1 - m2
        md_se = math.sqrt(float(by.at["IMR", "sd"]) ** 2 / n1 + float(by.at["TAU", "sd"]) ** 2 / n2)
        md_df = float(n1 + n2 - 2)
        se_for_smd = sd_visit * math.sqrt(1 / n1 + 1 / n2)
        conversion = (
            "g = J(m) sign (mean_IMR - mean_TAU) / s, v = s_p^2 (1/n1 + 1/n2) / s^2 + g^2 / (2 n_s) "
            "(escalc SMD when s = s_p); MD SE unpooled (escalc MD)"
        )
    conv = smd_from_mean_difference(md, se_for_smd, sd, sd_df, sd_n, higher_is_better=hib)
    return {
        "md": md,
        "md_se": md_se,
        "md_df": md_df,
        "n_imr": n1,
        "n_tau": n2,
        "sd_divided_by": sd,
        "sd_source": source,
        "sd_df": sd_df,
        "conversion": conversion,
        **conv,
    }


def trial_effects_for_meta(trial_record_or_tables, settings: dict | None = None) -> pd.DataFrame:
    """One row per meta outcome label x trial analysis (itt / complete_case) x visit: ``yi`` (Hedges' g,
    positive favours IMR), ``vi``, ``sei``, normal ``ci_low`` / ``ci_high``, ``md`` / ``md_se`` / ``md_df``
    (IMR - TAU on the instrument's own scale), ``sd_divided_by`` and ``sd_source``, ``hedges_j``, ``n_imr`` /
    ``n_tau`` (observed at the visit), ``conversion`` and ``problem`` (why a row has no effect). The
    instrument of a label is the first of ``meta.outcomes[label]`` the trial analysed. ``settings`` as in
    ``evidence_settings``."""
    ev, meta = evidence_settings(settings)
    return _trial_effects(trial_record_or_tables, ev, meta)


def _trial_effects(trial, ev: dict, meta: dict) -> pd.DataFrame:
    from imrstats.data.instruments import load_registry

    itt, desc = _trial_frames(trial)
    available = set(itt["outcome"]) | set(desc["outcome"])
    registry = load_registry()
    z = float(stats.norm.isf((1 - meta["level"]) / 2))
    rows = []
    for label, keys in meta["outcomes"].items():
        key = _instrument_for(label, list(keys), available)
        if key is None:
            continue
        hib = registry[key].higher_is_better if key in registry else True
        for analysis in ev["analyses"]:
            for tp in ev["timepoints"]:
                base = {
                    "outcome_label": label,
                    "instrument": key,
                    "analysis": analysis,
                    "timepoint": tp,
                    "study": ev["label"],
                    "measure": "SMD",
                    "direction": f"{FAVOURS} (g); md = IMR - TAU, "
                    f"{registry[key].direction_text if key in registry else 'higher is better'}",
                }
                try:
                    row = {**base, **_one_row(analysis, key, tp, itt, desc, ev, hib), "problem": ""}
                except (AnalysisError, KeyError, ValueError) as error:
                    row = {**base, "yi": math.nan, "vi": math.nan, "problem": str(error)}
                rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["sei"] = np.sqrt(out["vi"])
    out["ci_low"], out["ci_high"] = out["yi"] - z * out["sei"], out["yi"] + z * out["sei"]
    first = [
        "outcome_label",
        "instrument",
        "analysis",
        "timepoint",
        "study",
        "measure",
        "yi",
        "vi",
        "sei",
        "ci_low",
        "ci_high",
        "md",
        "md_se",
        "md_df",
        "sd_divided_by",
        "sd_source",
        "hedges_j",
        "n_imr",
        "n_tau",
        "conversion",
        "direction",
        "problem",
    ]
    return out[[c for c in first if c in out.columns] + [c for c in out.columns if c not in first]]


# ---------------------------------------------------------------------------------------------
# Pooling without and with the trial


def with_trial(
    published: pd.DataFrame, trial_row: dict | pd.Series, *, year: int, replaces_study: str | None = None
) -> pd.DataFrame:
    """The published rows (minus ``replaces_study``) with the trial appended last (the newest study)."""
    kept = published.loc[published["study"] != replaces_study] if replaces_study else published
    row = {
        "study": trial_row["study"],
        "year": year,
        "yi": float(trial_row["yi"]),
        "vi": float(trial_row["vi"]),
        "sei": float(trial_row["sei"]),
        "measure": "SMD",
        "is_trial": True,
    }
    out = pd.concat([kept.assign(is_trial=False), pd.DataFrame([row])], ignore_index=True)
    return out[["study", "year", "yi", "vi", "sei", "measure", "is_trial"]]


def _labels(data: pd.DataFrame) -> list[str]:
    return [
        f"{s} ({int(y)})" if not str(s).endswith(str(int(y))) else str(s) for s, y in zip(data["study"], data["year"])
    ]


def fit_frequentist(data: pd.DataFrame, meta: dict) -> MetaResult:
    """The meta stage's main model on ``data`` (one row per study: yi, vi)."""
    knha = bool(meta["knha"]) and meta["method"] not in ("EE", "FE") and len(data) > 1
    return rma(
        data["yi"].to_numpy(float),
        data["vi"].to_numpy(float),
        method=meta["method"],
        knha=knha,
        level=meta["level"],
        slab=_labels(data),
    )


def _freq_summary(fit: MetaResult | None) -> dict:
    if fit is None:
        return {
            "k": 0,
            "estimate": math.nan,
            "ci_low": math.nan,
            "ci_high": math.nan,
            "tau": math.nan,
            "p": math.nan,
            "prob_gt_0": math.nan,
            "mcse": math.nan,
        }
    tau = math.sqrt(fit.tau2) if fit.k > 1 and not math.isnan(fit.tau2) else math.nan
    return {
        "k": fit.k,
        "estimate": fit.estimate,
        "ci_low": fit.ci_low,
        "ci_high": fit.ci_high,
        "tau": tau,
        "p": fit.p,
        "prob_gt_0": math.nan,
        "mcse": math.nan,
    }


def _bayes_summary(gated) -> dict:
    if gated is None or not gated.passed:
        return {
            "k": 0 if gated is None else gated.result.k,
            "estimate": math.nan,
            "ci_low": math.nan,
            "ci_high": math.nan,
            "tau": math.nan,
            "p": math.nan,
            "prob_gt_0": math.nan,
            "mcse": math.nan,
        }
    est = gated.result.estimates.set_index("quantity")
    return {
        "k": gated.result.k,
        "estimate": float(est.at["mu", "estimate"]),
        "ci_low": float(est.at["mu", "ci_low"]),
        "ci_high": float(est.at["mu", "ci_high"]),
        "tau": float(est.at["tau", "median"]),
        "p": math.nan,
        "prob_gt_0": float(est.at["P(mu > 0)", "estimate"]),
        # an exact fit has no Monte Carlo error
        "mcse": float(est.at["mu", "mcse_mean"]) if "mcse_mean" in est.columns else 0.0,
    }


def side_by_side_row(ids: dict, framework: str, without: dict, with_: dict, method: str) -> dict:
    """One table row: the pooled effect without and with the trial, and the shift."""
    row = dict(ids, framework=framework)
    for tag, part in (("without", without), ("with", with_)):
        row.update({f"{name}_{tag}": value for name, value in part.items()})
    row["shift"] = with_["estimate"] - without["estimate"]
    row["method"] = method
    return row


# ---------------------------------------------------------------------------------------------
# How surprising is the trial


def predictive_percentiles_frequentist(fit: MetaResult, y: float, v: float) -> dict:
    """Where ``y`` (with sampling variance ``v``) falls in the prediction distribution of ``fit``:
    ``pct_true`` = F((y - mu) / sqrt(se^2 + tau^2)) (a new study's true effect, the PI's distribution),
    ``pct_observed`` = F((y - mu) / sqrt(se^2 + tau^2 + v)) (a new study's estimate); F is t(k - 1) under
    Knapp-Hartung, else standard normal (as ``MetaResult.predict``). Needs k >= 2."""
    if fit.k < 2:
        raise AnalysisError("a prediction distribution needs at least 2 published studies (tau^2 unknown with 1)")
    tau2 = 0.0 if math.isnan(fit.tau2) else fit.tau2
    dist = stats.t(fit.df) if fit.knha else stats.norm()
    scale_true, scale_obs = math.sqrt(fit.se**2 + tau2), math.sqrt(fit.se**2 + tau2 + v)
    pct_obs = float(dist.cdf((y - fit.estimate) / scale_obs))
    return {
        "pct_true": float(dist.cdf((y - fit.estimate) / scale_true)),
        "pct_observed": pct_obs,
        "p_two_sided": 2 * min(pct_obs, 1 - pct_obs),
        "distribution": f"t({fit.df:g})" if fit.knha else "normal",
    }


def _draws(result, name: str) -> np.ndarray:
    return np.asarray(result.posterior["posterior"][name].values, dtype=float)


def _iid_draws(result) -> bool:
    from imrstats.meta.bayes_stage import EXACT_ENGINE

    return result.posterior["posterior"].attrs.get("engine") == EXACT_ENGINE


def predictive_percentiles_bayes(result, y: float, v: float) -> dict:
    """``pct_true``: share of the posterior draws of mu_new (a new trial's true effect) below ``y``;
    ``pct_observed``: E_post[Phi((y - mu) / sqrt(tau^2 + v))], the predictive probability that a new trial's
    *estimate* with variance ``v`` is below ``y`` (Rao-Blackwellised over the draws of mu and tau). Each with
    its Monte Carlo SE (ArviZ MCSE of the mean over chains x draws; SD / sqrt(n) for exact i.i.d. draws)."""
    mu, tau, mu_new = _draws(result, "mu"), _draws(result, "tau"), _draws(result, "mu_new")
    below = (mu_new < y).astype(float)
    cdf = stats.norm.cdf((y - mu) / np.sqrt(tau**2 + v))
    if _iid_draws(result):  # exact i.i.d. draws: the MCSE of a mean is its SD / sqrt(n)
        mcse = [float(x.std(ddof=1) / math.sqrt(x.size)) for x in (below, cdf)]
    else:
        import arviz as az

        mcse = [0.0 if np.ptp(x) == 0 else float(az.mcse(x, method="mean")) for x in (below, cdf)]
    pct_obs = float(cdf.mean())
    return {
        "pct_true": float(below.mean()),
        "pct_true_mcse": mcse[0],
        "pct_observed": pct_obs,
        "pct_observed_mcse": mcse[1],
        "p_two_sided": 2 * min(pct_obs, 1 - pct_obs),
    }


# ---------------------------------------------------------------------------------------------
# The stage


def _slug(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_")


class _Bayes:
    """The Bayesian fits of the stage: the engine of ``meta.bayes.engine`` (exact quadrature, or one shared
    compiled NUTS sampler with every fit gated: a failure is flagged and its numbers blanked), the meta stage's
    main prior and run settings. ``reused``: the meta stage's published-only fits read back from its outputs
    (``read_meta_fits``), taken instead of refitting."""

    def __init__(self, meta: dict, seed: int, k_max: int, flags: list[str]):
        from imrstats.meta.bayes import SHIPPED_TAU_PRIORS
        from imrstats.meta.bayes_stage import normal_prior_from_spec, stage_sampler

        self.b = meta["bayes"]
        self.exact = self.b.get("engine", "exact") == "exact"
        self.prior_mu = normal_prior_from_spec(self.b["prior_mu"], "meta.bayes.prior_mu")
        self.prior_key = self.b["tau_prior"]
        self.prior_tau = SHIPPED_TAU_PRIORS[self.prior_key].prior
        self.mid = None if meta.get("mid") is None else float(meta["mid"])
        self.seed, self.flags, self.diagnostics = seed, flags, []
        self.reused: dict = {}
        self.sampler = stage_sampler(self.b, k_max) if self.b["enabled"] else None

    def fit(self, data: pd.DataFrame, seed: int, context: str, **ids):
        from imrstats.meta.bayes_stage import diagnostic_row, gated_fit

        if not self.b["enabled"] or len(data) < self.b["min_studies"]:
            return None
        fit = gated_fit(
            self.sampler,
            data["yi"].to_numpy(float),
            data["sei"].to_numpy(float),
            _labels(data),
            prior_mu=self.prior_mu,
            prior_tau=self.prior_tau,
            mid=self.mid,
            seed=seed,
            draws=self.b["draws"],
            tune=self.b["tune"],
            chains=self.b["chains"],
            context=f"evidence, {context}",
            on_failure="flag",
        )
        if not fit.passed:
            self.flags.append(fit.failure)
        self.diagnostics.append(diagnostic_row(fit, **ids))
        return fit

    def published_fit(self, label: str, data: pd.DataFrame, seed: int, context: str, **ids):
        """The published-only fit of ``label``: the meta stage's own (``reused``) when it was read back and
        pools the same studies with the same prior and seed, else a fit here (the same seed path, so the
        same numbers)."""
        from imrstats.meta.bayes_stage import GatedFit

        if label in self.reused and self.b["enabled"] and len(data) >= self.b["min_studies"]:
            result = self.reused[label]
            self.diagnostics.append(
                {**ids, "k": result.k, "engine": result.engine, "source": result.source, "attempts": 0, "passed": True}
            )
            return GatedFit(result, 1)
        return self.fit(data, seed, context, **ids)

    @property
    def method(self) -> str:
        if self.exact:
            from imrstats.meta.bayes_stage import EXACT_ENGINE

            engine = EXACT_ENGINE
        else:
            engine = f"NUTS via nutpie ({self.b['chains']} x {self.b['draws']} draws)"
        return (
            f"Bayesian normal-normal random effects, {engine}; mu ~ {self.prior_mu.label()}, tau prior "
            f"{self.prior_key}; posterior mean and 95% equal-tailed interval of mu, posterior median of tau"
        )


class MetaFit:
    """A published-only Bayesian fit read back from the meta stage's outputs: ``estimates`` (its rows of the
    meta record's ``bayes.pooled`` table), ``posterior`` (its netCDF posterior, loaded), ``k``, ``engine`` and
    ``source`` (the file it came from); ``diagnostics`` None (a main fit the meta stage wrote passed)."""

    diagnostics = None

    def __init__(self, estimates: pd.DataFrame, posterior, k: int, engine: str, source: str):
        self.estimates, self.posterior, self.k, self.engine, self.source = estimates, posterior, k, engine, source


def read_meta_fits(
    meta_dir: str | Path, inputs: dict[str, pd.DataFrame], meta: dict, seed: int
) -> tuple[dict[str, MetaFit], list[str]]:
    """The meta stage's published-only fits of the outcomes in ``inputs`` (label -> published rows), from its
    outputs in ``meta_dir`` (``result.json`` and ``posteriors/bayes_<label>.nc``). A fit is taken only if its
    posterior pools exactly these studies (labels, y and se equal), with this engine, these priors, this seed
    (the meta stage's seed path) and, for the exact engine, this number of draws; otherwise the stage fits it
    itself, and a note says why. Returns (label -> MetaFit, notes)."""
    import xarray as xr

    from imrstats.core.seeds import label_code, spawn_seed
    from imrstats.meta.bayes import SHIPPED_TAU_PRIORS
    from imrstats.meta.bayes_stage import EXACT_ENGINE, NUTS_ENGINE, normal_prior_from_spec
    from imrstats.meta.figures import slug

    meta_dir = Path(meta_dir)
    b = meta["bayes"]
    exact = b.get("engine", "exact") == "exact"
    try:
        record = json.loads((meta_dir / "result.json").read_text())
    except (OSError, ValueError) as error:
        raise InputError(f"{meta_dir / 'result.json'}: the meta stage's result cannot be read: {error}") from error
    pooled = pd.DataFrame((record.get("bayes") or {}).get("pooled") or [])
    want = {
        "prior_mu": normal_prior_from_spec(b["prior_mu"], "meta.bayes.prior_mu").label(),
        "prior_tau": SHIPPED_TAU_PRIORS[b["tau_prior"]].prior.label(),
    }
    out, notes = {}, []
    for label, data in inputs.items():
        path = meta_dir / "posteriors" / f"bayes_{slug(label)}.nc"
        if len(data) < b["min_studies"]:
            continue  # not pooled by either stage
        if not path.exists() or pooled.empty:
            notes.append(f"{label}: the meta stage wrote no published-only posterior ({path.name}); fitted here")
            continue
        with xr.open_datatree(path, engine="h5netcdf") as tree:
            tree = tree.load()
        attrs = tree["posterior"].attrs
        checks = {
            "studies": list(map(str, tree["observed_data"]["study"].values)) == _labels(data),
            "y": np.array_equal(tree["observed_data"]["y"].values, data["yi"].to_numpy(float)),
            "se": np.array_equal(tree["constant_data"]["se"].values, data["sei"].to_numpy(float)),
            "engine": (attrs.get("engine") == EXACT_ENGINE) == exact,
            "prior_mu": attrs.get("prior_mu") == want["prior_mu"],
            "prior_tau": attrs.get("prior_tau") == want["prior_tau"],
            "seed": int(attrs.get("seed", -1)) == spawn_seed(spawn_seed(seed, label_code(label)), 0, 0),
            "draws": not exact or tree["posterior"].sizes["draw"] == int(b["exact_draws"]),
        }
        rows = pooled.loc[pooled["outcome_label"] == label] if "outcome_label" in pooled else pooled.iloc[:0]
        checks["summary"] = {"mu", "tau", "P(mu > 0)"} <= set(rows.get("quantity", []))
        failed = [name for name, ok in checks.items() if not ok]
        if failed:
            notes.append(
                f"{label}: the meta stage's published-only fit ({path.name}) differs in {', '.join(failed)}; "
                "fitted here instead"
            )
            continue
        estimates = rows.drop(columns=[c for c in ("outcome_label", "measure", "prior", "k") if c in rows.columns])
        estimates = estimates.astype({c: float for c in ("estimate", "ci_low", "ci_high", "median") if c in estimates})
        out[label] = MetaFit(
            estimates.reset_index(drop=True),
            tree,
            len(data),
            EXACT_ENGINE if exact else NUTS_ENGINE,
            f"the meta stage's fit (meta/posteriors/{path.name}, meta/result.json)",
        )
    return out, notes


def _disabled() -> StageResult:
    return StageResult(
        "evidence",
        record={"enabled": False},
        summary="Your trial in the pooled evidence: off (evidence.enabled = false)",
    )


def _replacement_text(ev: dict, dropped: dict[str, bool]) -> str:
    rep = ev["replaces_study"]
    if rep is None:
        return (
            "evidence.replaces_study is null: the trial is treated as a new study and every published study "
            "stays in the 'with your trial' analysis."
        )
    hit = [label for label, done in dropped.items() if done]
    if not hit:
        return (
            f"evidence.replaces_study = '{rep}', but no pooled published row has that study name, so nothing "
            "was dropped."
        )
    return (
        f"evidence.replaces_study = '{rep}': your trial is that study, so its published row was dropped from "
        f"the 'with your trial' analysis and from the reference for the surprise check ({', '.join(hit)}); "
        "the 'without' column still pools it as published."
    )


def _outcome_part(label, published, rows, ev, meta, year, bayes, seed, figures, out, notes, target=None):
    """Every analysis of one outcome label: appends to the ``out`` lists of rows; returns nothing. The fits of
    the ``target`` (analysis, timepoint), the one GRADE rates, are kept in ``out["grade_fits"][label]``."""
    from imrstats.core.seeds import label_code, spawn_seed
    from imrstats.evidence.figures import cumulative_with_trial_figure, predictive_figure

    rep = ev["replaces_study"]
    reference = published.loc[published["study"] != rep] if rep else published
    freq_without = fit_frequentist(published, meta)
    bayes_without = bayes.published_fit(
        label,
        published,
        spawn_seed(spawn_seed(seed, label_code(label)), 0, 0),
        f"{label}, published studies only",
        outcome_label=label,
        analysis="without",
        timepoint="",
        k_role="published",
    )
    if bayes_without is None and bayes.b["enabled"]:
        notes.append(f"{label}: k = {len(published)} published < meta.bayes.min_studies; no Bayesian 'without'")
    same_reference = len(reference) == len(published)
    freq_ref = freq_without if same_reference else (fit_frequentist(reference, meta) if len(reference) else None)
    bayes_ref = (
        bayes_without
        if same_reference
        else bayes.fit(
            reference,
            spawn_seed(seed, label_code(f"evidence reference {label}")),
            f"{label}, reference without {rep}",
            outcome_label=label,
            analysis="reference",
            timepoint="",
            k_role="published minus replaced",
        )
    )
    freq_method = freq_without.method_label
    for tp in ev["timepoints"]:
        endings, shown = {}, []
        for analysis in ev["analyses"]:
            hit = rows.loc[(rows["analysis"] == analysis) & (rows["timepoint"] == tp)]
            if hit.empty or hit.iloc[0]["problem"]:
                continue
            trow = hit.iloc[0]
            ids = {
                "outcome_label": label,
                "instrument": trow["instrument"],
                "analysis": analysis,
                "timepoint": tp,
                "trial_g": float(trow["yi"]),
                "trial_se": float(trow["sei"]),
            }
            data = with_trial(published, trow, year=year, replaces_study=rep)
            f_with = fit_frequentist(data, meta)
            b_with = bayes.fit(
                data,
                spawn_seed(seed, label_code(f"evidence {label} {analysis} {tp}")),
                f"{label}, with your trial ({analysis}, {tp})",
                outcome_label=label,
                analysis=f"with ({analysis})",
                timepoint=tp,
                k_role="with trial",
            )
            if (analysis, tp) == target:
                out["grade_fits"][label] = {
                    "data": data,
                    "published": published,
                    "fit": f_with,
                    "bayes": b_with,
                    "trow": trow,
                }
            out["pooled"].append(
                side_by_side_row(
                    ids,
                    f"{meta['method']}" + (" + Knapp-Hartung" if meta["knha"] else ""),
                    _freq_summary(freq_without),
                    _freq_summary(f_with),
                    freq_method,
                )
            )
            out["pooled"].append(
                side_by_side_row(
                    ids,
                    f"Bayesian ({bayes.prior_key})",
                    _bayes_summary(bayes_without),
                    _bayes_summary(b_with),
                    bayes.method,
                )
            )
            out["pooled"][-1]["studies_with"] = out["pooled"][-2]["studies_with"] = "; ".join(_labels(data))
            cum = f_with.cumulative(order=np.arange(len(data)))
            out["cumulative"].append(cum.assign(outcome_label=label, analysis=analysis, timepoint=tp))
            endings[analysis] = cum.iloc[-1]
            steps = cum.iloc[:-1]
            out["surprise"].append(_surprise_row(ids, trow, reference, freq_ref, bayes_ref, notes))
            shown.append({**trow.to_dict(), "pct_true": out["surprise"][-1]["bayes_pct_true"]})
        if endings:
            name = f"evidence_cumulative_{_slug(label)}_{tp}"
            figures[name] = cumulative_with_trial_figure(
                steps,
                endings,
                title=f"{label} ({tp}): cumulative {meta['method']}"
                + (" + Knapp-Hartung" if meta["knha"] else "")
                + f", ending in {ev['label']}",
            )
        if shown and bayes_ref is not None and bayes_ref.passed:
            name = f"evidence_predictive_{_slug(label)}_{tp}"
            figures[name] = predictive_figure(
                _draws(bayes_ref.result, "mu_new"),
                pd.DataFrame(shown),
                title=f"{label} ({tp}): how surprising is {ev['label']}?",
            )


def _surprise_row(ids, trow, reference, freq_ref, bayes_ref, notes) -> dict:
    y, v = float(trow["yi"]), float(trow["vi"])
    row = dict(ids, k_reference=len(reference), reference_studies="; ".join(_labels(reference)))
    try:
        f = predictive_percentiles_frequentist(freq_ref, y, v) if freq_ref is not None else None
    except AnalysisError:
        f = None
    if f is None:
        notes.append(
            f"{ids['outcome_label']}: {len(reference)} reference stud{'y' if len(reference) == 1 else 'ies'}"
            " (published, minus a replaced study): no surprise check (tau^2 needs at least 2)"
        )
        f = {"pct_true": math.nan, "pct_observed": math.nan, "p_two_sided": math.nan, "distribution": ""}
    row.update({f"freq_{k}": val for k, val in f.items()})
    if bayes_ref is not None and bayes_ref.passed:
        row.update({f"bayes_{k}": val for k, val in predictive_percentiles_bayes(bayes_ref.result, y, v).items()})
    else:
        row.update(
            {
                f"bayes_{k}": math.nan
                for k in ("pct_true", "pct_true_mcse", "pct_observed", "pct_observed_mcse", "p_two_sided")
            }
        )
    return row


def run_evidence_stage(
    tables: dict[str, pd.DataFrame] | None,
    settings: dict | None,
    *,
    seed: int | None = None,
    trial_dir: str | Path = "results/trial",
    trial=None,
    published: pd.DataFrame | None = None,
    meta_dir: str | Path | None = None,
    risk_of_bias: pd.DataFrame | None = None,
    indirectness: pd.DataFrame | None = None,
) -> StageResult:
    """The trial added to the published evidence (module docstring). ``settings``: ``{"evidence": ...,
    "meta": ..., "trial": ...}`` (or the evidence section alone); given ``trial`` (the config's trial section),
    its study design must have the ``evidence.timepoints`` among its visits and IMR, TAU as its arms
    (`check_trial_design`). The trial's results come from ``trial`` (the trial
    stage's StageResult, tables or record) or else ``trial_dir``; the published rows from ``published`` or
    ``meta.published_outcomes``. ``tables`` (the cleaned data) is not used: only aggregates enter.
    ``seed`` (default: the config's `stage_seed("meta")`, what the pipeline passes) seeds the Bayesian
    fits (the published-only fit uses the meta stage's seed path; it reproduces
    the meta report's draws only with the same seed and the same compiled capacity, otherwise it agrees
    within Monte Carlo error). ``meta_dir``: the meta stage's output folder (``result.json``, ``posteriors/``);
    given, its published-only fits are taken from there instead of refitted (``read_meta_fits``; what the
    pipeline does); without it the stage fits them itself, with the same seeds, so the numbers agree (the
    exact engine: identical). ``risk_of_bias`` / ``indirectness``: the published studies' judgements
    (``data/published/risk_of_bias.csv`` and ``indirectness.csv`` as their loaders return them; default: those
    files), for GRADE and the Summary of Findings (`imrstats.evidence.grade`, docs/grade.md)."""
    from imrstats.data.published import load_published_outcomes
    from imrstats.meta.stage import outcome_inputs

    ev, meta = evidence_settings(settings)
    if not ev["enabled"]:
        return _disabled()
    if isinstance(settings, dict) and "trial" in settings:
        check_trial_design(ev, settings["trial"])
    seed = stage_seed("meta") if seed is None else int(seed)
    trial = read_trial_results(trial_dir) if trial is None else trial
    effects = _trial_effects(trial, ev, meta)
    outcomes = load_published_outcomes(meta["published_outcomes"]) if published is None else published
    meta_plain = {k: v for k, v in meta.items() if k != "bayes"}
    inputs = outcome_inputs(outcomes, meta_plain)
    years = [int(y) for d in inputs.values() for y in d["year"]]
    year = ev["year"] if ev["year"] is not None else (max(years) + 1 if years else 0)
    flags: list[str] = (
        [
            f"{r['outcome_label']} ({ANALYSIS_NAMES[r['analysis']]}, {r['timepoint']}): not converted: {r['problem']}"
            for _, r in effects.iterrows()
            if r.get("problem")
        ]
        if len(effects)
        else []
    )
    notes: list[str] = []
    covered = [
        label
        for label in meta["outcomes"]
        if len(effects)
        and label in set(effects["outcome_label"])
        and len(inputs.get(label, []))
        and (inputs[label]["measure"] == "SMD").all()
    ]
    for label in meta["outcomes"]:
        if label not in covered:
            notes.append(
                f"{label}: not compared ("
                + (
                    "the trial has no result for its instruments"
                    if not len(effects) or label not in set(effects["outcome_label"])
                    else "no published SMD rows pooled"
                )
                + ")"
            )
    if not covered:
        flags.append("no outcome is covered by both the trial stage and the published data: nothing to compare")
    k_max = max([len(inputs[label]) + 1 for label in covered] + [1])
    bayes = _Bayes(meta, seed, k_max, flags)
    if meta_dir is not None and meta["bayes"]["enabled"]:
        bayes.reused, reuse_notes = read_meta_fits(meta_dir, {label: inputs[label] for label in covered}, meta, seed)
        notes += reuse_notes
    if not meta["bayes"]["enabled"]:
        notes.append("Bayesian pooling off (meta.bayes.enabled = false): only the frequentist columns are filled")
    out: dict = {"pooled": [], "surprise": [], "cumulative": [], "grade_fits": {}}
    figures: dict = {}
    dropped = {}
    trial_section = settings.get("trial") if isinstance(settings, dict) else None
    target = grade_target(ev, section_settings("trial", trial_section)["primary"])
    for label in covered:
        dropped[label] = bool(ev["replaces_study"]) and ev["replaces_study"] in set(inputs[label]["study"])
        try:
            _outcome_part(
                label,
                inputs[label],
                effects.loc[effects["outcome_label"] == label],
                ev,
                meta,
                year,
                bayes,
                seed,
                figures,
                out,
                notes,
                target=(target["analysis"], target["timepoint"]),
            )
        except (AnalysisError, InputError) as error:
            flags.append(f"{label}: not compared: {error}")
    if ev["replaces_study"] and not any(dropped.values()):
        flags.append(
            f"evidence.replaces_study = '{ev['replaces_study']}' matches no pooled published study; "
            "nothing was dropped (check the spelling against the meta stage's study names)"
        )
    grading = {
        **target,
        "mid": float(meta["mid"]),
        "optimal_information_size": optimal_information_size(float(meta["mid"])),
        "rules": {**RULES, "certainty": RULE_CERTAINTY},
    }
    graded = _grading(
        out["grade_fits"],
        effects,
        trial,
        outcomes,
        ev,
        meta,
        target,
        risk_of_bias,
        indirectness,
        notes,
        figures,
        grading,
    )
    notes = list(dict.fromkeys(notes))
    result_tables = {**_tables(effects, out, bayes), **{k: v for k, v in graded.items() if len(v)}}
    record = {
        "settings": {**ev, "meta": meta_plain},
        "year_used": year,
        "seed": seed,
        "direction": FAVOURS,
        "replacement": _replacement_text(ev, dropped),
        "covered": covered,
        "grading": grading,
        "reused_meta_fits": sorted(bayes.reused),
        "notes": notes,
        **{name.removeprefix("evidence_"): to_records(frame) for name, frame in result_tables.items()},
    }
    return StageResult(
        "evidence",
        result_tables,
        figures,
        record,
        _summary(ev, meta, year, result_tables, notes, flags, dropped, bayes),
        flags=flags,
    )


def _tables(effects, out, bayes) -> dict[str, pd.DataFrame]:
    cum = pd.concat(out["cumulative"], ignore_index=True) if out["cumulative"] else pd.DataFrame()
    if len(cum):
        front = ["outcome_label", "analysis", "timepoint", "added", "k", "estimate", "ci_low", "ci_high", "p", "tau2"]
        cum = cum[front + [c for c in cum.columns if c not in front]]
    tables = {
        "evidence_trial_effects": effects,
        "evidence_pooled": pd.DataFrame(out["pooled"]),
        "evidence_surprise": pd.DataFrame(out["surprise"]),
        "evidence_cumulative": cum,
        "evidence_diagnostics": pd.DataFrame(bayes.diagnostics),
    }
    return {k: v for k, v in tables.items() if len(v)}


# ---------------------------------------------------------------------------------------------
# GRADE, the Summary of Findings and the risk-of-bias sensitivity analysis (imrstats.evidence.grade)

# the outcome labels of meta.outcomes as the Summary of Findings names them (the instrument is added)
OUTCOME_DOMAINS = {
    "imrs_client": "Illness self-management, client-rated",
    "imrs_clinician": "Illness self-management, clinician-rated",
    "hope": "Hope",
    "functioning": "Functioning",
    "symptoms": "Symptoms",
    "hospitalisation": "Hospitalisation",
}


def grade_target(ev: dict, primary: dict) -> dict:
    """The one trial analysis and visit GRADE rates and the Summary of Findings shows: the ITT analysis (else the
    first of ``evidence.analyses``) at the trial's primary visit (``trial.primary.timepoint``) when it is among
    ``evidence.timepoints``, else the first of them; ``why`` says which and why."""
    analysis = "itt" if "itt" in ev["analyses"] else ev["analyses"][0]
    timepoint = primary["timepoint"] if primary["timepoint"] in ev["timepoints"] else ev["timepoints"][0]
    why = f"{ANALYSIS_NAMES[analysis]} analysis of the trial at {timepoint}"
    if analysis != "itt":
        why += " (evidence.analyses has no itt)"
    if timepoint != primary["timepoint"]:
        why += (
            f" (the trial's primary visit {primary['timepoint']} is not among evidence.timepoints "
            f"{list(ev['timepoints'])}, so the first of them)"
        )
    return {"analysis": analysis, "timepoint": timepoint, "primary": dict(primary), "why": why}


def summary_labels(ev: dict, meta: dict, effects: pd.DataFrame, primary: dict, compared: list[str]) -> list[str]:
    """The Summary of Findings' outcome labels: ``evidence.summary_outcomes`` as given, else the label of the
    trial's primary outcome (the meta label whose instrument for the trial is ``trial.primary.outcome``) first,
    then the other labels of ``compared`` in ``meta.outcomes`` order."""
    if ev["summary_outcomes"]:
        return list(ev["summary_outcomes"])
    first = []
    if len(effects):
        hit = effects.loc[effects["instrument"] == primary["outcome"], "outcome_label"]
        first = list(dict.fromkeys(hit))[:1]
    if not first:
        first = [label for label, keys in meta["outcomes"].items() if primary["outcome"] in keys][:1]
    return first + [label for label in meta["outcomes"] if label in compared and label not in first]


def _published_n(outcomes: pd.DataFrame, published: pd.DataFrame) -> dict[str, float]:
    """Participants per pooled published study: n_imr + n_tau of its curated row, else n_total; NaN if neither
    (``row`` is the CSV line of the row, index + 2)."""
    out = {}
    for study, row in zip(published["study"], published["row"]):
        source = outcomes.loc[int(row) - 2] if int(row) - 2 in outcomes.index else None
        n = math.nan
        if source is not None:
            arms = pd.to_numeric(pd.Series([source.get("n_imr"), source.get("n_tau")]), errors="coerce")
            total = pd.to_numeric(pd.Series([source.get("n_total")]), errors="coerce").iloc[0]
            n = float(arms.sum()) if arms.notna().all() else (float(total) if pd.notna(total) else math.nan)
        out[study] = n
    return out


def _trial_contrast(itt: pd.DataFrame, instrument: str, timepoint: str) -> dict:
    """The trial stage's ITT contrast (IMR - TAU, its 95% CI, p, N analysed) of one instrument and visit."""
    keys = ("estimate", "ci_low", "ci_high", "p", "n_analysed")
    hit = itt.loc[(itt["outcome"] == instrument) & (itt["timepoint"] == timepoint)] if len(itt) else itt
    if hit.empty:
        return dict.fromkeys(keys, math.nan)
    row = hit.iloc[0]
    return {k: float(row[k]) if k in row.index and pd.notna(row[k]) else math.nan for k in keys}


def _trial_md(trow: pd.Series, contrast: dict, analysis: str, level: float) -> dict:
    """The trial's mean difference IMR - TAU with its CI and p: the trial stage's ITT contrast as it reports it;
    for another analysis, md +/- t(md_df) md_se and the two-sided t p of the converted row."""
    if analysis == "itt":
        return {k: contrast[k] for k in ("estimate", "ci_low", "ci_high", "p")}
    md, se, df = float(trow["md"]), float(trow["md_se"]), float(trow["md_df"])
    half = float(stats.t.isf((1 - level) / 2, df)) * se
    return {"estimate": md, "ci_low": md - half, "ci_high": md + half, "p": float(2 * stats.t.sf(abs(md / se), df))}


def _trial_n(trow: pd.Series, contrast: dict, analysis: str) -> tuple[float, str]:
    """(the trial's N, what it counts): ITT, the number the MI-MMRM analysed; else (or without it) the number
    observed at the visit."""
    if analysis == "itt" and not math.isnan(contrast["n_analysed"]):
        return contrast["n_analysed"], "trial N: analysed by MI-MMRM (ITT)"
    return float(trow["n_imr"] + trow["n_tau"]), "trial N: observed at the visit"


def _rob_inputs(risk_of_bias, indirectness) -> tuple:
    """(RoB rows, overall RoB per study, indirectness): given, else read from data/published/."""
    from imrstats.data.published import load_indirectness, load_risk_of_bias
    from imrstats.evidence.risk_of_bias import overall_by_study

    rob = load_risk_of_bias() if risk_of_bias is None else risk_of_bias
    ind = load_indirectness() if indirectness is None else indirectness
    return rob, overall_by_study(rob), ind


def _grading(fits, effects, trial, outcomes, ev, meta, target, risk_of_bias, indirectness, notes, figures, grading):
    """GRADE per key outcome, the Summary of Findings and the low-RoB-only sensitivity analysis (tables), and
    the risk-of-bias traffic-light figure; notes say what is left out and why."""
    from imrstats.evidence.rob_figures import traffic_light, traffic_light_alt_text

    mid = float(meta["mid"])
    rob, overall, ind = _rob_inputs(risk_of_bias, indirectness)
    if len(rob):
        figures["risk_of_bias"] = traffic_light(rob)
        grading["rob_figure_caption"] = (
            f"{traffic_light_alt_text(rob)} The user's trial is not shown: its risk of bias is "
            f"evidence.trial_risk_of_bias ({ev['trial_risk_of_bias'] or 'null: not assessed'})."
        )
    itt, _ = _trial_frames(trial)
    labels = summary_labels(ev, meta, effects, target["primary"], list(fits))
    for label in labels:
        if label not in fits:
            notes.append(f"{label}: not in the Summary of Findings (not compared, or no {target['why']})")
    for label in [x for x in fits if x not in labels]:
        notes.append(f"{label}: compared, but not in the Summary of Findings (not in evidence.summary_outcomes)")
    grades, numbers, sensitivity = [], [], []
    for label in [x for x in labels if x in fits]:
        part = fits[label]
        data, fit, trow = part["data"], part["fit"], part["trow"]
        contrast = _trial_contrast(itt, trow["instrument"], target["timepoint"])
        n_pub = _published_n(outcomes, part["published"])
        trial_n, n_basis = _trial_n(trow, contrast, target["analysis"])
        md = _trial_md(trow, contrast, target["analysis"], float(meta["level"]))
        studies = study_judgements(
            data.assign(n=[trial_n if t else n_pub.get(s, math.nan) for s, t in zip(data["study"], data["is_trial"])]),
            overall,
            ind,
            trial_rob=ev["trial_risk_of_bias"],
            trial_indirectness=ev["trial_indirectness"],
        )
        pred = fit.predict().extra
        tau2 = 0.0 if math.isnan(fit.tau2) else fit.tau2
        pooled = {
            "k": fit.k,
            "estimate": fit.estimate,
            "ci_low": fit.ci_low,
            "ci_high": fit.ci_high,
            "tau2": tau2,
            "i2": fit.i2,
            **pred,
        }
        egger = fit.regtest().iloc[0]["p"] if fit.k >= 10 else math.nan
        grades.append(grade_outcome(label, studies, pooled, mid=mid, egger_p=egger))
        bayes = _bayes_summary(part["bayes"])
        numbers.append(
            {
                "outcome_label": label,
                "outcome_name": _outcome_name(label, trow["instrument"]),
                "instrument": trow["instrument"],
                "timepoint": target["timepoint"],
                "is_primary": trow["instrument"] == target["primary"]["outcome"],
                "trial_md": md["estimate"],
                "trial_md_ci_low": md["ci_low"],
                "trial_md_ci_high": md["ci_high"],
                "trial_p": md["p"],
                "trial_g": float(trow["yi"]),
                "trial_g_ci_low": float(trow["ci_low"]),
                "trial_g_ci_high": float(trow["ci_high"]),
                "trial_n": trial_n,
                "k": fit.k,
                "n_participants": float(pd.to_numeric(studies["n"], errors="coerce").sum()),
                "pooled_smd": fit.estimate,
                "pooled_ci_low": fit.ci_low,
                "pooled_ci_high": fit.ci_high,
                "pi_low": pred["pi_low"],
                "pi_high": pred["pi_high"],
                "i2": fit.i2,
                "tau": math.sqrt(tau2),
                "bayes_mean": bayes["estimate"],
                "bayes_ci_low": bayes["ci_low"],
                "bayes_ci_high": bayes["ci_high"],
                "prob_gt_0": bayes["prob_gt_0"],
                "prob_gt_mid": _prob_gt_mid(part["bayes"], mid),
                "mid": mid,
                "method": _sof_method(fit, target, ev, meta) + f"; {n_basis}",
            }
        )
        sensitivity.append(_low_rob_row(label, studies, fit, meta, target))
    if not grades:
        return {}
    grade = pd.concat(grades, ignore_index=True)
    return {
        "evidence_summary_of_findings": summary_of_findings(grade, pd.DataFrame(numbers)),
        "evidence_grade": grade,
        "evidence_rob_sensitivity": pd.DataFrame(sensitivity),
    }


def _outcome_name(label: str, instrument: str) -> str:
    from imrstats.data.instruments import load_registry

    registry = load_registry()
    short = registry[instrument].short if instrument in registry else instrument
    return f"{OUTCOME_DOMAINS.get(label, label)} ({short})"


def _prob_gt_mid(gated, mid: float) -> float:
    if gated is None or not gated.passed:
        return math.nan
    est = gated.result.estimates.set_index("quantity")
    key = f"P(mu > {mid:g})"
    return float(est.at[key, "estimate"]) if key in est.index else math.nan


def _sof_method(fit: MetaResult, target: dict, ev: dict, meta: dict) -> str:
    bayes = (
        f"Bayesian: posterior mean and 95% interval of mu (tau prior {meta['bayes']['tau_prior']})"
        if meta["bayes"]["enabled"]
        else "Bayesian pooling off (meta.bayes.enabled = false)"
    )
    return (
        f"The published studies and '{ev['label']}' ({target['why']}); "
        # one text for every outcome: the Knapp-Hartung df is each fit's k - 1
        f"{re.sub(r'Knapp-Hartung t[(][0-9]+[)]', 'Knapp-Hartung t(k - 1)', fit.method_label)}; PI = estimate +/- "
        f"crit sqrt(se^2 + tau^2); {bayes}; certainty by GRADE (docs/grade.md)"
    )


def _low_rob_row(label: str, studies: pd.DataFrame, fit: MetaResult, meta: dict, target: dict) -> dict:
    """The main pooled fit beside the same model on the studies at low overall risk of bias only."""
    low = studies.loc[studies["rob"].eq("low").fillna(False).astype(bool)]
    left = studies.loc[~studies.index.isin(low.index)]
    row = {
        "outcome_label": label,
        "analysis": target["analysis"],
        "timepoint": target["timepoint"],
        "k_main": fit.k,
        "estimate_main": fit.estimate,
        "ci_low_main": fit.ci_low,
        "ci_high_main": fit.ci_high,
        "k_low_rob": len(low),
        "estimate_low_rob": math.nan,
        "ci_low_low_rob": math.nan,
        "ci_high_low_rob": math.nan,
        "studies_low_rob": "; ".join(map(str, low["study"])),
        "studies_left_out": "; ".join(
            f"{s} ({r if isinstance(r, str) else 'not assessed'})" for s, r in zip(left["study"], left["rob"])
        ),
        "note": "",
        "method": fit.method_label,
    }
    if len(low) < 2:
        row["note"] = f"not estimable (k < 2): {len(low)} stud{'y' if len(low) == 1 else 'ies'} at low risk of bias"
        return row
    sub = fit_frequentist(low, meta)
    row.update(
        estimate_low_rob=sub.estimate, ci_low_low_rob=sub.ci_low, ci_high_low_rob=sub.ci_high, method=sub.method_label
    )
    return row


# ---------------------------------------------------------------------------------------------
# Summary text


def _summary(ev, meta, year, tables, notes, flags, dropped, bayes) -> str:
    lines = [
        f"Your trial in the pooled evidence: '{ev['label']}' ({year}) added as the newest study; Hedges' g "
        f"({FAVOURS}), SD = {ev['standardise_by'].replace('_', ' ')}; {meta['method']}"
        f"{' + Knapp-Hartung' if meta['knha'] else ''} and Bayesian (tau prior {bayes.prior_key}).",
        _replacement_text(ev, dropped),
        "",
    ]
    pooled, surprise = tables.get("evidence_pooled"), tables.get("evidence_surprise")
    if pooled is not None:
        lines.append(f"{'outcome':<15}{'analysis':<15}{'visit':<6}{'framework':<40}{'without':>22}{'with':>24}")
        for _, r in pooled.iterrows():
            w = f"{fmt(r['estimate_without'])} [{fmt(r['ci_low_without'])}, {fmt(r['ci_high_without'])}]"
            x = f"{fmt(r['estimate_with'])} [{fmt(r['ci_low_with'])}, {fmt(r['ci_high_with'])}]"
            lines.append(
                f"{r['outcome_label']:<15}{r['analysis']:<15}{r['timepoint']:<6}{r['framework'][:39]:<40}"
                f"{w:>22}{x:>24}  (k {int(r['k_without'])} -> {int(r['k_with'])})"
            )
    if surprise is not None:
        lines += [
            "",
            "How surprising is the trial (percentile of its g in the published-only predictive "
            "distribution; 'obs' includes the trial's own sampling error):",
        ]
        for _, r in surprise.iterrows():
            lines.append(
                f"  {r['outcome_label']} {r['analysis']} {r['timepoint']}: g = {fmt(r['trial_g'])}; "
                f"Bayes percentile {fmt(100 * r['bayes_pct_true'], 0)} (obs "
                f"{fmt(100 * r['bayes_pct_observed'], 0)}, two-sided p {fmt(r['bayes_p_two_sided'], 3)}); "
                f"frequentist {fmt(100 * r['freq_pct_true'], 0)} (obs {fmt(100 * r['freq_pct_observed'], 0)}"
                f", {r['freq_distribution'] or 'n/a'})"
            )
    sof = tables.get("evidence_summary_of_findings")
    if sof is not None:
        lines += ["", "GRADE certainty of the pooled evidence with the trial (docs/grade.md):"]
        for _, r in sof.iterrows():
            lines.append(
                f"  {r['outcome_label']}{' (primary)' if r['is_primary'] else ''}: k = {int(r['k'])}, SMD "
                f"{fmt(r['pooled_smd'])} [{fmt(r['pooled_ci_low'])}, {fmt(r['pooled_ci_high'])}]: {r['certainty']}"
                f" (down {int(r['n_downgrades'])})"
            )
    lines += [f"  note: {n}" for n in notes]
    lines += [f"WARNING: {f}" for f in flags]
    return "\n".join(lines)
