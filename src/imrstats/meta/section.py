"""The meta-analysis stage's report section: what `run_meta_stage` computed, as HTML.

Reads only the stage result (its tables, record, figure names and flags) and computes nothing; the method
line under a table is the table's own `method` column (``report.html.table_html``). The Bayesian pooling's
part is rendered by ``imrstats.meta.bayes_section`` and follows the frequentist part.
"""

from __future__ import annotations

from html import escape

import pandas as pd

from imrstats.data.instruments import load_registry
from imrstats.errors import InputError
from imrstats.meta.figures import axis_label
from imrstats.meta.stage import DENOMINATOR_RULE, FAVOURS
from imrstats.pipeline.stage_result import StageResult
from imrstats.report.format import format_number as fmt
from imrstats.report.html import figure_html, flags_html, render_template, table_html

BAYES_FLAG_PREFIX = "Bayesian pooling: "

# A study's effect is "instrument: what the number is"; outside the registry the names come from here.
_OTHER_INSTRUMENTS = {
    "hospitalisation": "any hospitalisation (register)",
    "hospital_days_change": "change in hospital days (register)",
    "bprs": "BPRS",
    "qls_abbreviated": "QLS (abbreviated)",
    "psychosis_rating_scale": "psychosis rating (Färdig)",
    "sofas": "SOFAS",
}

_SHOW_EFFECTS = [
    "study",
    "year",
    "instrument",
    "timepoint",
    "analysis",
    "use",
    "measure",
    "yi",
    "ci_low",
    "ci_high",
    "conversion",
    "assumption",
    "reason",
]
_SHOW_EST = [
    "quantity",
    "estimator",
    "k",
    "estimate",
    "se",
    "ci_low",
    "ci_high",
    "p",
    "pi_low",
    "pi_high",
    "tau2",
    "i2",
    "method",
    "notes",
]
_SHOW_HET = ["quantity", "estimate", "ci_low", "ci_high", "df", "p", "method", "notes"]
_SHOW_LOO = ["omitted", "k", "estimate", "ci_low", "ci_high", "p", "tau2", "i2", "method"]
_SHOW_EGGER = ["quantity", "estimate", "se", "ci_low", "ci_high", "p", "low_power", "method", "notes"]
_SHOW_CUM = ["added", "order", "k", "estimate", "ci_low", "ci_high", "p", "tau2", "method"]
_SHOW_SENS = ["analysis", "k", "estimate", "ci_low", "ci_high", "p", "pi_low", "pi_high", "studies", "method", "notes"]
_SHOW_INFLUENCE = [
    "study",
    "rstudent",
    "dffits",
    "cook_d",
    "cov_r",
    "tau2_del",
    "qe_del",
    "hat",
    "weight",
    "dfbetas",
    "influential",
    "influential_by",
    "note",
    "method",
]
_SHOW_TRIMFILL = ["quantity", "k", "estimate", "se", "ci_low", "ci_high", "p", "side", "method", "notes"]
_SHOW_MULTILEVEL = [
    "outcome_label",
    "analysis",
    "k",
    "n_studies",
    "estimate",
    "se",
    "ci_low",
    "ci_high",
    "df",
    "p",
    "sigma2_study",
    "sigma2_effect",
    "effects",
    "method",
    "notes",
]
_SHOW_RATES = [
    "measure",
    "study",
    "year",
    "design",
    "percent",
    "n",
    "denominator",
    "events",
    "reconstructed_pct",
    "yi",
    "included",
    "reason",
    "assumption",
]
_SHOW_PROPORTIONS = [
    "quantity",
    "k",
    "estimate",
    "ci_low",
    "ci_high",
    "pi_low",
    "pi_high",
    "i2",
    "median_pooled_studies_pct",
    "median_all_table3_pct",
    "n_table3_cells",
    "review_median_pct",
    "method",
]
_SHOW_PROPORTION_SENS = [
    "quantity",
    "analysis",
    "k",
    "estimate",
    "ci_low",
    "ci_high",
    "pi_low",
    "pi_high",
    "studies",
    "method",
    "notes",
]


