"""The command line: one command per analysis, for a reviewer with a single file or directory.

Each command prints a human summary; errors in the input are printed as a list (file, row, column,
value, rule) and the command exits with status 2.
"""

from __future__ import annotations

import argparse
import sys

from imrstats.config import load_config, stage_seed, step_seed
from imrstats.errors import AnalysisError, InputError


def _config(args, overrides: dict | None = None) -> dict:
    """The settings: the defaults overlaid with config/config.yaml, the user's ``--config`` file (only the keys
    it changes), ``overrides`` (e.g. the study spec of ``--study``) and ``--seed``; a bad key raises
    SettingsError naming it."""
    overrides = dict(overrides or {})
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
    from imrstats.data.check import console_lines, has_errors
    from imrstats.data.stage import run_check

    if bool(args.paths) == bool(args.study):
        raise InputError("give one input: the input tables (a folder or files), or --study SPEC")
    if args.study:
        from imrstats.core.io import write_csv
        from imrstats.data.check import problems_frame
        from imrstats.data.stage import check_study
        from imrstats.data.study import load_study

        config = _config(args, {"data": {"study": args.study}})
        study = load_study(args.study)
        problems = check_study(study, config)
        if args.problems:
            write_csv(problems_frame(problems), args.problems)
        print(
            f"{args.study}: {len(study.participants)} participants, {len(study.assessments)} assessment rows, "
            f"{len(study.log)} changes made reading the export (missing codes, recodes, rows dropped; in the "
            "cleaning log)"
        )
    else:
        config = _config(args)
        problems = run_check(args.paths, config, args.problems)
    errors = [p for p in problems if p.severity == "error"]
    warnings = [p for p in problems if p.severity == "warning"]
    for line in console_lines(problems, args.problems or args.json):
        print(line)
    print(f"{len(errors)} errors, {len(warnings)} warnings")
    if args.json:
        from imrstats.core.io import write_text
        from imrstats.results import to_json

        write_text(to_json(problems), args.json)
    return 2 if has_errors(problems) else 0


def cmd_clean(args) -> int:
    from pathlib import Path

    from imrstats.core.io import why_not_found
    from imrstats.data.stage import run_clean

    config = _config(args)
    source = Path(args.input)
    if not source.is_dir():
        why = "a file where a folder of input tables is expected" if source.exists() else why_not_found(source)
        raise InputError(f"{source}: {why}")
    written = run_clean([args.input], args.out, config)
    for name, path in written.items():
        print(f"wrote {path}")
    return 0


META_NUMBER_COLUMNS = (
    "yi",
    "vi",
    "effect",
    "se",
    "n_imr",
    "mean_imr",
    "sd_imr",
    "n_tau",
    "mean_tau",
    "sd_tau",
    "events_imr",
    "events_tau",
    "events",
    "n",
)
_COMMA_RULE = "a comma is read as a decimal point only where that is unambiguous (40,5): write 1000, not 1,000"


def shown(value, limit: int = 80) -> str:
    """A value as an error line shows it: at most ``limit`` characters (a hostile cell can be megabytes)."""
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _row_name(frame, i: int) -> str:
    """Row ``i`` (0-based) of the table as a person reads it: row 1 = first data row, and its study label."""
    study = f" (study {shown(repr(frame['study'].iloc[i]))})" if "study" in frame.columns else ""
    return f"row {i + 1}{study}"


