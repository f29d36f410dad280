"""Descriptive analysis of an IMR programme registry (the Ferrara implementation study, 2023; docs/sources.md).

Works on the canonical `programme` table (one row per participant's IMR course) and gives:
Table 1 (demographics and clinical characteristics overall and by service type, with group tests),
Table 2 (programme delivery: sessions, duration, format, modules received, share per module),
Table 3 (IMRS user and provider scores, their correlation and Bland-Altman agreement) and the
figures (modules per participant, module x service heat map, Bland-Altman plot). Counts under a
threshold are flagged and optionally suppressed. Derived variables follow ARCHITECTURE.md:
age at start = year(start_date) - birth_year; illness duration = (start_date - first_contact_date)
in years of 365.25 days; programme duration = (stop_date - start_date) in months of 365.25/12 days;
modules received = sum of m01..m11. `imrs_user` / `imrs_provider` are IMRS totals (15 items, 15-75);
the item mean is total / 15.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from imrstats.errors import AnalysisError
from imrstats.implementation import hypothesis_tests as ht
from imrstats.report.figures import FONT, PALETTE, legend_outside, new_figure
from imrstats.results import Estimate, ResultMixin, summary_block, to_frame

MODULES = tuple(f"m{i:02d}" for i in range(1, 12))
# Ferrara implementation study, "Intervention": the eleven modules of the IMR manual (Gingerich et al. 2011)
MODULE_NAMES = {
    "m01": "Recovery Strategies",
    "m02": "Basic Facts About Mental Illness",
    "m03": "The Stress-Vulnerability Model",
    "m04": "Building Social Support",
    "m05": "Using Medication Effectively",
    "m06": "Drug and Alcohol Use",
    "m07": "Reducing Relapse",
    "m08": "Coping with Stress",
    "m09": "Coping with Persistent Symptoms",
    "m10": "Getting Your Needs Met in the Behavioral Health System",
    "m11": "Healthy Lifestyles",
}
SERVICE_TYPES = ("CMHC", "SerD", "EDP")
GROUP_COLUMN = "service_type"
OVERALL = "Overall"
IMRS_ITEMS = 15
DAYS_PER_YEAR = 365.25
REQUIRED_COLUMNS = (
    "service_type",
    "service",
    "format",
    "start_date",
    "stop_date",
    "sessions",
    *MODULES,
    "imrs_user",
    "imrs_provider",
    "sex",
    "birth_year",
    "first_contact_date",
    "diagnosis",
)
CATEGORICAL_DEMOGRAPHICS = ("sex", "diagnosis")
CONTINUOUS_DEMOGRAPHICS = ("age_at_start", "age_at_first_contact", "illness_duration_years")
CONTINUOUS_DELIVERY = ("sessions", "duration_months", "modules_received")
CATEGORICAL_DELIVERY = ("format",)


def _module_flags(frame: pd.DataFrame) -> pd.DataFrame:
    """m01..m11 as booleans; accepts bool or 0/1 and refuses anything else, missing included."""
    flags = {}
    for col in MODULES:
        values = frame[col]
        ok = values.isin([True, False, 0, 1]) & values.notna()
        if not ok.all():
            bad = values[~ok].iloc[0]
            raise AnalysisError(
                f"Module column {col!r} holds {bad!r}; module columns must be true/false or 0/1 with no "
                "missing values. Record a module that was not delivered as false."
            )
        flags[col] = values.astype(bool)
    return pd.DataFrame(flags, index=frame.index)


def derive_programme_variables(programme: pd.DataFrame) -> pd.DataFrame:
    """The programme table with the derived analysis variables added (see the module docstring).

    Adds age_at_start, age_at_first_contact, illness_duration_years, duration_months,
    modules_received, imrs_user_item_mean and imrs_provider_item_mean. Raises AnalysisError for
    missing columns, unknown service types, a stop date before the start date, or IMRS totals
    outside 15-75.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in programme.columns]
    if missing:
        raise AnalysisError(f"The programme table lacks column(s) {missing}; see ARCHITECTURE.md, 'programme'.")
    if programme.empty:
        raise AnalysisError("The programme table has no rows.")
    out = programme.copy()
    unknown = sorted(set(out[GROUP_COLUMN].dropna()) - set(SERVICE_TYPES))
    if unknown or out[GROUP_COLUMN].isna().any():
        raise AnalysisError(f"service_type must be one of {SERVICE_TYPES} with no missing values; found {unknown}.")
    out[list(MODULES)] = _module_flags(out)
    for col in ("start_date", "stop_date", "first_contact_date"):
        out[col] = pd.to_datetime(out[col])
    if (out["stop_date"] < out["start_date"]).any():
        n_bad = int((out["stop_date"] < out["start_date"]).sum())
        raise AnalysisError(f"{n_bad} course(s) stop before they start; fix start_date/stop_date.")
    for col in ("imrs_user", "imrs_provider", "sessions", "birth_year"):
        out[col] = pd.to_numeric(out[col], errors="raise").astype(float)
    for col in ("imrs_user", "imrs_provider"):
        bad = out[col].notna() & ~out[col].between(IMRS_ITEMS, 5 * IMRS_ITEMS)
        if bad.any():
            raise AnalysisError(
                f"{col} has {int(bad.sum())} value(s) outside 15-75; it must be the IMRS total. "
                "If you have item means, multiply them by 15."
            )
    out["age_at_start"] = out["start_date"].dt.year - out["birth_year"]
    out["age_at_first_contact"] = out["first_contact_date"].dt.year - out["birth_year"]
    out["illness_duration_years"] = (out["start_date"] - out["first_contact_date"]).dt.days / DAYS_PER_YEAR
    out["duration_months"] = (out["stop_date"] - out["start_date"]).dt.days / (DAYS_PER_YEAR / 12)
    out["modules_received"] = out[list(MODULES)].sum(axis=1).astype(float)
    out["imrs_user_item_mean"] = out["imrs_user"] / IMRS_ITEMS
    out["imrs_provider_item_mean"] = out["imrs_provider"] / IMRS_ITEMS
    return out