def cols(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The listed columns of `frame` that it has, in the listed order."""
    return frame[[c for c in columns if c in frame.columns]]


def rows_of(tables: dict[str, pd.DataFrame], name: str, label: str, column: str = "outcome_label") -> pd.DataFrame:
    """The rows of table `name` whose `column` is `label` (empty when the table or the column is absent)."""
    frame = tables.get(name)
    if frame is None or column not in frame.columns:
        return pd.DataFrame()
    return frame.loc[frame[column] == label]


def instrument_name(key: str) -> str:
    """An instrument's short name from the registry (or the names above for scales outside it)."""
    try:
        registry = load_registry()
    except (InputError, OSError):
        registry = {}
    return registry[key].short if key in registry else _OTHER_INSTRUMENTS.get(key, key)


def main_method_label(estimators: pd.DataFrame, method: str) -> str:
    """The main fit's method text ('random effects, tau^2 by REML (...); Knapp-Hartung t(k-1)') from the
    estimators table: the main estimator's row (or the single study's), without the prediction-interval note."""
    hit = estimators.loc[estimators["estimator"].isin([method, "none"])] if "estimator" in estimators else estimators
    row = (hit if len(hit) else estimators).iloc[0]
    return str(row["method"]).split("; PI = ")[0]


def render_meta_section(result: StageResult) -> str:
    """The whole meta section: the frequentist pooling, then the Bayesian pooling when it ran."""
    from imrstats.meta.bayes_section import render_bayes_part

    s = result.record["settings"]
    flags = [f for f in result.flags if not f.startswith(BAYES_FLAG_PREFIX)]
    outcomes = [_outcome_html(result, label, keys, flags) for label, keys in s["outcomes"].items()]
    html = render_template(
        "meta/section.html.j2",
        s=s,
        flags=flags_html(flags),
        outcomes=outcomes,
        multilevel=_multilevel_html(result),
        implementation=_implementation_html(result),
    )
    if "bayes" in result.record:
        bayes_flags = [f.removeprefix(BAYES_FLAG_PREFIX) for f in result.flags if f.startswith(BAYES_FLAG_PREFIX)]
        html += "\n" + render_bayes_part(result.tables, result.record["bayes"], set(result.figures), bayes_flags)
    return html


def _outcome_html(result: StageResult, label: str, keys: list[str], flags: list[str]) -> str:
    rec = result.record["outcomes"].get(label, {})
    own_flags = [f.removeprefix(f"{label}: ") for f in flags if f.startswith(f"{label}: ")]
    if "note" in rec:  # not pooled: the stage's error is the whole section
        return render_template("meta/outcome.html.j2", label=label, failed=True, flags=flags_html(own_flags), parts=[])
    tables, figures = result.tables, set(result.figures)
    k, measure = rec["k"], rec["measure"]
    method = result.record["settings"]["method"]
    estimators = rows_of(tables, "meta_estimators", label)
    fit_label = main_method_label(estimators, method) if len(estimators) else ""
    parts = [
        table_html(
            cols(rows_of(tables, "meta_effects", label), _SHOW_EFFECTS),
            caption=f"{label}: candidate rows; 'reason' says why a row was not pooled ({FAVOURS}; 95% normal CIs)",
            method="effect sizes by imrstats.meta.effect_sizes (metafor escalc definitions); conversions per row",
        ),
        flags_html(own_flags),
    ]
    if k == 1:
        parts.append(
            "<p><b>Only one study reports this outcome: its effect is shown as it stands; nothing is "
            "pooled and heterogeneity cannot be estimated.</b></p>"
        )
    parts.append(
        table_html(
            cols(estimators, _SHOW_EST),
            caption=f"{label}: pooled effect by estimator ({FAVOURS}); PI = prediction interval",
        )
    )
    if f"meta_forest_{label}" in figures:
        parts.append(
            figure_html(
                f"meta_forest_{label}",
                f"{label}: forest plot (squares sized by weight; diamond: "
                f"pooled effect and CI; dashed: prediction interval); {fit_label}",
            )
        )
    heterogeneity = rows_of(tables, "meta_heterogeneity", label)
    if len(heterogeneity):
        parts.append(table_html(cols(heterogeneity, _SHOW_HET), caption=f"{label}: heterogeneity"))
        if "tau^2" in set(heterogeneity["quantity"]) and k < 5:
            parts.append(
                f"<p>With k = {k} the heterogeneity estimates are very imprecise (see the width of the "
                "Q-profile interval).</p>"
            )
    loo = rows_of(tables, "meta_leave_one_out", label)
    if len(loo):
        parts.append(table_html(cols(loo, _SHOW_LOO), caption=f"{label}: leave-one-out ({FAVOURS})"))
    egger = rows_of(tables, "meta_egger", label)
    if len(egger):
        parts.append(
            table_html(
                cols(egger, _SHOW_EGGER),
                caption=f"{label}: Egger's regression test (low power with k < 10: a null result says little)",
            )
        )
    if f"meta_funnel_{label}" in figures:
        parts.append(
            figure_html(f"meta_funnel_{label}", f"{label}: funnel plot around the pooled effect ({fit_label})")
        )
    cumulative = rows_of(tables, "meta_cumulative", label)
    if len(cumulative):
        parts.append(
            table_html(
                cols(cumulative, _SHOW_CUM),
                caption=f"{label}: cumulative meta-analysis by publication year ({FAVOURS})",
            )
        )
    if f"meta_cumulative_{label}" in figures:
        parts.append(figure_html(f"meta_cumulative_{label}", f"{label}: cumulative pooled effect by year"))
    sensitivity = rows_of(tables, "meta_sensitivity", label)
    if len(sensitivity):
        parts.append(table_html(cols(sensitivity, _SHOW_SENS), caption=f"{label}: sensitivity analyses ({FAVOURS})"))
    parts += _small_study_parts(tables, label)
    several = rows_of(tables, "meta_multilevel", label)
    if len(several):
        parts.append(f"<p>{escape(multilevel_line(several))}</p>")
    names = ", ".join(f"{instrument_name(key)} ({key})" for key in keys)
    return render_template(
        "meta/outcome.html.j2", label=label, failed=False, names=names, k=k, measure=axis_label(measure), parts=parts
    )


def _small_study_parts(tables: dict[str, pd.DataFrame], label: str) -> list[str]:
    """The outcome's influence diagnostics and trim-and-fill (k >= 3), or the line saying why not."""
    influence = rows_of(tables, "meta_influence", label)
    filled = rows_of(tables, "meta_trimfill", label)
    if len(filled) and filled["estimate"].isna().all():
        return [f"<p>Influence diagnostics and trim-and-fill: {escape(str(filled['notes'].iloc[0]))}.</p>"]
    parts = []
    if len(influence):
        parts.append(
            table_html(
                cols(influence, _SHOW_INFLUENCE),
                caption=f"{label}: influence diagnostics of the main fit (metafor influence.rma.uni; "
                "'influential' by metafor's rule, named in 'influential_by')",
            )
        )
    if len(filled):
        parts.append(
            table_html(
                cols(filled, _SHOW_TRIMFILL),
                caption=f"{label}: trim-and-fill (a sensitivity analysis that reads funnel asymmetry as publication "
                f"bias; k0 = studies estimated missing; {FAVOURS})",
            )
        )
    return parts


def multilevel_line(rows: pd.DataFrame) -> str:
    """One sentence for an outcome's multilevel sensitivity analysis: every row pooled (effects, studies), the
    CR2 estimate and CI beside the main analysis, or why it was not fitted."""
    robust = rows.loc[rows["analysis"].str.startswith("multilevel, CR2")]
    label = rows["outcome_label"].iloc[0]
    if not len(robust):
        note = rows.loc[rows["analysis"] == "multilevel", "notes"]
        return f"Multilevel sensitivity analysis ({label}): {note.iloc[0] if len(note) else 'not fitted'}."
    r = robust.iloc[0]
    text = (
        f"Multilevel sensitivity analysis ({label}, every row: {int(r['k'])} effects in {int(r['n_studies'])} "
        f"studies; three-level model, CR2 cluster-robust SE): {fmt(r['estimate'])} [{fmt(r['ci_low'])}, "
        f"{fmt(r['ci_high'])}], Satterthwaite df {fmt(r['df'], 1)}, p = {fmt(r['p'], 3)}"
    )
    main = rows.loc[rows["analysis"].str.startswith("main analysis")]
    if len(main):
        m = main.iloc[0]
        text += (
            f"; main analysis (one row per study, k = {int(m['k'])}): {fmt(m['estimate'])} "
            f"[{fmt(m['ci_low'])}, {fmt(m['ci_high'])}]"
        )
    if r["df"] < 4:
        text += " (Satterthwaite df below 4: the CR2 interval is unreliable, Tipton 2015)"
    return text + "."


def _multilevel_html(result: StageResult) -> str:
    """The multilevel sensitivity analyses together (outcomes and the groups of meta.multilevel_groups)."""
    table = result.tables.get("meta_multilevel")
    if table is None or not len(table):
        return ""
    groups = [g for g in dict.fromkeys(table["outcome_label"]) if g not in result.record["settings"]["outcomes"]]
    lines = "".join(f"<p>{escape(multilevel_line(table.loc[table['outcome_label'] == g]))}</p>" for g in groups)
    return render_template(
        "meta/multilevel.html.j2",
        rule=result.record.get("multilevel", {}).get("rule", ""),
        lines=lines,
        table=table_html(
            cols(table, _SHOW_MULTILEVEL),
            caption=f"Several effects per study: every row pooled with the three-level model beside the main analysis "
            f"({FAVOURS})",
        ),
    )


def _implementation_html(result: StageResult) -> str:
    impl = result.record.get("implementation", {})
    if "error" in impl:
        return render_template(
            "meta/implementation.html.j2",
            error=flags_html([impl["error"]]),
            figures=[],
            denominator_rule=DENOMINATOR_RULE,
            parts=[],
            quotes=[],
        )
    tables = result.tables
    parts = [
        table_html(
            cols(tables["meta_implementation_rates"], _SHOW_RATES),
            caption="Implementation rates used (n = denominator: people offered IMR; yi = logit proportion)",
            method="metafor PLO: log(x / (n - x)), variance 1/x + 1/(n - x)",
        ),
        table_html(
            cols(tables["meta_implementation_pooled"], _SHOW_PROPORTIONS),
            caption="Pooled proportions (%) and the review's medians (medians: plain medians of the percentages)",
        ),
        table_html(
            cols(tables["meta_implementation_sensitivity"], _SHOW_PROPORTION_SENS),
            caption="Pooled proportions (%): sensitivity to assumed denominators",
        ),
    ]
    pooled = tables["meta_implementation_pooled"]
    quotes = [f"{r.get('review_quote', '')} ({r.get('review_source', '')})" for _, r in pooled.iterrows()]
    figures = [
        figure_html(f"meta_forest_{r['measure']}", f"{r['quantity']}: forest plot, logit scale back-transformed")
        for _, r in pooled.iterrows()
        if f"meta_forest_{r['measure']}" in result.figures
    ]
    return render_template(
        "meta/implementation.html.j2",
        error="",
        denominator_rule=DENOMINATOR_RULE,
        parts=parts,
        quotes=quotes,
        figures=figures,
    )
