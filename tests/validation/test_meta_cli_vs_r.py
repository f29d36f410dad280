"""`imrstats meta` on a 2x2 table (metafor's dat.bcg, data/examples/meta/bcg.csv) and the risk difference
(``effect_sizes.rd`` / escalc "RD") against R metafor 3.8.1 on identical input.

Reference numbers: tests/validation/data/meta_cli_bcg_reference.json, written by
tests/validation/r/meta_cli_bcg.R (this suite never runs R). metafor's REML fit there is tightened (threshold
1e-12) so it sits at the optimum; ours stops where metafor's default control stops (1e-5), and must agree
to 1e-6 relative (absolute floor 1e-9 for quantities near 0). The leave-one-out and cumulative refits are
compared with metafor's refits under its default control (the same Fisher scoring steps): at the optimum a
few of them differ from a threshold-1e-5 fit by up to 3e-6 relative (where the iteration stops, not the
method). Cases: the CLI's defaults (REML, Knapp-Hartung from config meta.knha) and --no-knha (Wald z); each
with the prediction interval, the Q-profile CIs, leave-one-out, the cumulative analysis by year and Egger's
test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from conftest import PROJECT
from imrstats.cli import main
from imrstats.meta.effect_sizes import escalc

DATA = Path(__file__).parent / "data"
REF = json.loads((DATA / "meta_cli_bcg_reference.json").read_text())
BCG = PROJECT / "data" / "examples" / "meta" / "bcg.csv"
REL, ABS = 1e-6, 1e-9


def close(ours, theirs):
    return pytest.approx(theirs, rel=REL, abs=ABS) == ours


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bcg")
    out = {}
    for case, flag in (("knha", []), ("z", ["--no-knha"])):
        path = folder / f"{case}.json"
        assert main(["meta", str(BCG), "--measure", "RR", *flag, "--json", str(path)]) == 0
        out[case] = json.loads(path.read_text())
    return out


@pytest.mark.parametrize("case", ["knha", "z"])
def test_bcg_risk_ratio_pooled_as_metafor(cli_runs, case, capsys):
    got, ref = cli_runs[case], REF["fits"][case]
    assert got["result"]["knha"] is (case == "knha")
    assert close(got["result"]["yi"], REF["escalc"]["bcg_RR"]["yi"]) and close(
        got["result"]["vi"], REF["escalc"]["bcg_RR"]["vi"]
    )
    bad = [
        (key, got["result"][key], value) for key, value in ref["rma"].items() if not close(got["result"][key], value)
    ]
    assert not bad, bad
    pred = ref["prediction"]
    assert close(got["prediction"]["pi_low"], pred["pi_low"]) and close(got["prediction"]["pi_high"], pred["pi_high"])
    back = got["back_transformed"]
    for ours, theirs in (("estimate", "exp_estimate"), ("ci_low", "exp_ci_low"), ("ci_high", "exp_ci_high")):
        assert close(back[ours], pred[theirs]), ours
    assert close(back["pi_low"], pred["exp_pi_low"]) and close(back["pi_high"], pred["exp_pi_high"])
    het = {row["quantity"]: row for row in got["heterogeneity"]}
    for i, quantity in enumerate(ref["confint"]["quantity"]):
        for field in ("estimate", "ci_low", "ci_high"):
            assert close(het[quantity][field], ref["confint"][field][i]), (quantity, field)


@pytest.mark.parametrize("case", ["knha", "z"])
@pytest.mark.parametrize("part", ["leave_one_out", "cumulative"])
def test_bcg_leave_one_out_and_cumulative_as_metafor(cli_runs, case, part):
    rows = cli_runs[case][part] if part == "leave_one_out" else cli_runs[case][part]["rows"]
    ref = REF["fits"][case][part]
    frame = pd.DataFrame(rows)
    label = "omitted" if part == "leave_one_out" else "added"
    assert frame[label].tolist() == ref[label]  # same study labels, same order (cumulative: by year, ties stable)
    fields = ["estimate", "se", "p", "ci_low", "ci_high"] + (["tau2", "i2", "q"] if part == "leave_one_out" else [])
    for field in fields:
        assert close(frame[field].tolist(), ref[field]), field


@pytest.mark.parametrize("case", ["knha", "z"])
def test_bcg_egger_as_metafor(cli_runs, case):
    egger = {row["quantity"]: row for row in cli_runs[case]["egger"]}
    ref = REF["fits"][case]["egger"]
    slope, limit = egger["funnel asymmetry (slope on SE)"], egger["limit estimate (SE -> 0)"]
    assert close(slope["estimate"], ref["slope"]) and close(slope["se"], ref["slope_se"])
    assert close(slope["statistic"], ref["statistic"]) and close(slope["p"], ref["p"])
    assert close(limit["estimate"], ref["limit"]) and close(limit["se"], ref["limit_se"])
    assert slope["low_power"] is False  # k = 13


@pytest.mark.parametrize(
    "case, frame",
    [
        (
            "bcg_RD",
            pd.read_csv(BCG).assign(
                events_imr=lambda d: d["ai"],
                n_imr=lambda d: d["ai"] + d["bi"],
                events_tau=lambda d: d["ci"],
                n_tau=lambda d: d["ci"] + d["di"],
            ),
        ),
        ("zero_RD", pd.read_csv(DATA / "meta_binary_zero.csv")),  # zero cells, a study with no events at all
    ],
)
def test_risk_difference_as_metafor_escalc(case, frame):
    table = escalc(frame, "RD")
    ref = REF["escalc"][case]
    assert close(table["yi"].tolist(), ref["yi"]) and close(table["vi"].tolist(), ref["vi"])