def read_meta_table(path) -> tuple:
    """The table `imrstats meta` pools (CSV with , ; or tab, Parquet, SPSS, Stata, Excel: `core.io.read_table`),
    its numeric columns parsed as `imrstats check` parses them (`data.check.parse_column`: a decimal comma 40,5
    is read as 40.5 with a note, an ambiguous 1,000 is refused). Returns (frame, notes). A cell that is not a
    finite number is an InputError naming file, row, column, value and rule."""
    import numpy as np

    from imrstats.core.io import read_table
    from imrstats.data.check import decimal_comma_mask, parse_column

    frame = read_table(path)
    if frame.empty:
        raise InputError(f"{path}: no data rows (only a header)")
    notes = []
    for column in [c for c in frame.columns if c in META_NUMBER_COLUMNS]:
        values = frame[column]
        parsed, bad = parse_column(values, "number")
        bad = bad | (parsed.notna() & ~np.isfinite(parsed.fillna(0.0)))
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(
                f"{path}: {_row_name(frame, i)}, column {column}, value '{shown(values.iloc[i])}': not a finite number"
                + (f" ({_COMMA_RULE})" if "," in str(values.iloc[i]) else "")
            )
        for i in np.flatnonzero(decimal_comma_mask(values).to_numpy()):
            notes.append(
                f"{path}: {_row_name(frame, i)}, column {column}: '{values.iloc[i]}' has a decimal comma, read as "
                f"{parsed.iloc[i]:g}"
            )
        frame[column] = parsed
    return frame, notes


def _meta_rows_valid(frame, columns: list[str], path) -> None:
    """Every study needs its own label (when the table has a study column) and a value in each column pooled;
    a sampling variance or SE must be > 0. Each problem is an InputError naming file, row, column, value, rule."""
    import numpy as np

    if "study" in frame.columns:
        labels = frame["study"].astype("string").str.strip()
        blank = labels.isna() | (labels == "")
        if blank.any():
            i = int(np.flatnonzero(blank.to_numpy())[0])
            raise InputError(f"{path}: row {i + 1}, column study, value '': blank; rule: every study needs a label")
        twice = labels.duplicated(keep=False)
        if twice.any():
            label = labels[twice].iloc[0]
            rows = " and ".join(str(i + 1) for i in np.flatnonzero((labels == label).to_numpy()))
            raise InputError(
                f"{path}: rows {rows}, column study, value {shown(repr(label))}: the same study twice; rule: one "
                "effect per study (pool one outcome at a time with --outcome, or give each comparison its own label)"
            )
    for column in columns:
        values = frame[column]
        missing = values.isna()
        if missing.any():
            i = int(np.flatnonzero(missing.to_numpy())[0])
            raise InputError(
                f"{path}: {_row_name(frame, i)}, column {column}, value '': blank; rule: a value is needed"
            )
        if column in ("vi", "se"):
            bad = values <= 0
            if bad.any():
                i = int(np.flatnonzero(bad.to_numpy())[0])
                raise InputError(
                    f"{path}: {_row_name(frame, i)}, column {column}, value '{values.iloc[i]:g}': rule: a sampling "
                    f"{'variance' if column == 'vi' else 'standard error'} must be > 0"
                )


def meta_input(frame, outcome: str | None, measure: str, path="the table"):
    """Effect sizes for `imrstats meta` from any CSV: arm summaries (n/mean/SD per arm, or events), or a
    reported effect with its SE (columns yi + vi, or effect + se). Returns (yi, vi, labels, description).
    Studies are named by their label in every error; a label given twice is an error."""
    from imrstats.data.instruments import load_registry
    from imrstats.meta.effect_sizes import MEASURE_COLUMNS, escalc

    if outcome is not None:
        if "instrument" not in frame.columns:
            raise InputError(f"{path}: --outcome needs an 'instrument' column in the table")
        frame = frame[frame["instrument"] == outcome]
        if frame.empty:
            raise InputError(f"{path}: no rows with instrument '{outcome}'")
    labels = frame["study"].astype(str).str.strip() if "study" in frame.columns else None
    if {"yi", "vi"} <= set(frame.columns):
        _meta_rows_valid(frame, ["yi", "vi"], path)
        return frame["yi"].to_numpy(float), frame["vi"].to_numpy(float), labels, "effects as given (yi, vi)"
    if {"effect", "se"} <= set(frame.columns) and not {"mean_imr", "events_imr"} & set(frame.columns):
        _meta_rows_valid(frame, ["effect", "se"], path)
        return (
            frame["effect"].to_numpy(float),
            frame["se"].to_numpy(float) ** 2,
            labels,
            "effects as given (effect, se)",
        )
    needed = MEASURE_COLUMNS.get(measure)
    if needed is None:
        raise InputError(f"{path}: unknown --measure {measure!r}; use one of {', '.join(sorted(MEASURE_COLUMNS))}")
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        header = shown(", ".join(map(str, frame.columns)), 200)
        raise InputError(
            f"{path}: none of the column sets imrstats meta reads: yi + vi, effect + se, or for --measure {measure} "
            f"{', '.join(needed)} (missing: {', '.join(missing)}); the header has {header}"
        )
    _meta_rows_valid(frame, needed, path)
    registry = load_registry()
    if "instrument" in frame.columns and frame["instrument"].isin(registry).all():
        higher = [registry[k].higher_is_better for k in frame["instrument"]]
        direction = "signs from the instrument registry"
    else:
        higher, direction = True, "no instrument column: higher values taken as better"
    table = escalc(frame, measure, higher_is_better=higher)
    text = {"SMD": "standardized mean difference (Hedges' g)", "MD": "raw mean difference"}.get(measure, measure)
    return (
        table["yi"].to_numpy(float),
        table["vi"].to_numpy(float),
        labels,
        f"{text}, IMR minus control; positive favours IMR ({direction})",
    )


