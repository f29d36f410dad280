"""Timing (not a test): the whole Bayesian work of the default config through the stage code, exact engine.

What is timed, in one process after a warm-up fit (imports and first-call costs excluded):

  a. meta: `bayes_stage.bayes_pooling` on the default config's pooling inputs: every outcome x tau prior, the
     cumulative steps, the implementation proportions (fits and tables; the figures timed apart);
  b. the main posteriors' exact draws and their netCDF files (`write_posteriors`);
  c. evidence: `run_evidence_stage` with the meta outputs of (a, b), so the published-only fits are reused and only
     the fits with the trial added are made (plus the draws read back and the percentiles).

"Bayesian compute" = the time spent inside `bayes_exact.fit_exact` and `bayes_exact.draw` over a-c (counted by
wrapping both), reported next to each part's wall time. The trial's results: `--trial-dir` (a trial stage's output
folder, e.g. results/trial), else the synthetic trial summary of tests/evidence/test_evidence.py.

    .venv/bin/python benchmarks/time_bayes_stage.py [--trial-dir results/trial] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trial-dir", help="a trial stage's output folder (default: a synthetic trial summary)")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the fastest is reported (default 3)")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from imrstats.config import load_config, stage_seed
    from imrstats.data.published import load_published_outcomes
    from imrstats.evidence.stage import read_trial_results, run_evidence_stage
    from imrstats.meta import bayes_exact
    from imrstats.meta.bayes import SHIPPED_TAU_PRIORS, Normal
    from imrstats.meta.bayes_stage import bayes_pooling, run_meta_stage_with_bayes, write_posteriors
    from imrstats.meta.stage import outcome_inputs
    from imrstats.pipeline.stage_result import write_stage

    config = load_config(None, {})
    meta, seed = config["meta"], stage_seed("meta", config)
    if args.trial_dir:
        trial = read_trial_results(args.trial_dir)
    else:
        sys.path.insert(0, str(ROOT / "tests"))
        from evidence.test_evidence import fake_trial

        trial = fake_trial()

    spent = {"fit_exact": [0.0, 0], "draw": [0.0, 0]}
    for name in spent:
        original = getattr(bayes_exact, name)

        def timed(*a, _original=original, _name=name, **k):
            start = time.perf_counter()
            try:
                return _original(*a, **k)
            finally:
                spent[_name][0] += time.perf_counter() - start
                spent[_name][1] += 1

        setattr(bayes_exact, name, timed)

    # warm-up: one fit and one draw (first-call costs of numpy / scipy paths)
    warm = bayes_exact.fit_exact(
        [0.2, 0.1], [0.1, 0.2], prior_mu=Normal(0, 1), prior_tau=SHIPPED_TAU_PRIORS["half_normal_0.5"].prior
    )
    bayes_exact.draw(warm, 100, 1)
    inputs = outcome_inputs(load_published_outcomes(meta["published_outcomes"]), meta)

    def take() -> tuple[float, int, float, int]:
        values = (spent["fit_exact"][0], spent["fit_exact"][1], spent["draw"][0], spent["draw"][1])
        for name in spent:
            spent[name] = [0.0, 0]
        return values

    runs = []
    for _ in range(args.repeat):
        take()
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "meta"
            start = time.perf_counter()
            part = bayes_pooling(inputs, meta, seed)
            wall_meta = time.perf_counter() - start
            meta_fit_s, meta_fits, _, _ = take()
            for fig in part.figures.values():
                plt.close(fig)
            # the whole meta stage (its frequentist part too): the outputs the evidence stage reads
            stage = run_meta_stage_with_bayes(None, meta, seed=seed)
            write_stage(stage, out)
            take()  # the same fits again: not counted twice
            start = time.perf_counter()
            write_posteriors(stage, out)
            wall_posteriors = time.perf_counter() - start
            _, _, post_draw_s, post_draws = take()
            for fig in stage.figures.values():
                plt.close(fig)
            start = time.perf_counter()
            evidence = run_evidence_stage(
                None, {"evidence": config["evidence"], "meta": meta}, trial=trial, seed=seed, meta_dir=out
            )
            wall_evidence = time.perf_counter() - start
            ev_fit_s, ev_fits, ev_draw_s, ev_draws = take()
            for fig in evidence.figures.values():
                plt.close(fig)
        runs.append(
            dict(
                meta_fit_s=meta_fit_s,
                meta_fits=meta_fits,
                draw_s=post_draw_s + ev_draw_s,
                draws=post_draws + ev_draws,
                ev_fit_s=ev_fit_s,
                ev_fits=ev_fits,
                compute=meta_fit_s + post_draw_s + ev_fit_s + ev_draw_s,
                wall_meta=wall_meta,
                wall_posteriors=wall_posteriors,
                wall_evidence=wall_evidence,
                figures=len(part.figures),
                reused=evidence.record.get("reused_meta_fits", []),
            )
        )
    r = min(runs, key=lambda run: run["compute"])
    print(f"default config, exact engine, best of {args.repeat} runs")
    print(
        f"  meta: {r['meta_fits']} fits (outcomes x priors, cumulative, implementation) {r['meta_fit_s']:.3f} s "
        f"({1000 * r['meta_fit_s'] / max(r['meta_fits'], 1):.1f} ms a fit)"
    )
    print(
        f"  evidence: {r['ev_fits']} fits {r['ev_fit_s']:.3f} s (published-only fits reused from the meta outputs: "
        f"{', '.join(r['reused']) or 'none'})"
    )
    print(f"  exact draws: {r['draws']} calls {r['draw_s']:.3f} s (posteriors written, evidence percentiles)")
    print(f"  Bayesian compute of one pipeline run (fits + draws): {r['compute']:.3f} s  (target < 2 s)")
    print(
        f"  wall: meta bayes_pooling {r['wall_meta']:.3f} s (fits, tables and {r['figures']} figures); posteriors "
        f"draw + write {r['wall_posteriors']:.3f} s; evidence stage {r['wall_evidence']:.3f} s"
    )
    print("  all runs (compute, s): " + ", ".join(f"{run['compute']:.3f}" for run in runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