def present_groups(frame: pd.DataFrame, by: str = GROUP_COLUMN) -> list[str]:
    """Groups present in the data, service types in their canonical order."""
    seen = set(frame[by].dropna())
    canonical = [g for g in SERVICE_TYPES if g in seen] if by == GROUP_COLUMN else []
    return canonical + sorted(str(g) for g in seen if g not in canonical)


def _with_overall(frame: pd.DataFrame, by: str):
    """(group label, sub-frame) pairs: Overall first, then each present group."""
    yield OVERALL, frame
    for group in present_groups(frame, by):
        yield group, frame[frame[by] == group]


def summarise_categorical(frame: pd.DataFrame, variable: str, by: str = GROUP_COLUMN) -> pd.DataFrame:
    """Counts and column percentages of each level of `variable`, overall and per group.

    Percentages are of the group's non-missing values; missing values are a row of their own
    (level "(missing)") with a NaN percentage, so nothing disappears silently.
    """
    levels = sorted(frame[variable].dropna().astype(str).unique())
    rows = []
    for group, sub in _with_overall(frame, by):
        values = sub[variable]
        denominator = int(values.notna().sum())
        counts = values.dropna().astype(str).value_counts()
        for level in levels:
            n = int(counts.get(level, 0))
            pct = 100 * n / denominator if denominator else math.nan
            rows.append(
                {"variable": variable, "level": level, "group": group, "n": n, "denominator": denominator, "pct": pct}
            )
        if values.isna().any():
            rows.append(
                {
                    "variable": variable,
                    "level": "(missing)",
                    "group": group,
                    "n": int(values.isna().sum()),
                    "denominator": len(values),
                    "pct": math.nan,
                }
            )
    return pd.DataFrame(rows)


