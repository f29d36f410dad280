"""The command line: one command per analysis, for a reviewer with a single file or directory.

Each command prints a human summary; errors in the input are printed as a list (file, row, column,
value, rule) and the command exits with status 2.
"""

from __future__ import annotations

import os

# imrstats computes with many small matrices: a BLAS thread per core only costs (OpenBLAS's threads spin while
# they wait, and under load they fight for the cores). One thread, unless you export another number; set
# before numpy is imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from imrstats.config import load_config, stage_seed, step_seed  # noqa: E402
from imrstats.errors import AnalysisError, InputError  # noqa: E402


def _config(args, overrides: dict | None = None) -> dict:
    """The settings: the defaults overlaid with config/config.yaml, the user's ``--config`` file (only the keys
    it changes), ``overrides`` (e.g. the study spec of ``--study``) and ``--seed``; a bad key raises
    SettingsError naming it."""
    overrides = dict(overrides or {})
    if getattr(args, "seed", None) is not None:
        overrides["seed"] = args.seed
    return load_config(args.config, overrides)


def cmd_simulate(args) -> int:
    from imrstats.core.tables import TABLES
    from imrstats.data.stage import write_synthetic_inputs

    config = _config(args)
    existing = sorted(Path(args.out) / f"{name}.csv" for name in TABLES if (Path(args.out) / f"{name}.csv").exists())
    if existing and not args.force:
        raise InputError(
            f"{existing[0]}: already exists ({len(existing)} of the tables to write are there); "
            "simulate does not overwrite files: give another --out, or --force to replace them"
        )
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


def read_meta_table(path):
    """The table `imrstats meta` pools (CSV with , ; or tab, Parquet, SPSS, Stata, Excel: `core.io.read_table`),
    as read; its number columns are parsed by `imrstats.meta.inputs.read_effects` as `imrstats check` parses
    them (a decimal comma 40,5 is read as 40.5 with a note, an ambiguous 1,000 is refused)."""
    from imrstats.core.io import read_table

    frame = read_table(path)
    if frame.empty:
        raise InputError(f"{path}: no data rows (only a header)")
    return frame


def cmd_meta(args) -> int:
    """`imrstats meta FILE`: read any reviewer's table (`imrstats.meta.inputs.read_effects`: arm summaries, 2x2
    counts, reported effects, curated rows), pool it with everything the meta stage reports for an outcome
    (`imrstats.meta.own_evidence`), print it, and write --json and --plot when asked."""
    from imrstats.core.io import write_text
    from imrstats.meta.inputs import parse_arms, read_effects
    from imrstats.meta.own_evidence import (
        influence_parts,
        meta_regression,
        parse_steps,
        plot_figures,
        pool_effects,
        pool_multilevel,
        record,
        selection_analysis,
        subgroup_analysis,
        summary_text,
        write_plots,
    )
    from imrstats.results import to_json

    config = _config(args)
    check_prior_option(args)
    check_meta_options(args)
    steps = parse_steps(args.steps) if args.selection else None
    if args.plot:
        check_plot_folder(args.plot, args)
    frame = read_meta_table(args.file)
    s = config["meta"]
    inputs = read_effects(
        frame,
        measure=args.measure,
        arms=parse_arms(args.arms, frame.columns),
        outcome=args.outcome,
        settings=s,
        skip_bad_rows=args.skip_bad_rows,
        path=args.file,
        several_per_study=args.cluster is not None,
    )
    method = args.method if args.method is not None else s["method"]
    knha = s["knha"] if args.knha is None else args.knha
    knha_source = "config meta.knha" if args.knha is None else ("--knha" if args.knha else "--no-knha")
    settings = {"method": method, "knha": knha, "knha_source": knha_source, "level": s["level"]}
    if args.cluster is not None:
        part = pool_multilevel(
            inputs, frame, args.cluster, method=method, level=s["level"], mods=args.mods, path=args.file
        )
        pooled = {"multilevel": part, "flags": part["flags"]}
        settings.update(knha=False, inference="CR2 cluster-robust by study, Satterthwaite df (--cluster)")
    else:
        pooled = pool_effects(inputs, method=method, knha=knha, level=s["level"])
        if args.influence:
            influence_parts(pooled)
        if args.mods is not None:
            seed = step_seed("cli.meta.permutest", config) if args.permutations is not None else None
            pooled["meta_regression"] = meta_regression(
                inputs,
                frame,
                args.mods,
                method=method,
                knha=knha,
                level=s["level"],
                permutations=args.permutations,
                seed=seed,
                path=args.file,
            )
            if seed is not None:
                settings.update(permutations=args.permutations, permutation_seed=seed)
                settings["permutation_seed_source"] = "derived from config seed (step cli.meta.permutest)"
        if args.subgroup is not None:
            pooled["subgroups"] = subgroup_analysis(
                inputs, frame, args.subgroup, method=method, knha=knha, level=s["level"], path=args.file
            )
        if args.selection:
            pooled["selection"] = selection_analysis(pooled["fit"], steps=steps, alternative=args.selection_alternative)
    for note in inputs.notes:
        print(f"NOTE: {note}")
    print(summary_text(inputs, pooled, path=args.file, knha_source=knha_source))
    payload = record(inputs, pooled, path=args.file, settings=settings)
    if args.plot:
        title = args.outcome or Path(args.file).stem
        written = write_plots(plot_figures(inputs, pooled, title=title), args.plot, stem=slug(args.outcome or ""))
        payload["plots"] = {name: str(path) for name, path in written.items()}
        for path in written.values():
            print(f"wrote {path}")
    if args.bayes:
        payload["bayes"] = meta_bayes_summary(inputs.yi, inputs.vi, inputs.labels, config, prior_key=args.prior)
    if args.json:
        write_text(to_json(payload), args.json)
    return 0


