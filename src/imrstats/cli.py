"""The command line: one command per analysis, for a reviewer with a single file or directory.

Each command prints a human summary; errors in the input are printed as a list (file, row, column,
value, rule) and the command exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from imrstats.config import load_config
from imrstats.errors import AnalysisError, InputError


def _config(args) -> dict:
    overrides = {}
    if getattr(args, "seed", None) is not None:
        overrides["seed"] = args.seed
    return load_config(args.config, overrides)


def cmd_simulate(args) -> int:
    from imrstats.data.stage import write_synthetic_inputs

    config = _config(args)
    paths = write_synthetic_inputs(config, args.out)
    for name, path in paths.items():
        print(f"wrote {path}")
    print(f"synthetic data from seed {config['seed']}")
    return 0


def cmd_check(args) -> int:
    from imrstats.data.check import has_errors
    from imrstats.data.stage import run_check

    config = _config(args)
    problems = run_check(args.paths, config, args.problems)
    errors = [p for p in problems if p.severity == "error"]
    warnings = [p for p in problems if p.severity == "warning"]
    for problem in problems:
        print(problem)
    print(f"{len(errors)} errors, {len(warnings)} warnings")
    if args.json:
        from imrstats.core.io import write_text

        write_text(json.dumps([p.__dict__ for p in problems], indent=2) + "\n", args.json)
    return 2 if has_errors(problems) else 0


def cmd_clean(args) -> int:
    from imrstats.data.stage import run_clean

    config = _config(args)
    written = run_clean([args.input], args.out, config)
    for name, path in written.items():
        print(f"wrote {path}")
    return 0


def meta_input(frame, outcome: str | None, measure: str):
    """Effect sizes for `imrstats meta` from any CSV: arm summaries (n/mean/SD per arm, or events), or a
    reported effect with its SE (columns yi + vi, or effect + se). Returns (yi, vi, labels, description)."""
    from imrstats.meta.effect_sizes import escalc
    from imrstats.data.instruments import load_registry

    if outcome is not None:
        if "instrument" not in frame.columns:
            raise InputError("--outcome needs an 'instrument' column in the table")
        frame = frame[frame["instrument"] == outcome]
        if frame.empty:
            raise InputError(f"no rows with instrument '{outcome}'")
    labels = frame["study"].astype(str) if "study" in frame.columns else None
    if {"yi", "vi"} <= set(frame.columns):
        return frame["yi"].to_numpy(float), frame["vi"].to_numpy(float), labels, "effects as given (yi, vi)"
    if {"effect", "se"} <= set(frame.columns) and not {"mean_imr", "events_imr"} & set(frame.columns):
        return (frame["effect"].to_numpy(float), frame["se"].to_numpy(float) ** 2, labels,
                "effects as given (effect, se)")
    registry = load_registry()
    if "instrument" in frame.columns and frame["instrument"].isin(registry).all():
        higher = [registry[k].higher_is_better for k in frame["instrument"]]
        direction = "signs from the instrument registry"
    else:
        higher, direction = True, "no instrument column: higher values taken as better"
    table = escalc(frame, measure, higher_is_better=higher)
    text = {"SMD": "standardized mean difference (Hedges' g)", "MD": "raw mean difference"}.get(measure, measure)
    return (table["yi"].to_numpy(float), table["vi"].to_numpy(float), labels,
            f"{text}, IMR minus control; positive favours IMR ({direction})")


def cmd_meta(args) -> int:
    import pandas as pd

    from imrstats.core.io import write_text
    from imrstats.meta.random_effects import rma

    frame = pd.read_csv(args.file)
    yi, vi, labels, description = meta_input(frame, args.outcome, args.measure.upper())
    result = rma(yi, vi, method=args.method, knha=args.knha, slab=labels)
    print(f"Effect size: {description}; k = {result.k}")
    print(result.summary())
    pred = result.predict()
    print(f"Prediction interval for a new study: {pred.extra.get('pi_low'):.4f} to {pred.extra.get('pi_high'):.4f}")
    payload = {"effect_size": description, "result": result.to_dict(), "prediction": pred.to_dict()}
    if args.bayes:
        payload["bayes"] = meta_bayes_summary(yi, vi, labels, _config(args))
    if args.json:
        write_text(json.dumps(payload, indent=2, default=str) + "\n", args.json)
    return 0


def meta_bayes_summary(yi, vi, labels, config: dict) -> dict:
    """`imrstats meta --bayes`: the pipeline's Bayesian model (priors from config meta.bayes), gated."""
    import numpy as np

    from imrstats.meta.bayes import SHIPPED_TAU_PRIORS, Normal, shared_sampler
    from imrstats.meta.bayes_stage import bayes_settings, gated_fit
    from imrstats.data.simulate import derive_seed

    b = bayes_settings(config["meta"]["bayes"])
    prior_mu = Normal(b["prior_mu"]["loc"], b["prior_mu"]["scale"])
    named = SHIPPED_TAU_PRIORS[b["tau_prior"]]
    k = len(yi)
    sampler = shared_sampler(capacity=max(8, 8 * int(np.ceil(k / 8))), target_accept=b["target_accept"],
                             parameterization=b["parameterization"])
    fit = gated_fit(sampler, yi, np.sqrt(vi), list(labels) if labels is not None else None, prior_mu=prior_mu,
                    prior_tau=named.prior, mid=config["meta"]["mid"], seed=derive_seed(int(config["seed"]), "cli.meta"),
                    draws=b["draws"], tune=b["tune"], chains=b["chains"], context="imrstats meta --bayes").result
    print(f"\nBayesian random effects ({fit.method}); prior on tau: {named.key} ({named.citation}); "
          f"prior on mu: Normal({prior_mu.loc:g}, {prior_mu.scale:g})")
    print(f"{'quantity':<22}{'mean':>9}{'sd':>9}  95% interval (for probabilities: sd = Monte Carlo SE)")
    for row in fit.estimates.itertuples():
        interval = f"[{row.ci_low:.4f}, {row.ci_high:.4f}]" if np.isfinite(row.ci_low) else ""
        print(f"{row.quantity:<22}{row.estimate:>9.4f}{row.se:>9.4f}  {interval}")
    d = fit.diagnostics
    print(f"Diagnostics: {d.to_dict()}")
    return fit.to_dict()