def summarise_continuous(frame: pd.DataFrame, variable: str, by: str = GROUP_COLUMN) -> pd.DataFrame:
    """n, missing, mean, SD, median, quartiles (R type 7), min and max, overall and per group."""
    rows = []
    for group, sub in _with_overall(frame, by):
        v = pd.to_numeric(sub[variable], errors="coerce").dropna()
        row = {"variable": variable, "group": group, "n": int(v.size), "missing": int(len(sub) - v.size)}
        if v.size:
            row.update(
                mean=v.mean(),
                sd=v.std(ddof=1) if v.size > 1 else math.nan,
                median=v.median(),
                q1=v.quantile(0.25),
                q3=v.quantile(0.75),
                min=v.min(),
                max=v.max(),
            )
        rows.append(row)
    cols = ["variable", "group", "n", "missing", "mean", "sd", "median", "q1", "q3", "min", "max"]
    return pd.DataFrame(rows).reindex(columns=cols)


def _labelled(est: Estimate, variable: str, by: str, alpha: float) -> Estimate:
    significant = bool(est.p < alpha) if np.isfinite(est.p) else None
    return replace(est, extra={**est.extra, "variable": variable, "by": by, "significant": significant})


def _failed_test(variable: str, by: str, test: str, error: Exception) -> Estimate:
    """A test that cannot be run is reported as a row saying why, never silently dropped."""
    return Estimate(
        quantity="not tested",
        estimate=math.nan,
        method="",
        notes=str(error),
        extra={"test": test, "variable": variable, "by": by, "significant": None},
    )


def compare_categorical(
    frame: pd.DataFrame, variable: str, by: str = GROUP_COLUMN, *, alpha: float = 0.05, seed=None
) -> Estimate:
    """Test of independence of `variable` and `by`: chi-square, or Fisher when any expected count < 5."""
    sub = frame[[variable, by]].dropna()
    table = pd.crosstab(sub[variable].astype(str), sub[by])
    try:
        return _labelled(ht.independence_test(table.to_numpy(), seed=seed), variable, by, alpha)
    except AnalysisError as error:
        return _failed_test(variable, by, "chi-square / Fisher", error)


def compare_continuous(
    frame: pd.DataFrame, variable: str, by: str = GROUP_COLUMN, *, alpha: float = 0.05
) -> list[Estimate]:
    """Two groups: Welch t and Mann-Whitney U; more than two: one-way ANOVA and Kruskal-Wallis.

    Groups with no non-missing value are left out (and so do not count as a group).
    """
    groups = [
        pd.to_numeric(frame.loc[frame[by] == g, variable], errors="coerce").dropna().to_numpy()
        for g in present_groups(frame, by)
    ]
    groups = [g for g in groups if g.size]
    if len(groups) == 2:
        tests = (
            ("Welch t", lambda: ht.welch_t_test(*groups)),
            ("Mann-Whitney U", lambda: ht.mann_whitney_u_test(*groups)),
        )
    else:
        tests = (
            ("one-way ANOVA", lambda: ht.one_way_anova(groups)),
            ("Kruskal-Wallis", lambda: ht.kruskal_wallis_test(groups)),
        )
    rows = []
    for name, run in tests:
        try:
            rows.append(_labelled(run(), variable, by, alpha))
        except AnalysisError as error:
            rows.append(_failed_test(variable, by, name, error))
    return rows


def module_share_table(frame: pd.DataFrame, by: str = GROUP_COLUMN) -> pd.DataFrame:
    """For each of the 11 modules: participants who received it, n and % of the group, overall and per group."""
    rows = []
    for group, sub in _with_overall(frame, by):
        for module in MODULES:
            n = int(sub[module].sum())
            rows.append(
                {
                    "module": module,
                    "module_name": MODULE_NAMES[module],
                    "group": group,
                    "n": n,
                    "denominator": len(sub),
                    "pct": 100 * n / len(sub) if len(sub) else math.nan,
                }
            )
    return pd.DataFrame(rows)


def service_count_table(frame: pd.DataFrame, by: str = GROUP_COLUMN) -> pd.DataFrame:
    """Participants and distinct delivering services (units) per service type and overall."""
    rows = [
        {"group": g, "n": len(sub), "services": int(sub["service"].nunique()), "pct": 100 * len(sub) / len(frame)}
        for g, sub in _with_overall(frame, by)
    ]
    return pd.DataFrame(rows)