META_CLUSTER_CONFLICTS = (
    ("outcome", "--outcome", "it picks one row per study; --cluster pools every row"),
    ("influence", "--influence", "it assumes one effect per study"),
    ("subgroup", "--subgroup", "it assumes one effect per study"),
    ("selection", "--selection", "it assumes one effect per study"),
    ("permutations", "--permutations", "the permutation test assumes one effect per study"),
    ("bayes", "--bayes", "the Bayesian model assumes one effect per study"),
)


def check_meta_options(args) -> None:
    """Before any work: the options of ``imrstats meta`` that need another (``--permutations`` needs ``--mods``;
    ``--steps`` and ``--selection-alternative`` need ``--selection``) or exclude one (``--cluster`` with the parts
    that assume one effect per study); else one SettingsError naming the option."""
    from imrstats.errors import SettingsError

    if args.permutations is not None and args.mods is None:
        raise SettingsError([("--permutations", "permutes the moderators of a meta-regression: give --mods with it")])
    if args.permutations is not None and args.permutations < 2:
        raise SettingsError([("--permutations", f"must be an integer >= 2, got {args.permutations}")])
    for option, name in (("steps", "--steps"), ("selection_alternative", "--selection-alternative")):
        if getattr(args, option) is not None and not args.selection:
            raise SettingsError([(name, "sets the step-function selection model: give --selection with it")])
    if args.cluster is not None:
        for option, name, why in META_CLUSTER_CONFLICTS:
            if getattr(args, option):
                raise SettingsError([("--cluster", f"cannot be combined with {name}: {why}")])


def slug(text: str) -> str:
    """A label as a file-name part (letters, digits, _ . -)."""
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_")