def cmd_meta(args) -> int:
    from imrstats.core.io import write_text
    from imrstats.meta.random_effects import rma
    from imrstats.results import to_json

    config = _config(args)
    check_prior_option(args)
    frame, notes = read_meta_table(args.file)
    yi, vi, labels, description = meta_input(frame, args.outcome, args.measure.upper(), args.file)
    method = args.method if args.method is not None else config["meta"]["method"]
    result = rma(yi, vi, method=method, knha=args.knha, slab=labels)
    pred = result.predict()
    for note in notes:
        print(f"NOTE: {note}")
    print(f"Effect size: {description}; k = {result.k}")
    print(result.summary())
    print(f"Prediction interval for a new study: {pred.extra.get('pi_low'):.4f} to {pred.extra.get('pi_high'):.4f}")
    payload = {"effect_size": description, "notes": notes, "result": result.to_dict(), "prediction": pred.to_dict()}
    if args.bayes:
        payload["bayes"] = meta_bayes_summary(yi, vi, labels, config, prior_key=args.prior)
    if args.json:
        write_text(to_json(payload), args.json)
    return 0


def check_prior_option(args) -> None:
    """``--prior NAME`` (before any work): a shipped tau prior key, and only with ``--bayes``; else one
    SettingsError naming the option (and listing the valid keys)."""
    from imrstats.errors import SettingsError
    from imrstats.meta.bayes import SHIPPED_TAU_PRIORS

    if args.prior is None:
        return
    if not args.bayes:
        raise SettingsError([("--prior", "chooses the tau prior of the Bayesian pooling: give --bayes with it")])
    if args.prior not in SHIPPED_TAU_PRIORS:
        raise SettingsError(
            [("--prior", f"unknown tau prior {args.prior!r}; use one of {', '.join(SHIPPED_TAU_PRIORS)}")]
        )