def imrs_summary_table(frame: pd.DataFrame, by: str = GROUP_COLUMN) -> pd.DataFrame:
    """IMRS user and provider scores as item mean and total, overall and per group (Table 3)."""
    parts = []
    for rater in ("user", "provider"):
        for scale, column in (("item mean", f"imrs_{rater}_item_mean"), ("total", f"imrs_{rater}")):
            part = summarise_continuous(frame, column, by).drop(columns="variable")
            part.insert(0, "scale", scale)
            part.insert(0, "rater", rater)
            parts.append(part)
    return pd.concat(parts, ignore_index=True)


def imrs_agreement(frame: pd.DataFrame, *, alpha: float = 0.05) -> list[Estimate]:
    """User vs provider IMRS totals: Pearson and Spearman correlation and Bland-Altman agreement.

    Correlation measures association, not agreement (Bland & Altman 1986); the limits of
    agreement say how far apart the two raters' totals typically are. Pairs with either score
    missing are left out.
    """
    x, y = frame["imrs_user"].to_numpy(float), frame["imrs_provider"].to_numpy(float)
    label = "imrs_user vs imrs_provider"
    rows = []
    for name, run in (
        ("Pearson correlation", lambda: [ht.pearson_correlation(x, y)]),
        ("Spearman correlation", lambda: [ht.spearman_correlation(x, y)]),
        ("Bland-Altman", lambda: ht.bland_altman(x, y)),
    ):
        try:
            rows.extend(_labelled(e, label, "paired", alpha) for e in run())
        except AnalysisError as error:
            rows.append(_failed_test(label, "paired", name, error))
    return rows


def flag_small_cells(
    table: pd.DataFrame, threshold: int = 5, suppress: bool = False, *, count_column: str = "n"
) -> pd.DataFrame:
    """Mark rows whose count is between 1 and `threshold` - 1; optionally blank their numbers.

    A count of 1-4 (for the default threshold) in a table broken down by service can point to a
    person, so such a row gets `small_cell = True`; with `suppress=True` every numeric column of
    that row (count, denominator, percentage, summary statistics) becomes NaN and `suppressed`
    is True. Zero counts are not flagged (they reveal nobody). Only primary suppression is done:
    a suppressed cell may still be recoverable from margins, which the report must say.
    """
    if count_column not in table.columns:
        raise AnalysisError(f"flag_small_cells needs a {count_column!r} column; the table has {list(table.columns)}.")
    if threshold < 1:
        raise AnalysisError("The small-cell threshold must be a positive count.")
    out = table.copy()
    counts = pd.to_numeric(out[count_column], errors="coerce")
    out["small_cell"] = (counts > 0) & (counts < threshold)
    out["suppressed"] = out["small_cell"] & suppress
    if suppress and out["small_cell"].any():
        numeric = [c for c in out.select_dtypes("number").columns if c not in ("small_cell", "suppressed")]
        out[numeric] = out[numeric].astype(float)
        out.loc[out["small_cell"], numeric] = math.nan
    return out


@dataclass(frozen=True)
class ImplementationResult(ResultMixin):
    """Tables of the implementation analysis plus the settings that made them.

    `tables` holds aggregates only (safe for the report). `plot_data` holds anonymous row-level
    data for the per-participant figures (service type, modules, IMRS pairs; no identifiers); it
    is never written by `to_dict()`.
    """

    tables: dict[str, pd.DataFrame]
    n_participants: int
    alpha: float
    small_cell_threshold: int
    suppress_small_cells: bool
    notes: tuple[str, ...] = ()
    plot_data: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False, compare=False)

    _json_skip = ("plot_data",)  # to_dict(): tables as lists of records (NaN -> None), settings and notes

    def to_frame(self) -> pd.DataFrame:
        """The tables made of Estimate rows (the group comparisons and the user-provider agreement), stacked,
        each row naming its table."""
        frames = [
            frame if "table" in frame.columns else frame.assign(table=name)
            for name, frame in self.tables.items()
            if {"quantity", "estimate"} <= set(frame.columns)
        ]
        if not frames:
            return to_frame([])
        out = pd.concat(frames, ignore_index=True)
        return out[["table", *[c for c in out.columns if c != "table"]]]

    def summary(self) -> str:
        """n, the settings and the tests."""
        return summary_block(
            "Implementation analysis (programme registry)",
            [
                ("participants", self.n_participants),
                ("alpha", self.alpha),
                ("small-cell threshold", self.small_cell_threshold),
                ("small cells suppressed", self.suppress_small_cells),
            ],
            self.to_frame(),
            self.notes,
        )