def check_plot_folder(path: str, args) -> None:
    """Before any work: ``--plot DIR`` must be a folder (or not exist yet: it is created), writable, and not an
    input folder of the command. InputError names the path and why."""
    import os

    target = Path(path)
    if target.exists() and not target.is_dir():
        raise InputError(f"{target}: --plot names a file; give a folder for the plots")
    existing = next((p for p in (target, *target.parents) if p.exists()), Path("."))
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{target}: --plot: cannot write in {existing} (permission denied)")
    check_output_folder(path, args, "--plot")


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
    every outcome of the study, or ``--outcome``): ITT MI-MMRM, likelihood MMRM, complete case, sensitivity, the
    estimands of trial.sensitivity_estimands; ``--estimand NAME``: that estimand alone (on the primary outcome, or
    ``--outcome``)."""
    from imrstats.trial.stage import estimand_delta_template, run_trial_estimand, run_trial_outcome, run_trial_stage

    if (args.input is None) == (args.study is None):
        raise InputError("give the data as --in FOLDER (canonical tables, with --outcome) or --study SPEC")
    if args.delta_template is not None:
        if args.estimand is None:
            raise InputError("--delta-template needs --estimand NAME (the ICEs and strategies of that estimand)")
        check_output_path(args.delta_template, args, "--delta-template")
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
    if args.delta_template is not None:
        from imrstats.trial.reference_mi import write_delta_template

        template = estimand_delta_template(tables, args.estimand, config["trial"], outcome=args.outcome)
        write_delta_template(template, args.delta_template)
        print(
            f"wrote {args.delta_template}: the delta table of estimand {args.estimand} ({len(template)} rows, one per "
            "participant and visit; delta 0): fill in the deltas of the missing values and name the file in "
            f"trial.estimands.{args.estimand}.delta_file"
        )
        return 0
    if args.estimand is not None:
        result = run_trial_estimand(
            tables, args.estimand, config["trial"], outcome=args.outcome, seed=stage_seed("trial", config)
        )
    elif args.outcome is None:
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


META_DESCRIPTION = """\
Random-effects meta-analysis of your own table, one row per study (or per study x outcome with --outcome).
Input shapes (a row may use any; column names generic, or the IMR names of data/published/):
  arm summaries      n1, m1, sd1, n2, m2, sd2 (or n_imr, mean_imr, sd_imr, n_tau, mean_tau, sd_tau):
                     Hedges' g (--measure SMD, the default) or the mean difference (--measure MD)
  2x2 counts         ai, bi, ci, di (events / non-events per group), or events / n per group e1, n1, e2, n2
                     (events_imr, n_imr, events_tau, n_tau): --measure RR, OR or RD (1/2 added to the cells
                     of a study with a zero cell, as metafor)
  effect + variance  yi, vi (on the pooled scale), taken as given
  reported effect    effect, se; or effect, ci_low, ci_high (+ ci_level, 0.95 when absent: SE = CI width /
                     2 z); with --measure RR or OR the effect and CI are ratios as printed (pooled as logs)
  curated rows       a conversion column per row (smd_from_arms, md_from_arm_means_se, log_or_from_ci,
                     d_from_p_two_sided, d_total_n_equal_split, d_from_eta_squared, none: d + N, p + n,
                     OR + CI, eta^2), converted exactly as the pipeline's meta stage converts them