def meta_bayes_summary(yi, vi, labels, config: dict, prior_key: str | None = None) -> dict:
    """`imrstats meta --bayes [--prior NAME]`: the pipeline's Bayesian model with the engine of config
    meta.bayes.engine (exact quadrature by default, or NUTS, gated), the tau prior NAME (a shipped key; default
    config meta.bayes.tau_prior) and mu's prior from config meta.bayes.prior_mu. Prints the summaries, names the
    engine, and (exact) the marginal likelihood and Bayes factors; returns the record for --json."""
    import numpy as np

    from imrstats.meta.bayes import SHIPPED_TAU_PRIORS, Normal
    from imrstats.meta.bayes_stage import (
        BF_DEFINITION,
        ExactResult,
        bayes_factor_row,
        engine_name,
        gated_fit,
        stage_sampler,
    )

    b = config["meta"]["bayes"]  # checked with the config
    key = b["tau_prior"] if prior_key is None else prior_key
    if key not in SHIPPED_TAU_PRIORS:
        raise InputError(f"--prior {key}: unknown tau prior; use one of {', '.join(SHIPPED_TAU_PRIORS)}")
    prior_mu = Normal(b["prior_mu"]["loc"], b["prior_mu"]["scale"])
    named = SHIPPED_TAU_PRIORS[key]
    sei = np.sqrt(np.asarray(vi, dtype=float))
    fit = gated_fit(
        stage_sampler(b, len(yi)),
        yi,
        sei,
        list(labels) if labels is not None else None,
        prior_mu=prior_mu,
        prior_tau=named.prior,
        mid=config["meta"]["mid"],
        seed=step_seed("cli.meta", config),
        draws=b["draws"],
        tune=b["tune"],
        chains=b["chains"],
        context="imrstats meta --bayes",
    ).result
    engine = engine_name(b)
    print(
        f"\nBayesian random effects [engine: {engine}]; prior on tau: {named.key}, {named.prior.label()} "
        f"({named.citation}); prior on mu: {prior_mu.label()}"
    )
    if isinstance(fit, ExactResult):
        print(fit.exact.summary())
        factors = bayes_factor_row(fit)
        return {
            "engine": engine,
            "prior": named.key,
            "prior_tau": named.prior.label(),
            "prior_mu": prior_mu.label(),
            "k": fit.k,
            "method": fit.method,
            "estimates": fit.estimates.to_dict("records"),
            "study_effects": fit.study_effects.to_dict("records"),
            "bayes_factors": {**factors, "definition": BF_DEFINITION},
            "notes": list(fit.exact.notes),
        }
    print(f"{'quantity':<22}{'mean':>9}{'sd':>9}  95% interval (for probabilities: sd = Monte Carlo SE)")
    for row in fit.estimates.itertuples():
        interval = f"[{row.ci_low:.4f}, {row.ci_high:.4f}]" if np.isfinite(row.ci_low) else ""
        print(f"{row.quantity:<22}{row.estimate:>9.4f}{row.se:>9.4f}  {interval}")
    d = fit.diagnostics
    print(f"Diagnostics: {d.to_dict()}")
    return {"engine": engine, "prior": named.key, **fit.to_dict()}


def report_stage(result, json_path: str | None) -> int:
    """Print a stage's human summary and flags; write its record as JSON when asked."""
    from imrstats.core.io import write_text
    from imrstats.results import to_json

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
    """The trial stage on a user's data: canonical tables (``--in``, one outcome) or a study spec (``--study``:
    every outcome of the study, or ``--outcome``): ITT MI-MMRM, likelihood MMRM, complete case, sensitivity."""
    from imrstats.trial.stage import run_trial_outcome, run_trial_stage

    if (args.input is None) == (args.study is None):
        raise InputError("give the data as --in FOLDER (canonical tables, with --outcome) or --study SPEC")
    if args.study is None:
        if args.outcome is None:
            raise InputError("--outcome is required with --in (an instrument registry key, e.g. gaf_f)")
        from imrstats.pipeline.registry import clean_inputs

        config = _config(args)
        tables = clean_inputs([args.input], config)
    else:
        from imrstats.data.check import has_errors
        from imrstats.data.stage import check_study, clean_study
        from imrstats.data.study import load_study

        config = _config(args, {"data": {"study": args.study}})
        study = load_study(args.study)
        problems = check_study(study, config)
        if has_errors(problems):
            errors = [str(p) for p in problems if p.severity == "error"]
            raise InputError(f"{len(errors)} error(s) in the study's data, first: {errors[0]} (run imrstats check)")
        tables = clean_study(study, config, problems=problems).tables
    if args.outcome is None:
        s = dict(config["trial"])
        if args.imputations is not None:
            s["imputations"] = int(args.imputations)
        if args.df_method is not None:
            s["df_method"] = args.df_method
        result = run_trial_stage(tables, s, seed=stage_seed("trial", config))
    else:
        result = run_trial_outcome(
            tables,
            args.outcome,
            config["trial"],
            seed=stage_seed("trial", config),
            imputations=args.imputations,
            df_method=args.df_method,
        )
    return report_stage(result, args.json)


