"""Many MMRM fits at once (imrstats.trial.mmrm.fit_mmrm_many / fit_mmrm_chains) and the trial paths built on
them (warm-started chains, the batched delta grid, trial.prefit_itt): every fit must be the fit that
`fit_mmrm_grid` makes alone from the same start, and the pooled trial results must not depend on which
path made them. Speed is measured in benchmarks/bench_trial.py, never here."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from conftest import VALIDATION_DATA
from imrstats.errors import AnalysisError
from imrstats.trial import analyses as trial
from imrstats.trial import mmrm

DATA = VALIDATION_DATA / "trial_gaf_f.csv"
M = 12
RTOL = 1e-12  # the batched path may round differently from one fit at a time; the algorithm is the same


@pytest.fixture(scope="module")
def frame():
    return pd.read_csv(DATA, dtype={"id": str})


@pytest.fixture(scope="module")
def completed(frame):
    """m per-imputation designs and complete outcome grids of gaf_f (what the ITT analysis fits)."""
    imp = trial.impute_outcome(frame, m=M, seed=5)
    _, designs, grids = trial.completed_designs(imp, trial.DEFAULT_COVARIATES, [0.0])
    return imp, designs, grids[0]


def _alone(designs, grids, starts):
    return [mmrm.fit_mmrm_grid(d, y, start=s) for d, y, s in zip(designs, grids, starts)]


def _assert_same(fits, alone):
    for b, res in enumerate(alone):
        np.testing.assert_allclose(fits.sigma[b], res.sigma, rtol=RTOL)
        np.testing.assert_allclose(fits.beta[b], res.beta, rtol=RTOL, atol=1e-12)
        np.testing.assert_allclose(fits.cov_beta[b], res.cov_beta, rtol=RTOL, atol=1e-15)
        np.testing.assert_allclose(fits.cov_theta[b], res.cov_theta, rtol=RTOL)
        assert fits.iterations[b] == res.iterations and fits.converged[b] == res.converged
        np.testing.assert_allclose(fits.result(b).contrast_df, res.contrast_df, rtol=RTOL)


def test_chain_equals_fits_started_at_the_previous_sigma(completed):
    _, designs, grids = completed
    fits = mmrm.fit_mmrm_many(designs, grids)
    starts = [None] + [fits.sigma[b - 1] for b in range(1, M)]
    _assert_same(fits, _alone(designs, grids, starts))


def test_batch_from_given_starts_equals_fits_one_at_a_time(completed):
    _, designs, grids = completed
    chain = mmrm.fit_mmrm_many(designs, grids)
    # starts of different quality: the chain's own estimates, an inflated copy, and an identity matrix
    starts = np.concatenate([chain.sigma[:4], 3.0 * chain.sigma[4:8], np.repeat(np.eye(2)[None], M - 8, axis=0)])
    shifted = grids + np.linspace(-5, 5, M)[:, None, None]
    fits = mmrm.fit_mmrm_many(designs, shifted, starts=starts)
    alone = _alone(designs, shifted, starts)
    _assert_same(fits, alone)
    assert len(set(fits.iterations.tolist())) > 1, "the batch should hold fits needing different iteration counts"


def test_unusable_start_falls_back_to_ols_start(completed):
    _, designs, grids = completed
    starts = np.repeat(np.array([[1.0, 2.0], [2.0, 1.0]])[None], M, axis=0)  # not positive definite
    fits = mmrm.fit_mmrm_many(designs, grids, starts=starts)
    _assert_same(fits, _alone(designs, grids, [None] * M))


def test_chains_in_lock_step_equal_each_chain_alone(frame, completed):
    _, designs, grids = completed
    other = trial.impute_outcome(frame, m=M, seed=6)
    _, designs2, grids2 = trial.completed_designs(other, trial.DEFAULT_COVARIATES, [0.0])
    together = mmrm.fit_mmrm_chains([designs, designs2], np.stack([grids, grids2[0]]))
    for fits, (d, g) in zip(together, [(designs, grids), (designs2, grids2[0])]):
        alone = mmrm.fit_mmrm_many(d, g)
        _assert_same(fits, [alone.result(b) for b in range(M)])


def test_many_fits_reject_mixed_inputs(completed):
    _, designs, grids = completed
    with pytest.raises(AnalysisError, match="one design per grid"):
        mmrm.fit_mmrm_many(designs[:3], grids)
    holes = grids.copy()
    holes[1, 0, 0] = np.nan
    with pytest.raises(AnalysisError, match="different observed cells"):
        mmrm.fit_mmrm_many(designs, holes)
    with pytest.raises(AnalysisError, match="C chains of m designs"):
        mmrm.fit_mmrm_chains([designs, designs[:3]], np.stack([grids, grids]))


def test_many_fits_check_every_design(completed):
    _, designs, grids = completed
    bad = list(designs)
    X = bad[3].X.copy()
    X[:, :, 4] = X[:, :, 5]  # one imputation's baseline columns collinear: only its rank is short
    bad[3] = dataclasses.replace(bad[3], X=X)
    with pytest.raises(AnalysisError, match="singular design"):
        mmrm.fit_mmrm_many(bad, grids)


def _fresh(imp):
    return dataclasses.replace(imp, fitted_sigmas={}, itt_fits={})


def test_prefit_itt_gives_the_same_itt_result(frame, completed):
    imp, _, _ = completed
    other = trial.impute_outcome(frame, m=M, seed=6)
    plain = [trial.itt_mi_mmrm(frame, imputation=_fresh(i)) for i in (imp, other)]
    ready = [_fresh(imp), _fresh(other)]
    assert trial.prefit_itt(ready) == 2
    for res, i in zip(plain, ready):
        pre = trial.itt_mi_mmrm(frame, imputation=i)
        for a, b in ((res.contrasts, pre.contrasts), (res.adjusted_means, pre.adjusted_means)):
            cols = ["estimate", "se", "df", "ci_low", "ci_high", "p", "fmi"]
            np.testing.assert_allclose(b[cols].to_numpy(float), a[cols].to_numpy(float), rtol=RTOL)
        assert pre.mean_satterthwaite_df == pytest.approx(res.mean_satterthwaite_df, rel=RTOL)


def test_delta_grid_without_prior_itt_fit_is_order_faithful(frame, completed):
    """Without a prior ITT fit, the deltas below 0 are chains of their own and the rest start from the
    delta = 0 chain's estimates: the grid equals delta-by-delta refits made in that order."""
    imp, _, _ = completed
    deltas = [-6.0, -3.0, 0.0, 3.0]
    tp = trial.delta_tipping_point(_fresh(imp), deltas=deltas, verify=False)
    one_by_one = _fresh(imp)
    k = trial.TIMEPOINTS.index("post")
    for d, row in zip(deltas, tp.grid.itertuples()):
        fits, design = trial.fit_imputations(
            one_by_one, trial.DEFAULT_COVARIATES, lambda r: (r.contrast_L[[k]], ["post"]), delta=d
        )
        pooled = trial.pool_rubin(fits.estimates[:, 0], fits.variances[:, 0], trial.complete_data_df(design)[k])
        assert row.estimate == pytest.approx(pooled.estimate, rel=RTOL)
        assert row.se == pytest.approx(pooled.se, rel=RTOL)