def _flag_agreement(agreement: pd.DataFrame, threshold: int, suppress: bool) -> pd.DataFrame:
    """User-provider agreement on fewer than `threshold` pairs describes a few people: a small cell.

    Rows that were not tested carry no `n` and are never small; a suppressed row loses its numbers
    and its significance label.
    """
    if "n" not in agreement.columns:
        return agreement.assign(small_cell=False, suppressed=False)
    out = flag_small_cells(agreement, threshold, suppress)
    out["significant"] = out["significant"].astype(object).where(~out["suppressed"], None)
    return out


def _tests_frame(estimates: list[Estimate], table: str) -> pd.DataFrame:
    frame = to_frame(estimates)
    frame.insert(0, "table", table)
    return frame


def analyse_programme(
    programme: pd.DataFrame,
    *,
    alpha: float = 0.05,
    small_cell_threshold: int = 5,
    suppress_small_cells: bool = False,
    seed=None,
) -> ImplementationResult:
    """Tables 1-3 of the Ferrara implementation study for a programme registry.

    Groups are service types (CMHC, SerD, EDP). Categorical variables get chi-square or, when an
    expected count is under 5, Fisher's exact test; continuous ones Welch t and Mann-Whitney U
    for two groups, one-way ANOVA and Kruskal-Wallis for more (two-sided, level `alpha`; the
    Ferrara study's "0.5" is a slip for 0.05). `seed` is used only if an r x c Fisher test is too large
    to enumerate exactly (a Monte Carlo p, stated in its method); without it that raises.
    """
    if not 0 < alpha < 1:
        raise AnalysisError(f"alpha must lie strictly between 0 and 1, got {alpha}.")
    frame = derive_programme_variables(programme)
    flag = lambda t: flag_small_cells(t, small_cell_threshold, suppress_small_cells)  # noqa: E731
    cat = lambda vs: pd.concat([summarise_categorical(frame, v) for v in vs], ignore_index=True)  # noqa: E731
    cont = lambda vs: pd.concat([summarise_continuous(frame, v) for v in vs], ignore_index=True)  # noqa: E731
    demo_tests = [compare_categorical(frame, v, alpha=alpha, seed=seed) for v in CATEGORICAL_DEMOGRAPHICS]
    demo_tests += [e for v in CONTINUOUS_DEMOGRAPHICS for e in compare_continuous(frame, v, alpha=alpha)]
    delivery_tests = [compare_categorical(frame, v, alpha=alpha, seed=seed) for v in CATEGORICAL_DELIVERY]
    delivery_tests += [e for v in CONTINUOUS_DELIVERY for e in compare_continuous(frame, v, alpha=alpha)]
    module_tests = [compare_categorical(frame, m, alpha=alpha, seed=seed) for m in MODULES]
    imrs_tests = [e for v in ("imrs_user", "imrs_provider") for e in compare_continuous(frame, v, alpha=alpha)]
    tables = {
        "services": flag(service_count_table(frame)),
        "demographics_categorical": flag(cat(CATEGORICAL_DEMOGRAPHICS)),
        "demographics_continuous": flag(cont(CONTINUOUS_DEMOGRAPHICS)),
        "delivery_categorical": flag(cat(CATEGORICAL_DELIVERY)),
        "delivery_continuous": flag(cont(CONTINUOUS_DELIVERY)),
        "module_share": flag(module_share_table(frame)),
        "imrs_summary": flag(imrs_summary_table(frame)),
        "imrs_agreement": _flag_agreement(
            to_frame(imrs_agreement(frame, alpha=alpha)), small_cell_threshold, suppress_small_cells
        ),
        "tests": pd.concat(
            [
                _tests_frame(demo_tests, "demographics"),
                _tests_frame(delivery_tests, "delivery"),
                _tests_frame(module_tests, "module_share"),
                _tests_frame(imrs_tests, "imrs"),
            ],
            ignore_index=True,
        ),
    }
    notes = (
        f"Two-sided tests at alpha = {alpha:g}.",
        "Categorical: chi-square (Yates-corrected for 2x2, as R) unless an expected count is < 5, "
        "then Fisher's exact test.",
        "Continuous: Welch t and Mann-Whitney U for two groups; one-way ANOVA and Kruskal-Wallis for more.",
        f"Counts of 1-{small_cell_threshold - 1} are flagged" + (" and suppressed." if suppress_small_cells else "."),
    )
    order = frame.assign(_g=frame[GROUP_COLUMN].map({g: i for i, g in enumerate(SERVICE_TYPES)}))
    order = order.sort_values(["_g", "modules_received", *MODULES], ascending=[True, False, *[False] * 11])
    plot_data = {
        "modules": order[[GROUP_COLUMN, *MODULES]].reset_index(drop=True),
        "imrs_pairs": frame[["imrs_user", "imrs_provider"]].dropna().reset_index(drop=True),
    }
    return ImplementationResult(tables, len(frame), alpha, small_cell_threshold, suppress_small_cells, notes, plot_data)