def cmd_audit(args) -> int:
    from imrstats.audit.stage import run_audit_stage

    config = _config(args)
    settings = {**config["audit"], "inputs": list(args.files)}
    if args.alpha is not None:
        settings["alpha"] = args.alpha
    return report_stage(run_audit_stage({}, settings, seed=stage_seed("audit", config)), args.json)


def cmd_init(args) -> int:
    """Draft a study spec from a user's export; say how many guesses to confirm, and whether the draft loads."""
    from imrstats.data.spec_draft import write_draft
    from imrstats.data.study import load_study

    target, draft = write_draft(args.file, args.out, force=args.force)
    print(f"wrote {target}: {draft.guesses} guesses to confirm (the lines marked '# guess:')")
    try:
        study = load_study(target)
    except InputError as exc:
        print(f"the draft does not load yet; edit it: {one_line(str(exc))}")
        return 0
    design = study.design
    print(
        f"the draft loads: {len(study.participants)} participants "
        f"({design.arm_label(design.intervention)} vs {design.arm_label(design.control)}), "
        f"{len(study.assessments)} assessment rows, visits {', '.join(design.all_visits)}, "
        f"outcomes {', '.join(study.outcomes)}; {len(study.log)} changes logged"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imrstats", description=__doc__.splitlines()[0])
    config_help = (
        "your config YAML: only the keys you change, overlaid on the defaults and config/config.yaml "
        "(see config/README.md)"
    )
    parser.add_argument("--config", default=None, help=config_help)
    debug_help = "on an unexpected error, show Python's traceback (by default one line)"
    parser.add_argument("--debug", action="store_true", help=debug_help)
    settings_file = argparse.ArgumentParser(add_help=False)  # --config also after the command name
    settings_file.add_argument("--config", default=argparse.SUPPRESS, help=config_help)
    settings_file.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "simulate",
        parents=[settings_file],
        help="write synthetic participants, assessments, service_use and programme tables",
    )
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--seed", type=int, help="master seed (default: config's seed)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser(
        "check", parents=[settings_file], help="validate input tables; exit 0 when clean, 2 with a problem list"
    )
    p.add_argument("paths", nargs="*", help="a directory of tables, or table files (participants.csv, ...)")
    p.add_argument("--study", help="a study spec (docs/study_spec.md): check your export read through it")
    p.add_argument(
        "--problems",
        help="also write every problem as CSV (the console lists up to 25 rows per rule and says how many more)",
    )
    p.add_argument("--json", help="also write every problem as JSON")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser(
        "init", parents=[settings_file], help="draft a study spec (YAML) that maps your own export to the analysis"
    )
    p.add_argument("file", metavar="DATAFILE", help="your export: .sav, .dta, .csv, .xlsx or .parquet")
    p.add_argument("--out", help="the spec to write (default: study.yaml beside the data file)")
    p.add_argument("--force", action="store_true", help="overwrite an existing spec")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("clean", parents=[settings_file], help="typed canonical tables and cleaning_log.csv")
    p.add_argument("--in", dest="input", required=True, help="directory holding the input tables")
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=cmd_clean)

    p = sub.add_parser(
        "meta", parents=[settings_file], help="random-effects meta-analysis of a CSV of arm summaries or effects + SEs"
    )
    p.add_argument(
        "file",
        help="CSV with n/mean/SD per arm (n_imr, mean_imr, sd_imr, n_tau, ...), or yi + vi, "
        "or effect + se; optional columns study and instrument",
    )
    p.add_argument("--outcome", help="keep the rows whose instrument is this registry key")
    p.add_argument(
        "--method",
        choices=["REML", "DL", "PM", "ML", "EE", "FE"],
        help="tau^2 estimator (default: config meta.method, REML)",
    )
    p.add_argument("--measure", default="SMD", help="SMD (default) or MD for arm summaries")
    p.add_argument("--knha", action="store_true", help="Knapp-Hartung adjustment (t-based tests and CIs)")
    p.add_argument(
        "--bayes",
        action="store_true",
        help="also the Bayesian pooling (engine: config meta.bayes.engine, exact quadrature by default; "
        "priors from config meta.bayes)",
    )
    p.add_argument(
        "--prior",
        metavar="NAME",
        help="with --bayes: the tau prior, a shipped key (e.g. half_normal_0.5, rhodes_mental_health_nonpharm; "
        "default: config meta.bayes.tau_prior)",
    )
    p.add_argument("--json", help="write the result as JSON")
    p.set_defaults(func=cmd_meta)

    for name, text in (
        ("services", "count models of admissions, bed days, ER visits and outpatient contacts"),
        ("implementation", "programme registry descriptives (Ferrara-style tables and figures)"),
    ):
        p = sub.add_parser(name, parents=[settings_file], help=text)
        p.add_argument("--in", dest="input", required=True, help="directory (or file) holding the input tables")
        p.add_argument("--json", help="write the stage's results as JSON")
        p.set_defaults(func=cmd_stage)

    p = sub.add_parser(
        "trial",
        parents=[settings_file],
        help="the trial's ITT MMRM with multiple imputation, complete case and sensitivity analyses",
    )
    p.add_argument("--in", dest="input", help="directory holding participants and assessments (canonical tables)")
    p.add_argument(
        "--study",
        help="a study spec mapping your own export (docs/study_spec.md; draft one with `imrstats init`): its design, "
        "outcomes and covariates set the analysis",
    )
    p.add_argument(
        "--outcome",
        help="instrument key, e.g. gaf_f (required with --in; with --study the default is every outcome of the study)",
    )
    p.add_argument("--imputations", type=int, help="number of imputations m (default: config, 100)")
    p.add_argument(
        "--df-method",
        choices=["satterthwaite", "kenward_roger"],
        help="MMRM SEs and df: Satterthwaite, or Kenward-Roger as SAS DDFM=KR (default: config)",
    )
    p.add_argument("--seed", type=int, help="master seed (default: config's seed)")
    p.add_argument("--json", help="write contrasts, adjusted means, MI diagnostics and methods as JSON")
    p.set_defaults(func=cmd_trial)

    p = sub.add_parser(
        "audit",
        parents=[settings_file],
        help="audit printed numbers: ranges, GRIM, GRIMMER, recomputed tests, CI / p consistency",
    )
    p.add_argument(
        "files",
        nargs="+",
        help="CSV tables of published numbers (the columns of data/published/published_outcomes.csv)",
    )
    p.add_argument(
        "--alpha",
        type=float,
        help="significance level for 'decision-changing' disagreements (default: config audit.alpha)",
    )
    p.add_argument("--json", help="write the findings as JSON")
    p.set_defaults(func=cmd_audit)
    return parser