Optional columns: study (labels), year (labels; cumulative order), sign (+1 / -1, or sign_favouring_imr: -1
reverses a row so that positive favours group 1), instrument / outcome (--outcome; a registry instrument
signs effects computed from arm summaries or counts), use, timepoint, analysis (the pipeline's row choice).
Printed (and in --json): each row's conversion and assumption, and every row left aside with its reason; the
pooled effect with CI and p, the prediction interval, tau^2, tau, I^2, H^2 with Q-profile CIs, the Q test,
leave-one-out, the cumulative meta-analysis (by year, else file order) and Egger's test (k >= 3; low power
below 10), Begg and Mazumdar's rank test and trim-and-fill (k >= 3). Optional: --influence, --mods (with
--permutations), --subgroup, --selection (with --steps), and --cluster for several rows per study. A row that
cannot be used stops the run, named (row, column, value, rule), unless --skip-bad-rows.
"""


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
    p.add_argument("--force", action="store_true", help="replace tables already in --out (default: refuse)")
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
        "meta",
        parents=[settings_file],
        help="random-effects meta-analysis of your own table: arm summaries, 2x2 counts or reported effects",
        description=META_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "file",
        help="your table (CSV with , ; or tab, Parquet, .sav, .dta, .xlsx), one row per study (see the shapes above)",
    )
    p.add_argument(
        "--outcome",
        metavar="KEY",
        help="pool one outcome: a config meta.outcomes label (its instruments) or a value of the table's instrument "
        "or outcome column; one row per study, chosen as the pipeline's meta stage chooses (config meta.uses, "
        "timepoints, analyses); every row left aside is printed with its reason",
    )
    p.add_argument(
        "--method",
        choices=["REML", "DL", "PM", "ML", "EE", "FE"],
        help="tau^2 estimator (default: config meta.method, REML)",
    )
    p.add_argument(
        "--measure",
        type=str.upper,
        choices=["SMD", "MD", "RR", "OR", "RD"],
        help="what arm summaries (SMD, the default; MD) or 2x2 counts (RR, OR, RD: required for counts) give",
    )
    p.add_argument(
        "--arms",
        metavar="LABEL1,LABEL2",
        help="the two groups' labels for the printout, e.g. 'Intervention,Control' (default: group 1, group 2; "
        "IMR, TAU when the table uses the IMR column names)",
    )
    p.add_argument(
        "--knha",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Knapp-Hartung t(k-1) tests and CIs (--no-knha: Wald z); default: config meta.knha (on in the shipped "
        "config, as in the pipeline's meta stage)",
    )
    p.add_argument(
        "--skip-bad-rows",
        action="store_true",
        help="pool the usable rows when some cannot be used (default: stop and name them); each row left out is "
        "printed and in --json",
    )
    p.add_argument(
        "--plot",
        metavar="DIR",
        help="write forest.png (study CIs, weights, pooled diamond, prediction interval) and funnel.png (k >= 3: "
        "contour-enhanced, with the trim-and-fill studies; k = 2: plain), and the plots of the options, into DIR "
        "(created when missing; forest_KEY.png etc. with --outcome KEY)",
    )
    p.add_argument(
        "--influence",
        action="store_true",
        help="influence diagnostics (metafor influence.rma.uni: rstudent, DFFITS, Cook's distance, cov.r, tau^2 and "
        "QE without the study, hat, weight, DFBETAS, the influential flag) and baujat.png with --plot",
    )
    p.add_argument(
        "--mods",
        metavar="FORMULA",
        help="meta-regression on columns of the table, e.g. 'ablat + year' or 'alloc' (numbers: continuous; labels "
        "or factor(x): categorical); coefficients, QM, residual heterogeneity, pseudo-R^2, Knapp-Hartung as the run's "
        "--knha; bubble.png with --plot when one moderator is continuous",
    )
    p.add_argument(
        "--permutations",
        metavar="N",
        type=int,
        help="with --mods: the permutation test of the moderators with N permutations (exact when there are no "
        "more distinct ones), seeded from config seed",
    )
    p.add_argument(
        "--subgroup",
        metavar="COLUMN",
        help="pool each subgroup of COLUMN on its own; test for subgroup differences both ways (mixed-effects "
        "QM, common tau^2; RevMan's Q-between); forest_subgroups.png with --plot",
    )
    p.add_argument(
        "--cluster",
        metavar="COLUMN",
        help="several rows per study: COLUMN names each row's study; the three-level model (effects within "
        "studies) with CR2 cluster-robust SEs and Satterthwaite df (with --mods: a multilevel meta-regression); "
        "without it, a study on several rows is an error",
    )
    p.add_argument(
        "--selection",
        action="store_true",
        help="step-function selection model (Vevea and Hedges 1995) with its likelihood ratio test, and the Vevea "
        "and Woods (2005) sensitivity table; exploratory below 10 studies",
    )
    p.add_argument(
        "--steps",
        metavar="P1,P2,...",
        help="with --selection: one-sided p-value cut points (default 0.025,1; e.g. 0.025,0.1,1)",
    )
    p.add_argument(
        "--selection-alternative",
        choices=["greater", "less", "two.sided"],
        help="with --selection: the side of the p-values (default: the side of the pooled estimate)",
    )
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
    p.add_argument("--json", help="write everything printed (and each row's conversion) as JSON")
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
        "--estimand",
        help="run this estimand of trial.estimands alone (e.g. treatment_policy_jr): its ICH E9(R1) attributes, the "
        "intercurrent events per arm and strategy, and per visit the contrast and each arm's LS mean",
    )
    p.add_argument(
        "--delta-template",
        metavar="PATH",
        help="with --estimand: write the estimand's delta table (one row per participant and visit, delta 0) as CSV "
        "to fill in and name in trial.estimands.NAME.delta_file; nothing is analysed",
    )
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