def module_stack(modules: pd.DataFrame) -> np.ndarray:
    """(11, n) array: column i lists participant i's modules received (0-based module index) from the bottom up.

    Levels above the number of modules received are NaN. This is the stacked bar of Fig. 1 as an image.
    """
    received = modules[list(MODULES)].to_numpy(bool)
    stack = np.full((len(MODULES), len(modules)), np.nan)
    for i, row in enumerate(received):
        codes = np.flatnonzero(row)
        stack[: codes.size, i] = codes
    return stack


def plot_modules_per_participant(modules: pd.DataFrame):
    """Fig. 1: one stacked bar per participant, one coloured block per module received, grouped by service.

    Drawn as a single image of `module_stack` (not 11 x n bar patches): the same picture, rendered in a
    fraction of the time for registries of hundreds of participants.
    """
    import matplotlib
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    fig, ax = new_figure(max(6.0, 0.06 * len(modules) + 2), 4.5, layout="constrained")
    colours = matplotlib.colormaps["tab20"].colors[: len(MODULES)]
    cmap = ListedColormap(colours).with_extremes(bad=(0.0, 0.0, 0.0, 0.0))
    n = len(modules)
    ax.imshow(
        module_stack(modules),
        cmap=cmap,
        vmin=-0.5,
        vmax=len(MODULES) - 0.5,
        origin="lower",
        aspect="auto",
        interpolation="nearest",
        extent=(-0.5, n - 0.5, 0, len(MODULES)),
    )
    if n <= 400:  # thin white gaps so that single bars stay visible
        ax.vlines(np.arange(n - 1) + 0.5, 0, len(MODULES), colors="white", linewidth=0.4)
    handles = [Patch(color=colours[k], label=f"M{k + 1} {MODULE_NAMES[m]}") for k, m in enumerate(MODULES)]
    groups = modules[GROUP_COLUMN].to_numpy()
    edges = [i for i in range(1, len(groups)) if groups[i] != groups[i - 1]]
    for edge in edges:
        ax.axvline(edge - 0.5, color="black", linewidth=0.8)
    starts, ends = [0, *edges], [*edges, len(groups)]
    ax.set_xticks(
        [(a + b - 1) / 2 for a, b in zip(starts, ends)], [f"{groups[a]} (n = {b - a})" for a, b in zip(starts, ends)]
    )
    ax.set_xlim(-0.5, len(groups) - 0.5)
    ax.set_ylim(0, len(MODULES))
    ax.set_ylabel("modules received")
    ax.set_title("IMR modules received per participant, by service", fontsize=FONT["title"])
    legend_outside(ax, where="right", handles=handles)
    return fig