def _inputs(args) -> list[str]:
    """The files and folders a command reads (its inputs, then the user's config file)."""
    found = []
    for name in ("file", "files", "input", "paths"):
        value = getattr(args, name, None)
        found += [str(v) for v in value] if isinstance(value, list) else [str(value)] if value else []
    return found + ([str(args.config)] if getattr(args, "config", None) else [])


def _subject(args) -> str:
    """The file an error line names when its message names none: the command's input (or output folder)."""
    named = [v for v in _inputs(args) if v != str(getattr(args, "config", None))]
    if not named and getattr(args, "out", None):
        named = [str(args.out)]
    return ", ".join(named) if named else "(no input file)"


def error_line(args, exc: BaseException) -> str:
    """``imrstats <command>: <file>: <cause>`` on one line: the message's own file when it names one (a config
    error names its config file), else the command's input; a settings error from an option names the option."""
    from imrstats.errors import SettingsError

    text = one_line(str(exc)) or type(exc).__name__
    candidates = [*_inputs(args), str(getattr(args, "json", None) or ""), str(getattr(args, "out", None) or "")]
    if isinstance(exc, SettingsError) and exc.source is None:
        return f"imrstats {args.command}: command line: {text}"
    if isinstance(exc, SettingsError) or any(c and text.startswith(c) for c in candidates):
        return f"imrstats {args.command}: {text}"
    return f"imrstats {args.command}: {_subject(args)}: {text}"


