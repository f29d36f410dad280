import json

import pytest

from conftest import PROJECT
from imrstats.cli import main

SMD_CSV = PROJECT / "tests" / "validation" / "data" / "meta_smd.csv"
# metafor 3.8.1: rma(yi, vi, method = "REML", test = "knha") on escalc("SMD") of meta_smd.csv
# (tests/validation/r/metafor_meta.R)
METAFOR_REML_KNHA = {"estimate": 0.294706779971397, "tau2": 0.0506603118732777, "pi_low": -0.318001683592646}


def test_meta_command_on_a_reviewers_csv(tmp_path, capsys):
    out = tmp_path / "meta.json"
    assert main(["meta", str(SMD_CSV), "--knha", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "tau^2 estimator: REML" in text and "Knapp-Hartung" in text and "positive favours IMR" in text
    payload = json.loads(out.read_text())
    assert payload["result"]["estimate"] == pytest.approx(METAFOR_REML_KNHA["estimate"], rel=1e-6)
    assert payload["result"]["tau2"] == pytest.approx(METAFOR_REML_KNHA["tau2"], rel=1e-6)
    assert payload["prediction"]["pi_low"] == pytest.approx(METAFOR_REML_KNHA["pi_low"], rel=1e-6)


def test_meta_command_with_effects_and_unknown_outcome(tmp_path, capsys):
    path = tmp_path / "effects.csv"
    path.write_text(
        "study,instrument,effect,se\nA,imrs_client,0.36,0.2\nB,imrs_client,0.1,0.15\nC,imrs_client,-0.05,0.12\n"
    )
    assert main(["meta", str(path), "--method", "DL"]) == 0
    assert "effects as given (effect, se)" in capsys.readouterr().out
    assert main(["meta", str(path), "--outcome", "gaf_f"]) == 2
    assert "no rows with instrument 'gaf_f'" in capsys.readouterr().err


def test_simulate_then_check_then_clean(tmp_path, capsys):
    assert main(["simulate", "--out", str(tmp_path / "in"), "--seed", "3"]) == 0
    assert main(["check", str(tmp_path / "in")]) == 0
    assert main(["clean", "--in", str(tmp_path / "in"), "--out", str(tmp_path / "clean")]) == 0
    assert (tmp_path / "clean" / "cleaning_log.csv").exists()


def test_simulate_does_not_overwrite_a_users_files_without_force(tmp_path, capsys):
    mine = tmp_path / "in" / "participants.csv"
    mine.parent.mkdir()
    mine.write_text("id,arm\nmy-own,IMR\n")
    assert main(["simulate", "--out", str(tmp_path / "in"), "--seed", "3"]) == 2
    err = capsys.readouterr().err
    assert "participants.csv" in err and "--force" in err and "Traceback" not in err
    assert mine.read_text() == "id,arm\nmy-own,IMR\n"  # untouched
    assert not (tmp_path / "in" / "assessments.csv").exists()  # nothing half-written beside it
    assert main(["simulate", "--out", str(tmp_path / "in"), "--seed", "3", "--force"]) == 0
    assert mine.read_text() != "id,arm\nmy-own,IMR\n"


def test_audit_command_flags_the_seed_cases(tmp_path, capsys):
    out = tmp_path / "audit.json"
    assert main(["audit", str(PROJECT / "data" / "published" / "audit_cases.csv"), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    # Ferrara implementation study: r = 0.96 with n = 15 gives p < 1e-7, so "p = 0.001" can only be a threshold
    assert "correlation_p_reported_as_equality" in text
    # Jensen et al. 2019: GAF-F 0.8 with CI -4.7 to 3.0: the CI is not centred on the estimate
    assert "[ci_centred] 0.8 (95% CI -4.7 to 3.0)" in text
    record = json.loads(out.read_text())
    assert record["stage"] == "audit" and record["flags"]


def test_meta_command_bayes(tmp_path, capsys):
    out = tmp_path / "meta.json"
    assert main(["meta", str(SMD_CSV), "--knha", "--bayes", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Bayesian random effects" in text and "rhodes_mental_health_nonpharm" in text
    assert "[engine: exact, quadrature (Roever 2020 bayesmeta method)]" in text and "Bayes factors" in text
    bayes = json.loads(out.read_text())["bayes"]
    assert bayes["engine"] == "exact, quadrature (Roever 2020 bayesmeta method)" and "diagnostics" not in bayes
    mu = next(r for r in bayes["estimates"] if r["quantity"] == "mu")
    # the posterior mean lies near the REML estimate of the same data (metafor: 0.2947), shrunk by the priors
    assert abs(mu["estimate"] - METAFOR_REML_KNHA["estimate"]) < 0.05
    assert mu["hpd_low"] < mu["median"] < mu["hpd_high"]
    assert set(bayes["bayes_factors"]) >= {"log_marginal_likelihood", "bf_tau0", "bf_mu0", "definition"}


# pinned R references of the exact engine (tests/validation/data/bayes_exact_reference.json, R integrate())
EXACT_REFERENCES = {
    c["name"]: c
    for c in json.loads((PROJECT / "tests" / "validation" / "data" / "bayes_exact_reference.json").read_text())["cases"]
}


@pytest.mark.parametrize("case, prior", [("smd_k3_hn", "half_normal_0.5"), ("smd_k3_logt", None)])
def test_meta_bayes_prior_option_gives_the_pinned_exact_numbers(tmp_path, capsys, case, prior):
    """`--prior NAME` picks the shipped tau prior (default: config meta.bayes.tau_prior, the Rhodes log-t), mu's
    prior comes from config (Normal(0, 1)); printed and --json numbers are R's to 1e-6."""
    ref = EXACT_REFERENCES[case]
    path = tmp_path / "effects.csv"
    path.write_text(
        "study,effect,se\n" + "".join(f"S{i},{y!r},{s!r}\n" for i, (y, s) in enumerate(zip(ref["y"], ref["se"])))
    )
    out = tmp_path / "bayes.json"
    assert main(["meta", str(path), "--bayes", *(["--prior", prior] if prior else []), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    key = prior or "rhodes_mental_health_nonpharm"
    assert f"prior on tau: {key}" in text and "prior on mu: Normal(0, 1)" in text and "exact, quadrature" in text
    bayes = json.loads(out.read_text())["bayes"]
    assert bayes["prior"] == key
    rows = {r["quantity"]: r for r in bayes["estimates"]}
    for name in ("mu", "tau", "mu_new"):
        r = ref["results"][name]
        for ours, theirs in (
            ("estimate", "mean"),
            ("se", "sd"),
            ("median", "median"),
            ("ci_low", "ci_low"),
            ("ci_high", "ci_high"),
            ("hpd_low", "hpd_low"),
            ("hpd_high", "hpd_high"),
        ):
            assert rows[name][ours] == pytest.approx(r[theirs], rel=1e-6, abs=1e-9), (name, ours)
    assert rows["P(mu > 0.2)"]["estimate"] == pytest.approx(ref["results"]["mu"]["p_gt_mid"], rel=1e-6)
    bf = bayes["bayes_factors"]
    assert bf["log_marginal_likelihood"] == pytest.approx(ref["log_marginal_likelihood"], rel=1e-6)
    assert bf["bf_tau0"] == pytest.approx(ref["bayes_factors"]["actual_tau0"], rel=1e-6)
    assert bf["bf_mu0"] == pytest.approx(ref["bayes_factors"]["actual_mu0"], rel=1e-6)
    assert f"BF(mu=0) = p(y|mu=0)/p(y) = {ref['bayes_factors']['actual_mu0']:.6g}" in text


@pytest.mark.parametrize(
    "options, message",
    [
        (
            ["--bayes", "--prior", "half_normal"],
            "--prior: unknown tau prior 'half_normal'; use one of half_normal_0.5, ",
        ),
        (["--prior", "half_normal_0.5"], "--prior: chooses the tau prior of the Bayesian pooling: give --bayes"),
    ],
)
def test_meta_bad_prior_option_is_one_line_exit_2_before_any_work(tmp_path, capsys, options, message):
    out = tmp_path / "never.json"
    assert main(["meta", str(SMD_CSV), *options, "--json", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and not out.exists()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("imrstats meta: command line: ") and message in lines[0]
    assert "rhodes_mental_health_nonpharm, " in lines[0] or "--bayes" in lines[0]
    assert "Traceback" not in captured.err


def test_implementation_command_reads_an_excel_registry(tmp_path, capsys):
    import pandas as pd

    frame = pd.read_csv(PROJECT / "data" / "examples" / "small_csv" / "programme.csv")
    frame.to_excel(tmp_path / "programme.xlsx", index=False, sheet_name="programme")
    out = tmp_path / "impl.json"
    assert main(["implementation", "--in", str(tmp_path), "--json", str(out)]) == 0
    assert f"{len(frame)} participants" in capsys.readouterr().out
    assert json.loads(out.read_text())["stage"] == "implementation"


def test_trial_command_with_kenward_roger(tmp_path, capsys):
    """One outcome on the small example: --df-method reaches every MMRM fit and is recorded; the random-intercept
    secondary model is run for the requested outcome."""
    out = tmp_path / "trial.json"
    args = [
        "trial",
        "--in",
        str(PROJECT / "data" / "examples" / "small_csv"),
        "--outcome",
        "gaf_f",
        "--imputations",
        "5",
        "--json",
        str(out),
    ]
    assert main([*args, "--df-method", "kenward_roger"]) == 0
    payload = json.loads(out.read_text())
    assert payload["settings"]["df_method"] == "kenward_roger"
    gaf = payload["outcomes"]["gaf_f"]
    assert all("Kenward-Roger" in row["method"] for row in gaf["likelihood_mmrm"])
    assert all("Kenward-Roger" in row["method"] for row in gaf["itt"]["contrasts"])
    assert gaf["random_intercept_lmm"]["contrasts"][0]["method"].startswith("REML random-intercept LMM")
    kr = {row["timepoint"]: row["se"] for row in gaf["likelihood_mmrm"]}
    capsys.readouterr()
    assert main(args) == 0  # the config's default: Satterthwaite, model-based SE
    plain = json.loads(out.read_text())["outcomes"]["gaf_f"]
    assert all("Satterthwaite" in row["method"] for row in plain["likelihood_mmrm"])
    sat = {row["timepoint"]: row["se"] for row in plain["likelihood_mmrm"]}
    assert all(kr[t] > sat[t] for t in sat)  # the KR adjustment inflates the model-based SE


# ---------------------------------------------------------------------------------------------
# --config: a file of only the keys the user changes, overlaid on the defaults, for every command


SMALL = PROJECT / "data" / "examples" / "small_csv"


@pytest.mark.parametrize(
    "command, section, check",
    [
        (
            ["trial", "--in", str(SMALL), "--outcome", "psp"],
            "trial: {imputations: 5}",
            lambda record: record["settings"]["imputations"] == 5 and record["settings"]["donors"] == 5,
        ),
        (
            ["services", "--in", str(SMALL)],
            "services: {selection_rule: bic}",
            lambda record: (
                record["settings"]["selection_rule"] == "bic" and record["settings"]["rootogram_max_bars"] == 30
            ),
        ),
        (
            ["implementation", "--in", str(SMALL)],
            "implementation: {small_cell_threshold: 3}",
            lambda record: record["settings"]["small_cell_threshold"] == 3 and record["settings"]["alpha"] == 0.05,
        ),
        (
            ["audit", str(PROJECT / "data" / "published" / "audit_cases.csv")],
            "audit: {show_uncheckable: true}",
            lambda record: record["settings"]["show_uncheckable"] is True and record["settings"]["alpha"] == 0.05,
        ),
    ],
)
def test_a_two_key_config_file_reaches_the_command(tmp_path, capsys, command, section, check):
    """`--config` with two keys (one setting and the master seed), after or before the command name."""
    from imrstats.config import stage_seed

    config = tmp_path / "two_keys.yaml"
    config.write_text(f"{section}\nseed: 7\n")
    out = tmp_path / "record.json"
    assert main([*command, "--config", str(config), "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert check(record)
    if "seed" in record:
        assert record["seed"] == stage_seed(command[0], {"seed": 7})
    if command[0] == "audit":  # the same file given before the command name
        assert main(["--config", str(config), *command, "--json", str(out)]) == 0
        assert check(json.loads(out.read_text()))


def test_a_two_key_config_file_reaches_imrstats_meta(tmp_path, capsys):
    config = tmp_path / "two_keys.yaml"
    config.write_text("meta: {method: DL}\nseed: 7\n")
    assert main(["meta", str(SMD_CSV), "--config", str(config)]) == 0
    assert "tau^2 estimator: DL" in capsys.readouterr().out


@pytest.mark.parametrize(
    "command",
    [
        ["trial", "--in", str(SMALL), "--outcome", "psp"],
        ["services", "--in", str(SMALL)],
        ["implementation", "--in", str(SMALL)],
        ["meta", str(SMD_CSV)],
        ["audit", str(PROJECT / "data" / "published" / "audit_cases.csv")],
    ],
)
def test_a_bad_setting_stops_every_command_naming_the_key(tmp_path, capsys, command):
    config = tmp_path / "bad.yaml"
    config.write_text("trial: {imputations: 1}\nservices: {rule: aic}\n")
    assert main([*command, "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "trial.imputations: must be >= 2, got 1" in err and "services.rule: unknown key" in err
    assert "Traceback" not in err