def plot_module_heatmap(module_share: pd.DataFrame):
    """Module x service heat map of the % of participants receiving each module (suppressed cells blank)."""
    wide = module_share.pivot(index="module", columns="group", values="pct")
    wide = wide[[c for c in [*SERVICE_TYPES, OVERALL] if c in wide.columns]].reindex(list(MODULES))
    fig, ax = new_figure(5.5, 5.0, layout="constrained")
    image = ax.imshow(wide.to_numpy(float), cmap="viridis", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(wide.shape[1]), wide.columns)
    ax.set_yticks(
        range(len(MODULES)), [f"M{k + 1} {MODULE_NAMES[m]}"[:34] for k, m in enumerate(MODULES)], fontsize=FONT["tick"]
    )
    for (i, j), value in np.ndenumerate(wide.to_numpy(float)):
        ax.text(
            j,
            i,
            "-" if np.isnan(value) else f"{value:.0f}",
            ha="center",
            va="center",
            fontsize=FONT["text"],
            color="white" if not np.isnan(value) and value < 60 else "black",
        )
    fig.colorbar(image, ax=ax, label="% of participants")
    ax.set_title("Share of participants receiving each module", fontsize=FONT["title"])
    return fig


def plot_bland_altman(pairs: pd.DataFrame, agreement: pd.DataFrame):
    """Bland-Altman plot of IMRS totals (user - provider vs their mean) with bias, limits and their CIs."""
    fig, ax = new_figure(5.5, 4.5, layout="constrained")
    user, provider = pairs["imrs_user"].to_numpy(float), pairs["imrs_provider"].to_numpy(float)
    ax.scatter((user + provider) / 2, user - provider, s=14, alpha=0.7, color=PALETTE["estimate"])
    rows = agreement[agreement["test"] == "Bland-Altman"].set_index("quantity")
    for quantity, style, name in (
        ("bias (x - y)", "-", "bias"),
        ("lower limit of agreement", "--", "lower LoA"),
        ("upper limit of agreement", "--", "upper LoA"),
    ):
        if quantity in rows.index:
            row = rows.loc[quantity]
            ax.axhline(row["estimate"], color=PALETTE["ink"], linestyle=style, linewidth=1)
            ax.axhspan(row["ci_low"], row["ci_high"], color=PALETTE["band"], linewidth=0, zorder=0)  # under the points
            ax.annotate(  # a direct label beside the line, outside the data area
                f" {name} {row['estimate']:.1f}",
                xy=(1.0, row["estimate"]),
                xycoords=("axes fraction", "data"),
                fontsize=FONT["text"],
                va="center",
            )
    ax.set_xlabel("mean of user and provider IMRS total")
    ax.set_ylabel("user - provider IMRS total")
    ax.set_title("IMRS user vs provider: bias and 95% limits (shaded: CIs)", fontsize=FONT["title"])
    return fig


def implementation_figures(result_or_frame) -> dict:
    """Figures for the implementation report from an ImplementationResult or a programme table.

    Returns {"modules_per_participant", "module_heatmap", "bland_altman"} -> matplotlib Figure
    (Agg canvas; save with fig.savefig). The per-participant figure shows anonymous rows only.
    """
    result = result_or_frame
    if isinstance(result_or_frame, pd.DataFrame):
        result = analyse_programme(result_or_frame)
    if not isinstance(result, ImplementationResult):
        raise AnalysisError("implementation_figures takes an ImplementationResult or a programme DataFrame.")
    figures = {
        "modules_per_participant": plot_modules_per_participant(result.plot_data["modules"]),
        "module_heatmap": plot_module_heatmap(result.tables["module_share"]),
    }
    agreement = result.tables["imrs_agreement"]
    bias = agreement[agreement["quantity"] == "bias (x - y)"]
    if not bias.empty and not bias["suppressed"].any():
        figures["bland_altman"] = plot_bland_altman(result.plot_data["imrs_pairs"], agreement)
    return figures