def one_line(text: str) -> str:
    """A message of several lines (a list of problems) as one line: lines joined by '; ' (by ' ' after a ':')."""
    out = ""
    for line in (part.strip() for part in text.splitlines()):
        if line:
            out += ("" if not out else " " if out.endswith(":") else "; ") + line
    return out


def check_output_path(path: str, args, option: str = "--json") -> None:
    """Before any work: the ``--json`` (or ``--problems``) file must go into an existing, writable folder, must
    not be a folder, and must not be one of the command's inputs, nor a table file of an input folder (inputs
    are never modified). InputError names the path and why."""
    import os
    from pathlib import Path

    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise InputError(f"{target}: {option} names a folder; give the path of a file to write")
    if not folder.exists():
        raise InputError(f"{target}: {option}: the folder {folder} does not exist (create it first)")
    if not folder.is_dir():
        raise InputError(f"{target}: {option}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"{target}: {option}: cannot write in {folder} (permission denied)")
    if target.exists():
        for source in _input_files(args):
            if os.path.samefile(source, target):
                raise InputError(f"{target}: {option} would overwrite an input of this command; write elsewhere")


def _input_files(args) -> list[str]:
    """The files a command reads: the files it is given, the table files of the folders it is given, and the
    user's config file (the existing ones)."""
    from pathlib import Path

    from imrstats.core.io import TABLES, find_table_file

    files = []
    for source in map(Path, _inputs(args)):
        if source.is_file():
            files.append(str(source))
        elif source.is_dir():
            for table in TABLES:
                try:
                    found = find_table_file(source, table)
                except InputError:  # the command itself says so
                    continue
                files += [str(found)] if found is not None else []
    return files


def check_output_folder(path: str, args, option: str = "--out") -> None:
    """Before any work: an output folder (``clean --out``) must not be, nor lie inside, an input folder of the
    command (its outputs would mix with, or overwrite, the inputs). InputError names the path and why."""
    from pathlib import Path

    try:
        target = Path(path).resolve()
    except (OSError, RuntimeError):
        raise InputError(f"{path}: {option}: a symbolic link loop (the link points back to itself)") from None
    for source in map(Path, _inputs(args)):
        if not source.is_dir():
            continue
        folder = source.resolve()
        if target == folder or folder in target.parents:
            where = "is the input folder" if target == folder else f"lies inside the input folder {source}"
            raise InputError(f"{path}: {option} {where}: outputs would mix with the inputs; write elsewhere")


def main(argv: list[str] | None = None) -> int:
    """Run one command. Bad input (InputError, SettingsError, AnalysisError, a file the system refuses) is one
    line ``imrstats <command>: <file>: <cause>`` on stderr and exit code 2; anything unexpected is one line with
    a hint to rerun with --debug (which shows the traceback) and exit code 1. Never a raw traceback by default."""
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    try:
        for option in ("json", "problems"):
            if getattr(args, option, None):
                check_output_path(getattr(args, option), args, f"--{option}")
        if args.command == "clean":
            check_output_folder(args.out, args)
        return args.func(args)
    except (InputError, AnalysisError) as exc:
        if debug:
            raise
        print(error_line(args, exc), file=sys.stderr)
        return 2
    except OSError as exc:  # a file the system refuses (permission, disk full, read-only): name it
        if debug:
            raise
        where = exc.filename or _subject(args)
        print(f"imrstats {args.command}: {where}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - the one place every unexpected error becomes one line
        if debug:
            raise
        cause = one_line(str(exc))
        print(
            f"imrstats {args.command}: {_subject(args)}: unexpected error: {type(exc).__name__}"
            f"{': ' + cause if cause else ''} (rerun with --debug to see the traceback, and report it)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