def report_stage(result, json_path: str | None) -> int:
    """Print a stage's human summary and flags; write its record as JSON when asked."""
    from imrstats.core.io import write_text
    from imrstats.pipeline.stage_result import to_json

    print(result.summary.rstrip())
    for flag in result.flags:
        print(f"FLAG: {flag}")
    if json_path:
        write_text(to_json({"stage": result.stage, "flags": result.flags, **result.record}), json_path)
    return 0


def cmd_stage(args) -> int:
    """services / implementation: check and clean the input in memory, run the stage, print its summary."""
    from imrstats.pipeline.registry import run_stage_on_inputs

    config = _config(args)
    return report_stage(run_stage_on_inputs(args.command, [args.input], config), args.json)


def cmd_trial(args) -> int:
    """One outcome of the trial stage on a user's tables: ITT MI-MMRM, complete case, sensitivity."""
    from imrstats.data.simulate import derive_seed
    from imrstats.pipeline.registry import clean_inputs
    from imrstats.trial.stage import run_trial_outcome

    config = _config(args)
    result = run_trial_outcome(clean_inputs([args.input], config), args.outcome, config["trial"],
                               seed=derive_seed(int(config["seed"]), "stage.trial"), imputations=args.imputations,
                               df_method=args.df_method)
    return report_stage(result, args.json)


def cmd_audit(args) -> int:
    from imrstats.audit.checks import run_audit_stage

    config = _config(args)
    settings = {**config["audit"], "inputs": list(args.files)}
    if args.alpha is not None:
        settings["alpha"] = args.alpha
    return report_stage(run_audit_stage({}, settings), args.json)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imrstats", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="config YAML (default: the embedded config/config.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("simulate", help="write synthetic participants, assessments, service_use and programme tables")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--seed", type=int, help="master seed (default: config's seed)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("check", help="validate input tables; exit 0 when clean, 2 with a problem list")
    p.add_argument("paths", nargs="+", help="a directory of tables, or table files (participants.csv, ...)")
    p.add_argument("--problems", help="also write the problem list as CSV")
    p.add_argument("--json", help="also write the problem list as JSON")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("clean", help="typed canonical tables and cleaning_log.csv")
    p.add_argument("--in", dest="input", required=True, help="directory holding the input tables")
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=cmd_clean)

    p = sub.add_parser("meta", help="random-effects meta-analysis of a CSV of arm summaries or effects + SEs")
    p.add_argument("file", help="CSV with n/mean/SD per arm (n_imr, mean_imr, sd_imr, n_tau, ...), or yi + vi, "
                   "or effect + se; optional columns study and instrument")
    p.add_argument("--outcome", help="keep the rows whose instrument is this registry key")
    p.add_argument("--method", default="REML", choices=["REML", "DL", "PM", "ML", "EE", "FE"])
    p.add_argument("--measure", default="SMD", help="SMD (default) or MD for arm summaries")
    p.add_argument("--knha", action="store_true", help="Knapp-Hartung adjustment (t-based tests and CIs)")
    p.add_argument("--bayes", action="store_true", help="also the Bayesian pooling (PyMC; priors from config meta.bayes)")
    p.add_argument("--json", help="write the result as JSON")
    p.set_defaults(func=cmd_meta)

    for name, text in (("services", "count models of admissions, bed days, ER visits and outpatient contacts"),
                       ("implementation", "programme registry descriptives (Ferrara-style tables and figures)")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--in", dest="input", required=True, help="directory (or file) holding the input tables")
        p.add_argument("--json", help="write the stage's results as JSON")
        p.set_defaults(func=cmd_stage)

    p = sub.add_parser("trial", help="ITT MMRM with multiple imputation (and complete case) for one outcome")
    p.add_argument("--in", dest="input", required=True, help="directory holding participants and assessments")
    p.add_argument("--outcome", required=True, help="instrument registry key, e.g. gaf_f")
    p.add_argument("--imputations", type=int, help="number of imputations m (default: config, 100)")
    p.add_argument("--df-method", choices=["satterthwaite", "kenward_roger"],
                   help="MMRM SEs and df: Satterthwaite, or Kenward-Roger as SAS DDFM=KR (default: config)")
    p.add_argument("--seed", type=int, help="master seed (default: config's seed)")
    p.add_argument("--json", help="write contrasts, adjusted means, MI diagnostics and methods as JSON")
    p.set_defaults(func=cmd_trial)

    p = sub.add_parser("audit", help="audit printed numbers: ranges, GRIM, GRIMMER, recomputed tests, CI / p consistency")
    p.add_argument("files", nargs="+", help="CSV tables of published numbers (the columns of data/published/published_outcomes.csv)")
    p.add_argument("--alpha", type=float, help="significance level for 'decision-changing' disagreements (default 0.05)")
    p.add_argument("--json", help="write the findings as JSON")
    p.set_defaults(func=cmd_audit)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (InputError, AnalysisError) as exc:
        print(f"imrstats {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
