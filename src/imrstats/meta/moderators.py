"""Meta-regression and subgroup analysis, as R's metafor ``rma(yi, vi, mods = ~ ...)``, ``permutest`` and RevMan.

``rma_mods(yi, vi, mods, data=...)`` fits a mixed-effects meta-regression (Viechtbauer 2010, J Stat Softw 36(3);
Thompson & Higgins 2002, Stat Med 21:1559-1573): continuous and categorical moderators, the same tau^2
estimators as ``imrstats.meta.random_effects.rma`` (REML, ML, DL, PM; EE for an equal-effects model) through
its public ``fit_design``, Wald z or Knapp & Hartung (2003) t(k - p) tests, the omnibus QM test of the
moderators (chi-square(m), or F(m, k - p) under Knapp-Hartung: QM / m), the residual heterogeneity QE on
k - p df, I^2 and H^2 of the residual heterogeneity, and metafor's pseudo-R^2 (Raudenbush 2009: the relative
reduction of tau^2 against the intercept-only model fitted by the same method, truncated at 0, in %). The
result answers ``predict(newmods)`` (CI and prediction interval), ``confint()`` (Q-profile CI for the
residual tau^2, Viechtbauer 2007) and ``summary()``.

``permutest(res, iterations=..., seed=...)`` is metafor's permutation test of the moderators (Higgins &
Thompson 2004, Stat Med 23:1663-1682): the rows of the model matrix are permuted against the effects, the model
is refitted, and each p-value is the share of permutations whose |statistic| (or QM) reaches the observed
one, the observed arrangement counted as the first. When the number of distinct permutations is at most
``iterations`` every one is fitted (an exact test), as metafor does.

``subgroups(yi, vi, groups)`` pools each subgroup on its own (its own tau^2, as RevMan 5 does) and tests
for subgroup differences both ways: RevMan's Q-between of the separately pooled estimates (an
inverse-variance test on G - 1 df, with its I^2; Borenstein & Higgins 2013, Prev Sci 14:134-143), and the
mixed-effects moderator test (the subgroup as a categorical moderator with one common tau^2: QM).

The model matrix comes from a data frame and a formula such as ``"ablat + year"`` or ``"alloc"``: a numeric
column is a continuous moderator, any other column (or ``factor(x)``) a categorical one, coded against its
first level (R's default treatment contrasts; levels in the order of a pandas Categorical, else sorted,
``reference`` picks another first level). An intercept is included unless the formula says ``- 1`` or
``0 +``; without it the first categorical moderator gets one indicator per level, as R does.

Departures from metafor, on purpose: missing moderator values, a constant moderator and collinear moderators
raise errors naming the column instead of studies or predictors being dropped with a warning; k must exceed
the number of coefficients; interactions and transformations in the formula (``a:b``, ``I(x^2)``) are not
parsed (build the column in the data frame); in a model through the origin with continuous moderators only,
y is not centred for tau^2 and QE (metafor 3.8 centres it; see ``imrstats.meta.random_effects``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from imrstats.errors import AnalysisError, InputError, SettingsError
from imrstats.meta.random_effects import check_effects, estimate_tau2, fit_design, q_profile_tau2, rma
from imrstats.results import Estimate, ResultMixin, summary_block, to_frame

_EQUAL = ("EE", "FE")
DEFAULT_CONTROL = {"threshold": 1e-5, "maxiter": 100}  # metafor's rma.uni control defaults
_COMPTOL = np.finfo(float).eps ** 0.5  # metafor permutest: statistics within this of the observed count as ties
MAX_EXACT_PERMUTATIONS = 200_000  # an exact test needing more fits is refused (use the approximate test)
_FACTOR = re.compile(r"^(?:factor|as\.factor|C)\(\s*(.+?)\s*\)$")
_NAME = re.compile(r"^(?:`([^`]+)`|([A-Za-z_.][A-Za-z0-9_.]*))$")


# ---------------------------------------------------------------------------------------------
# The model matrix


@dataclass(frozen=True)
class Moderator:
    """One moderator of the model: its data column, ``kind`` ("continuous" or "categorical"), and for a
    categorical one all its ``levels`` (the first is the reference unless ``coded`` holds every level)
    and the ``coded`` levels, one indicator column each."""

    name: str
    kind: str
    levels: tuple[str, ...] = ()
    coded: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        """The model-matrix column names this moderator gives: ``name`` or ``name[level]`` per coded level."""
        if self.kind == "continuous":
            return (self.name,)
        return tuple(f"{self.name}[{level}]" for level in self.coded)

    def encode(self, values: pd.Series, where: str = "data") -> np.ndarray:
        """The moderator's columns for ``values`` (one per study or new row)."""
        if self.kind == "continuous":
            numeric = pd.to_numeric(values, errors="coerce")
            bad = (numeric.isna() & values.notna()) | ~np.isfinite(numeric.fillna(0.0))
            if bad.any():
                first = values[bad].iloc[0]
                raise InputError(
                    f"{where}: column '{self.name}': {first!r} is not a finite number (a continuous moderator)"
                )
            return numeric.to_numpy(float)[:, None]
        text = values.map(level_label)
        unknown = sorted(set(text) - set(self.levels))
        if unknown:
            raise InputError(
                f"{where}: column '{self.name}': level(s) {unknown} not among the fitted levels {list(self.levels)}"
            )
        return np.column_stack([(text == level).to_numpy(float) for level in self.coded])


@dataclass(frozen=True)
class Design:
    """A model matrix and how it was built: ``formula`` (normalised), ``intercept``, the ``moderators`` in
    order, the coefficient names ``terms`` and the k x p ``matrix``."""

    formula: str
    intercept: bool
    moderators: tuple[Moderator, ...]
    terms: tuple[str, ...]
    matrix: np.ndarray = field(repr=False)

    def encode(self, newdata: pd.DataFrame, where: str = "newmods") -> np.ndarray:
        """The model-matrix rows (intercept included) for new moderator values (one column per moderator)."""
        missing = [m.name for m in self.moderators if m.name not in newdata.columns]
        if missing:
            raise InputError(f"{where}: missing moderator column(s) {missing}; the model has {self.names}")
        n = len(newdata)
        blocks = [np.ones((n, 1))] if self.intercept else []
        for m in self.moderators:
            column = newdata[m.name].reset_index(drop=True)
            if column.isna().any():
                raise InputError(
                    f"{where}: column '{m.name}', row {int(column.isna().to_numpy().argmax()) + 1}: missing"
                )
            blocks.append(m.encode(column, where))
        return np.column_stack(blocks) if blocks else np.empty((n, 0))

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.moderators]


def parse_formula(formula: str) -> tuple[list[tuple[str, bool]], bool]:
    """A moderator formula (``"~ ablat + year"``, ``"alloc"``, ``"factor(alloc) - 1"``, ``"0 + alloc"``) ->
    ([(column, forced categorical)], intercept). Terms are column names (backticks for other names) or
    ``factor(name)``; ``- 1`` / ``+ 0`` / ``0 +`` drop the intercept, ``1`` keeps it. Anything else is a
    ``SettingsError`` naming the term."""
    text = str(formula).strip()
    if "~" in text:
        left, _, text = text.partition("~")
        if left.strip():
            raise SettingsError(
                [("mods", f"give only the right-hand side of the formula (no {left.strip()!r} ~); got {formula!r}")]
            )
    text = text.strip()
    if not text:
        raise SettingsError([("mods", f"the formula names no moderator; got {formula!r}")])
    pieces = re.findall(r"([+-]?)\s*([^+-]+)", text)
    if "".join(sign + body for sign, body in pieces).replace(" ", "") != text.replace(" ", ""):
        raise SettingsError([("mods", f"cannot read the formula {formula!r}: terms joined by + (and - 1)")])
    intercept = True
    terms: list[tuple[str, bool]] = []
    for sign, body in pieces:
        body = body.strip()
        if body in ("0", "1"):
            if body == "0":
                intercept = sign == "-"  # "+ 0" / "0 +" drop the intercept, "- 0" keeps it (R's rule)
            else:
                intercept = sign != "-"
            continue
        if sign == "-":
            raise SettingsError(
                [("mods", f"removing the term {body!r} is not supported (only '- 1'); got {formula!r}")]
            )
        forced = False
        factor = _FACTOR.match(body)
        if factor:
            body, forced = factor.group(1).strip(), True
        name = _NAME.match(body)
        if not name:
            raise SettingsError(
                [
                    (
                        "mods",
                        f"term {body!r} is not a column name or factor(name): interactions and transformations are "
                        "not parsed; add the derived column to the data and name it",
                    )
                ]
            )
        column = name.group(1) or name.group(2)
        if all(column != c for c, _ in terms):
            terms.append((column, forced))
    if not terms:
        raise SettingsError([("mods", f"the formula names no moderator; got {formula!r} (use rma for intercept-only)")])
    return terms, intercept


def level_label(value) -> str:
    """A category's label: the value as text, a whole-number float without its ".0" (2009.0 -> "2009")."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _levels(column: pd.Series, reference: str | None, name: str) -> tuple[str, ...]:
    """The levels present, in the order of a pandas Categorical, else sorted as R's ``factor`` sorts them:
    numbers by value, text by character code (R sorts text in the locale's collation: the same for labels
    of one letter case); ``reference`` first."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        present = set(column.map(level_label))
        levels = [level_label(c) for c in column.cat.categories if level_label(c) in present]
    else:
        uniques = list(pd.unique(column))
        try:
            ordered = sorted(uniques)
        except TypeError:  # mixed types: by label
            ordered = sorted(uniques, key=level_label)
        levels = list(dict.fromkeys(level_label(u) for u in ordered))
    if reference is not None:
        ref = level_label(reference)
        if ref not in levels:
            raise InputError(f"reference level {reference!r} of moderator '{name}' is not among its levels {levels}")
        levels.remove(ref)
        levels.insert(0, ref)
    return tuple(levels)


def build_design(
    data: pd.DataFrame,
    formula: str | None = None,
    *,
    intercept: bool = True,
    reference: Mapping[str, str] | None = None,
    labels: Sequence[str] | None = None,
) -> Design:
    """The model matrix of the moderators in ``data`` named by ``formula`` (all columns, with an intercept
    unless ``intercept=False``, when ``formula`` is None). A numeric column is continuous; any other, or
    ``factor(name)``, categorical with treatment coding against its first level (``reference`` maps a
    column to another first level); without an intercept the first categorical moderator gets every level.
    Missing values are an ``InputError``; a constant or collinear moderator an ``AnalysisError`` naming it.
    ``labels`` name the studies in messages."""
    if not isinstance(data, pd.DataFrame):
        raise InputError(f"moderators: expected a data frame; got {type(data).__name__}")
    if formula is None:
        terms = [(str(c), False) for c in data.columns]
        text = " + ".join(str(c) for c in data.columns) + ("" if intercept else " - 1")
        if not terms:
            raise InputError("moderators: the data frame has no columns")
    else:
        terms, intercept = parse_formula(formula)
        text = " + ".join(f"factor({c})" if forced else c for c, forced in terms) + ("" if intercept else " - 1")
    missing = [c for c, _ in terms if c not in data.columns]
    if missing:
        raise InputError(
            f"moderators: column(s) {missing} not in the data; its columns are {list(map(str, data.columns))}"
        )
    reference = dict(reference or {})
    unknown = sorted(set(reference) - {c for c, _ in terms})
    if unknown:
        raise InputError(f"reference: {unknown} are not moderators of the model {text!r}")
    k = len(data)
    names = (
        [str(s) for s in labels] if labels is not None and len(labels) == k else [f"Study {i + 1}" for i in range(k)]
    )
    moderators: list[Moderator] = []
    blocks = [np.ones((k, 1))] if intercept else []
    full_coding_used = intercept
    for column, forced in terms:
        values = data[column].reset_index(drop=True)
        na = values.isna().to_numpy()
        if na.any():
            which = ", ".join(repr(names[i]) for i in np.flatnonzero(na))
            raise InputError(
                f"moderator '{column}': missing in {which}; drop those studies or fill the value (metafor would drop "
                "them silently)"
            )
        numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        if numeric and not forced:
            x = values.to_numpy(float)
            if not np.all(np.isfinite(x)):
                raise InputError(f"moderator '{column}': infinite value in {names[int(np.argmax(~np.isfinite(x)))]!r}")
            if np.ptp(x) == 0:
                raise AnalysisError(
                    f"moderator '{column}' is constant across the {k} studies (all {x[0]:g}): its effect cannot be "
                    "separated from the intercept; drop it from the model"
                )
            moderators.append(Moderator(column, "continuous"))
            blocks.append(x[:, None])
            continue
        levels = _levels(values, reference.get(column), column)
        if len(levels) < 2:
            raise AnalysisError(
                f"moderator '{column}' takes one value ({levels[0]!r}) in all {k} studies: a categorical moderator "
                "needs at least two levels; drop it from the model"
            )
        coded = levels if not full_coding_used else levels[1:]
        full_coding_used = True
        moderator = Moderator(column, "categorical", levels, coded)
        moderators.append(moderator)
        blocks.append(moderator.encode(values, "data"))
    X = np.column_stack(blocks)
    term_names = (("intercept",) if intercept else ()) + tuple(c for m in moderators for c in m.columns)
    _check_rank(X, term_names)
    return Design(text, intercept, tuple(moderators), term_names, X)


def _check_rank(X: np.ndarray, terms: Sequence[str]) -> None:
    """The first column that adds nothing to the ones before it, named (metafor drops it with a warning)."""
    for j in range(1, X.shape[1] + 1):
        if np.linalg.matrix_rank(X[:, :j]) < j:
            before = ", ".join(terms[: j - 1]) or "nothing"
            raise AnalysisError(
                f"moderator column '{terms[j - 1]}' is a linear combination of the columns before it ({before}): "
                "the model matrix is not of full rank; drop or recode one of those moderators"
            )


def _as_design(mods, data, k: int, reference, labels, intercept: bool) -> Design:
    if isinstance(mods, str):
        if data is None:
            raise SettingsError([("mods", f"a formula ({mods!r}) needs the data frame holding its columns (data=)")])
        if not intercept:
            raise SettingsError([("mods", f"say '- 1' in the formula to drop the intercept; got {mods!r}")])
        if len(data) != k:
            raise InputError(f"data has {len(data)} rows for {k} effects")
        return build_design(data, mods, reference=reference, labels=labels)
    if isinstance(mods, pd.Series):
        mods = mods.to_frame(name=str(mods.name) if mods.name is not None else "x1")
    if not isinstance(mods, pd.DataFrame):
        matrix = np.asarray(mods, dtype=float)
        if matrix.ndim == 1:
            matrix = matrix[:, None]
        if matrix.ndim != 2:
            raise InputError(f"mods: expected a data frame, a formula or a k x m matrix; got shape {matrix.shape}")
        mods = pd.DataFrame(matrix, columns=[f"x{j + 1}" for j in range(matrix.shape[1])])
    if len(mods) != k:
        raise InputError(f"mods has {len(mods)} rows for {k} effects")
    return build_design(mods.reset_index(drop=True), None, intercept=intercept, reference=reference, labels=labels)


def _control(control: Mapping[str, Any] | None) -> dict:
    out = dict(DEFAULT_CONTROL)
    for key, value in dict(control or {}).items():
        if key not in out:
            raise SettingsError([(f"control.{key}", f"unknown entry; use {sorted(out)} (metafor's names)")])
        out[key] = value
    threshold, maxiter = out["threshold"], out["maxiter"]
    if not (isinstance(threshold, (int, float)) and not isinstance(threshold, bool) and 0 < threshold < 1):
        raise SettingsError([("control.threshold", f"must be a number in (0, 1), got {threshold!r}")])
    if not (isinstance(maxiter, (int, np.integer)) and not isinstance(maxiter, bool) and maxiter >= 1):
        raise SettingsError([("control.maxiter", f"must be an integer >= 1, got {maxiter!r}")])
    return {"threshold": float(threshold), "maxiter": int(maxiter)}


def _column(value, data: pd.DataFrame | None, what: str):
    """``value`` itself, or the column of ``data`` it names."""
    if isinstance(value, str):
        if data is None or value not in data.columns:
            raise InputError(
                f"{what}: column {value!r} not found" + ("" if data is None else f" in {list(data.columns)}")
            )
        return data[value].to_numpy()
    return value


# ---------------------------------------------------------------------------------------------
# The fitted model


@dataclass(frozen=True)
class ModeratorResult(ResultMixin):
    """A fitted meta-regression (metafor's ``rma.uni`` with ``mods``). Per coefficient (``terms``): ``beta``,
    ``se``, ``statistic`` (z, or t under Knapp-Hartung), ``pval``, ``ci_low``, ``ci_high``; ``vcov`` is their
    covariance matrix. ``df`` is k - p under Knapp-Hartung, else NaN. ``tau2`` is the residual heterogeneity;
    ``qe`` / ``qe_df`` / ``qe_p`` its test; ``i2`` (%) and ``h2`` as metafor defines them for the residual
    heterogeneity; ``qm`` (chi-square, or F = Wald / m under Knapp-Hartung) on ``qm_df`` = (m, k - p or NaN)
    tests the coefficients ``btt`` (all but the intercept); ``r2`` (%) is the pseudo-R^2 against ``tau2_null``
    (NaN without an intercept, as metafor gives none)."""

    yi: tuple[float, ...]
    vi: tuple[float, ...]
    slab: tuple[str, ...]
    method: str
    knha: bool
    level: float
    k: int
    formula: str
    intercept: bool
    moderators: tuple[Moderator, ...]
    terms: tuple[str, ...]
    X: tuple[tuple[float, ...], ...]
    beta: tuple[float, ...]
    se: tuple[float, ...]
    statistic: tuple[float, ...]
    pval: tuple[float, ...]
    ci_low: tuple[float, ...]
    ci_high: tuple[float, ...]
    vcov: tuple[tuple[float, ...], ...]
    df: float
    tau2: float
    se_tau2: float
    i2: float
    h2: float
    vt: float
    qe: float
    qe_df: int
    qe_p: float
    qm: float
    qm_df: tuple[int, float]
    qm_p: float
    btt: tuple[int, ...]
    r2: float
    tau2_null: float
    s2w: float
    iterations: int
    control: dict
    notes: tuple[str, ...] = ()

    _json_skip = ("yi", "vi", "slab", "X", "notes")

    # -- descriptions --------------------------------------------------------------------------
    @property
    def p(self) -> int:
        """The number of coefficients."""
        return len(self.terms)

    @property
    def model_name(self) -> str:
        if self.method in _EQUAL:
            return "Equal-effects meta-regression (fixed-effects with moderators)"
        return "Mixed-effects meta-regression (random effects with moderators)"

    @property
    def test_name(self) -> str:
        return f"Knapp-Hartung t({self.k - self.p})" if self.knha else "Wald z"

    @property
    def method_label(self) -> str:
        if self.method in _EQUAL:
            model = "meta-regression, equal effects (inverse variance)"
        else:
            model = f"meta-regression, residual tau^2 by {self.method}"
        return f"{model}; {self.test_name}; mods = {self.formula}"

    @property
    def qm_name(self) -> str:
        m, df2 = self.qm_df
        return f"F({m}, {df2:g})" if self.knha else f"chi-square({m})"

    # -- result rows ---------------------------------------------------------------------------
    def coefficients(self) -> pd.DataFrame:
        """One row per coefficient (column ``term``): estimate, se, CI, df, z or t, p."""
        return to_frame(self._coefficient_rows())

    def _coefficient_rows(self) -> list[Estimate]:
        notes = "; ".join(self.notes)
        return [
            Estimate(
                f"coefficient: {term}",
                self.beta[j],
                self.se[j],
                self.ci_low[j],
                self.ci_high[j],
                self.df,
                self.statistic[j],
                self.pval[j],
                self.method_label,
                notes,
                {"term": term, "k": self.k},
            )
            for j, term in enumerate(self.terms)
        ]

    def estimates(self) -> list[Estimate]:
        """Rows: each coefficient, the residual tau^2, tau, I^2 (%), H^2, the pseudo-R^2 (%), QE and QM."""
        notes = "; ".join(self.notes)
        re = self.method not in _EQUAL
        m, df2 = self.qm_df
        extra = {"k": self.k}
        return self._coefficient_rows() + [
            Estimate(
                "tau^2 (residual)",
                self.tau2 if re else math.nan,
                self.se_tau2 if re else math.nan,
                method=f"{self.method} estimator" if re else "not estimated",
                notes=notes,
                extra=extra,
            ),
            Estimate(
                "tau (residual)",
                math.sqrt(self.tau2) if re else math.nan,
                method=f"{self.method} estimator" if re else "not estimated",
                notes=notes,
                extra=extra,
            ),
            Estimate(
                "I^2 (%) (residual)",
                self.i2,
                method="100 tau^2 / (tau^2 + typical within-study variance)" if re else "100 (QE - df) / QE",
                notes=notes,
                extra=extra,
            ),
            Estimate(
                "H^2 (residual)",
                self.h2,
                method="tau^2 / typical within-study variance + 1" if re else "QE / df",
                notes=notes,
                extra=extra,
            ),
            Estimate(
                "R^2 (%)",
                self.r2,
                method=(
                    "100 max(0, (tau^2 intercept-only - tau^2) / tau^2 intercept-only)"
                    if re
                    else "100 max(0, adjusted R^2 of the weighted regression)"
                ),
                notes=notes if self.intercept else "no intercept: no R^2 (as metafor)",
                extra={**extra, "tau2_null": self.tau2_null},
            ),
            Estimate(
                "QE (residual heterogeneity)",
                self.qe,
                df=float(self.qe_df),
                statistic=self.qe,
                p=self.qe_p,
                method=f"Cochran's Q of the residuals, chi-square(k - p = {self.qe_df})",
                notes=notes,
                extra=extra,
            ),
            Estimate(
                "QM (moderators)",
                self.qm,
                df=float(m),
                statistic=self.qm,
                p=self.qm_p,
                method=f"omnibus test of {', '.join(self.terms[j] for j in self.btt)}: {self.qm_name}",
                notes=notes,
                extra={**extra, "df2": df2},
            ),
        ]

    def to_frame(self) -> pd.DataFrame:
        return to_frame(self.estimates())

    def _json_extra(self) -> dict:
        return {
            "yi": self.yi,
            "vi": self.vi,
            "slab": self.slab,
            "notes": self.notes,
            "model": self.model_name,
            "method_label": self.method_label,
            "estimates": self.estimates(),
        }

    # -- follow-ups ----------------------------------------------------------------------------
    def design_rows(self, newmods) -> np.ndarray:
        """Model-matrix rows (intercept included) for ``newmods``: a data frame or dict of moderator values
        (one column per moderator; categories by level), or, as metafor's ``newmods``, a matrix (or a vector
        for one coded column) of the coded columns without the intercept."""
        if isinstance(newmods, Mapping):
            newmods = pd.DataFrame({key: np.atleast_1d(value) for key, value in newmods.items()})
        if isinstance(newmods, pd.DataFrame):
            design = Design(self.formula, self.intercept, self.moderators, self.terms, np.asarray(self.X))
            return design.encode(newmods)
        matrix = np.asarray(newmods, dtype=float)
        coded = self.p - int(self.intercept)
        if matrix.ndim <= 1:
            matrix = matrix.reshape(-1, 1) if coded == 1 else matrix.reshape(1, -1)
        if matrix.ndim != 2 or matrix.shape[1] != coded:
            raise InputError(
                f"newmods: expected {coded} value(s) per row for {list(self.terms[int(self.intercept) :])}; "
                f"got shape {matrix.shape}"
            )
        if not np.all(np.isfinite(matrix)):
            raise InputError("newmods: values must be finite numbers")
        return np.column_stack([np.ones(len(matrix)), matrix]) if self.intercept else matrix

    def predict(self, newmods=None, *, level: float | None = None) -> pd.DataFrame:
        """Predicted (average true) effects at ``newmods`` (see ``design_rows``; None: at each study's own
        moderator values, the fitted values) with CI and the prediction interval for a new study's true
        effect: pred +/- crit sqrt(se^2 + tau^2), crit from t(k - p) under Knapp-Hartung, else normal (metafor
        ``predict.rma``, default ``pi.type``). The moderator values are returned beside the predictions."""
        level = self.level if level is None else level
        if not 0 < level < 1:
            raise InputError(f"level is a coverage probability in (0, 1); got {level!r}")
        X_new = np.asarray(self.X) if newmods is None else self.design_rows(newmods)
        beta, vcov = np.asarray(self.beta), np.asarray(self.vcov)
        pred = X_new @ beta
        var = np.einsum("ij,jk,ik->i", X_new, vcov, X_new)
        se = np.sqrt(np.clip(var, 0.0, None))
        alpha = 1 - level
        crit = float(stats.t.isf(alpha / 2, self.df)) if self.knha else float(stats.norm.isf(alpha / 2))
        tau2 = 0.0 if self.method in _EQUAL else self.tau2
        half_pi = crit * np.sqrt(se**2 + tau2)
        frame = pd.DataFrame(X_new[:, int(self.intercept) :], columns=list(self.terms[int(self.intercept) :]))
        if isinstance(newmods, (pd.DataFrame, Mapping)):
            given = newmods if isinstance(newmods, pd.DataFrame) else pd.DataFrame(newmods)
            frame = given[[m.name for m in self.moderators]].reset_index(drop=True)
        elif newmods is None:
            frame.insert(0, "study", list(self.slab))
        out = pd.DataFrame(
            {
                "quantity": "predicted effect",
                "estimate": pred,
                "se": se,
                "ci_low": pred - crit * se,
                "ci_high": pred + crit * se,
                "df": self.df,
                "pi_low": pred - half_pi,
                "pi_high": pred + half_pi,
                "method": self.method_label + "; PI = pred +/- crit sqrt(se^2 + tau^2)",
            }
        )
        return pd.concat([frame.reset_index(drop=True), out], axis=1)

    def confint(self) -> pd.DataFrame:
        """Q-profile CI for the residual tau^2, tau, I^2 (%) and H^2 (Viechtbauer 2007; metafor
        ``confint.rma.uni``): the generalised Q of the model's residuals against chi-square(k - p)."""
        if self.method in _EQUAL:
            raise AnalysisError("An equal-effects model has no tau^2; fit a random-effects model for its CI.")
        lb, ub, notes = q_profile_tau2(self.yi, self.vi, np.asarray(self.X), self.tau2, self.level)
        method = f"Q-profile (Viechtbauer 2007), chi-square({self.qe_df}) quantiles of the residual Q"
        note = "; ".join(notes)
        vt = self.vt
        return to_frame(
            [
                Estimate("tau^2 (residual)", self.tau2, ci_low=lb, ci_high=ub, method=method, notes=note),
                Estimate(
                    "tau (residual)",
                    math.sqrt(self.tau2),
                    ci_low=math.sqrt(lb),
                    ci_high=math.sqrt(ub),
                    method=method,
                    notes=note,
                ),
                Estimate(
                    "I^2 (%) (residual)",
                    self.i2,
                    ci_low=100 * lb / (vt + lb),
                    ci_high=100 * ub / (vt + ub),
                    method=method,
                    notes=note,
                ),
                Estimate("H^2 (residual)", self.h2, ci_low=lb / vt + 1, ci_high=ub / vt + 1, method=method, notes=note),
            ]
        )

    def summary(self) -> str:
        """A metafor-like printout: the model, residual heterogeneity, QE, QM and the coefficients."""
        re = self.method not in _EQUAL
        facts: list[tuple[str, Any]] = [("k", self.k), ("moderators", self.formula)]
        if re:
            facts += [
                ("tau^2 (estimated amount of residual heterogeneity)", f"{self.tau2:.4f} (SE = {self.se_tau2:.4f})"),
                ("tau (square root of estimated tau^2 value)", f"{math.sqrt(self.tau2):.4f}"),
            ]
        facts += [
            ("I^2 (residual heterogeneity / unaccounted variability)", f"{self.i2:.2f}%"),
            ("H^2 (unaccounted variability / sampling variability)", f"{self.h2:.2f}"),
        ]
        if not math.isnan(self.r2):
            facts.append(("R^2 (amount of heterogeneity accounted for)", f"{self.r2:.2f}%"))
        facts += [
            ("Test for residual heterogeneity", f"QE(df = {self.qe_df}) = {self.qe:.4f}, p-val {_p_text(self.qe_p)}"),
            (
                f"Test of moderators (coefficients {', '.join(str(j + 1) for j in self.btt)})",
                f"QM = {self.qm:.4f} on {self.qm_name}, p-val {_p_text(self.qm_p)}",
            ),
        ]
        title = f"{self.model_name}; {self.test_name}" + (f", tau^2 estimator: {self.method}" if re else "")
        return summary_block(title, facts, self.coefficients(), self.notes)


def _p_text(p: float) -> str:
    if math.isnan(p):
        return "NA"
    return "< .0001" if p < 1e-4 else f"= {p:.4f}"


def rma_mods(
    yi,
    vi,
    mods,
    *,
    data: pd.DataFrame | None = None,
    method: str = "REML",
    knha: bool = False,
    level: float = 0.95,
    slab=None,
    reference: Mapping[str, str] | None = None,
    intercept: bool = True,
    control: Mapping[str, Any] | None = None,
) -> ModeratorResult:
    """Meta-regression of effects ``yi`` (sampling variances ``vi``) on moderators (metafor ``rma(yi, vi,
    mods = ~ ..., method, test)``).

    ``mods``: a formula string over the columns of ``data`` (``"ablat + year"``, ``"alloc"``,
    ``"factor(alloc) - 1"``), or a data frame whose every column is a moderator (intercept added), or a
    k x m numeric matrix. ``yi``, ``vi`` and ``slab`` may name columns of ``data``. ``method``: REML
    (default), ML, DL, PM or EE. ``knha=True``: Knapp-Hartung standard errors, t(k - p) tests and the
    F-form of QM. ``reference`` maps a categorical moderator to its reference level. ``intercept=False``
    drops the intercept of a data frame or matrix ``mods`` (a formula says ``- 1``). ``control``:
    metafor's ``threshold`` (1e-5) and ``maxiter`` (100) for the ML / REML Fisher scoring (PM: maxiter).
    """
    yi, vi = _column(yi, data, "yi"), _column(vi, data, "vi")
    slab = _column(slab, data, "slab") if slab is not None else None
    labels = tuple(str(s) for s in slab) if slab is not None else None
    y, v, method = check_effects(yi, vi, method, level, labels)
    k = y.size
    if labels is None:
        labels = tuple(f"Study {i + 1}" for i in range(k))
    if len(labels) != k:
        raise InputError(f"slab has {len(labels)} labels for {k} studies")
    ctrl = _control(control)
    design = _as_design(mods, data, k, reference, labels, intercept)
    return _fit_model(y, v, design, method, knha, level, labels, ctrl)


def _fit_model(y, v, design: Design, method, knha, level, labels, ctrl) -> ModeratorResult:
    X = design.matrix
    k, p = X.shape
    if k <= p:
        raise AnalysisError(
            f"k = {k} studies cannot estimate {p} coefficients ({', '.join(design.terms)})"
            + ("" if method in _EQUAL else " and tau^2")
            + f": a meta-regression needs k >= {p + 1} studies here"
        )
    fit = fit_design(y, v, X, method=method, knha=knha, level=level, **ctrl)
    notes = list(fit.notes)
    tau2 = 0.0 if method in _EQUAL else fit.tau2
    btt = tuple(range(1, p)) if design.intercept else tuple(range(p))
    m = len(btt)
    _, vcov, _, qm = _coefficient_tests(y, v, X, tau2, knha, btt)
    if math.isnan(qm):
        notes.append("QM could not be computed: the coefficients' covariance matrix is singular")
    if knha:
        qm_df: tuple[int, float] = (m, float(k - p))
        qm_p = float(stats.f.sf(qm, m, k - p))
    else:
        qm_df = (m, math.nan)
        qm_p = float(stats.chi2.sf(qm, m))
    r2, tau2_null = _pseudo_r2(y, v, X, design.intercept, method, knha, level, ctrl, tau2, notes)
    if k - p < 3 and method not in _EQUAL:
        notes.append(f"k - p = {k - p}: the residual heterogeneity rests on very few degrees of freedom")
    return ModeratorResult(
        yi=tuple(y.tolist()),
        vi=tuple(v.tolist()),
        slab=tuple(labels),
        method=method,
        knha=knha,
        level=level,
        k=k,
        formula=design.formula,
        intercept=design.intercept,
        moderators=design.moderators,
        terms=design.terms,
        X=tuple(map(tuple, X.tolist())),
        beta=tuple(fit.beta.tolist()),
        se=tuple(fit.se.tolist()),
        statistic=tuple(fit.statistic.tolist()),
        pval=tuple(np.asarray(fit.p, dtype=float).tolist()),
        ci_low=tuple(fit.ci_low.tolist()),
        ci_high=tuple(fit.ci_high.tolist()),
        vcov=tuple(map(tuple, vcov.tolist())),
        df=fit.df,
        tau2=tau2,
        se_tau2=fit.se_tau2,
        i2=fit.i2,
        h2=fit.h2,
        vt=fit.vt,
        qe=fit.q,
        qe_df=int(fit.q_df),
        qe_p=fit.q_p,
        qm=qm,
        qm_df=qm_df,
        qm_p=qm_p,
        btt=btt,
        r2=r2,
        tau2_null=tau2_null,
        s2w=fit.s2w,
        iterations=fit.iterations,
        control=dict(ctrl),
        notes=tuple(notes),
    )


def _coefficient_tests(y, v, X, tau2: float, knha: bool, btt: Sequence[int]):
    """(beta, vcov, z or t statistics, QM) of the weighted least-squares fit at ``tau2`` (weights 1 / (vi +
    tau^2); under Knapp-Hartung vcov is scaled by the weighted residual sum of squares / (k - p), 0 when that is
    0, and QM is the Wald statistic / m), as metafor's rma.uni; QM NaN when the covariance is singular."""
    k, p = X.shape
    w = 1.0 / (v + tau2)
    vb = np.linalg.inv(X.T @ (w[:, None] * X))
    beta = vb @ (X.T @ (w * y))
    if knha:
        rss = float(np.sum(w * (y - X @ beta) ** 2))
        vb = (0.0 if rss <= np.finfo(float).eps else rss / (k - p)) * vb
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = beta / np.sqrt(np.diag(vb))
    b = beta[list(btt)]
    try:
        wald = float(b @ np.linalg.solve(vb[np.ix_(btt, btt)], b))
    except np.linalg.LinAlgError:
        wald = math.nan
    return beta, vb, statistic, (wald / len(btt) if knha else wald)


def _pseudo_r2(y, v, X, intercept, method, knha, level, ctrl, tau2, notes) -> tuple[float, float]:
    """metafor's R2 (r2def "1"): 100 max(0, (tau2_0 - tau2) / tau2_0) with tau2_0 from the intercept-only
    model by the same method (0 when tau2_0 = 0); for EE, the adjusted R^2 of the weighted least-squares
    fit (weights 1 / vi); none (NaN) without an intercept."""
    k, p = X.shape
    if not intercept:
        return math.nan, math.nan
    if method in _EQUAL:
        w = 1.0 / v
        if np.ptp(y) == 0:
            return 0.0, math.nan
        beta = np.linalg.solve(X.T @ (w[:, None] * X), X.T @ (w * y))
        rss = float(np.sum(w * (y - X @ beta) ** 2))
        tss = float(np.sum(w * (y - np.sum(w * y) / np.sum(w)) ** 2))
        adj = 1 - (rss / tss) * (k - 1) / (k - p)
        return max(0.0, 100 * adj), math.nan
    try:
        null = fit_design(y, v, np.ones((k, 1)), method=method, knha=knha, level=level, **ctrl)
    except AnalysisError as error:
        notes.append(f"R^2 not computed: the intercept-only model failed ({error})")
        return math.nan, math.nan
    if null.tau2 == 0:
        return 0.0, 0.0
    return max(0.0, 100 * (null.tau2 - tau2) / null.tau2), float(null.tau2)


# ---------------------------------------------------------------------------------------------
# Permutation test


@dataclass(frozen=True)
class PermutationResult(ResultMixin):
    """metafor's ``permutest`` of a meta-regression: per coefficient the observed ``statistic`` and its
    permutation p-value ``pval``; ``qm`` and ``qm_p`` for the omnibus test. ``iterations`` models were
    counted (the observed arrangement among them unless ``exact``); ``failed`` permutations whose fit
    failed (redrawn in the approximate test, left out of the exact one). ``mc_se`` is each p-value's
    Monte Carlo standard error sqrt(p (1 - p) / iterations) (0 for the exact test)."""

    terms: tuple[str, ...]
    statistic: tuple[float, ...]
    pval: tuple[float, ...]
    pval_model: tuple[float, ...]
    qm: float
    qm_p: float
    qm_p_model: float
    iterations: int
    exact: bool
    seed: int | None
    failed: int
    method_label: str
    mc_se: tuple[float, ...]
    qm_mc_se: float
    notes: tuple[str, ...] = ()

    def estimates(self) -> list[Estimate]:
        kind = (
            f"exact permutation test ({self.iterations} distinct permutations)"
            if self.exact
            else f"approximate permutation test ({self.iterations} permutations, seed {self.seed})"
        )
        notes = "; ".join(self.notes)
        rows = [
            Estimate(
                f"permutation test: {term}",
                self.statistic[j],
                statistic=self.statistic[j],
                p=self.pval[j],
                method=f"{kind}; {self.method_label}",
                notes=notes,
                extra={"term": term, "p_model": self.pval_model[j], "mc_se": self.mc_se[j]},
            )
            for j, term in enumerate(self.terms)
        ]
        rows.append(
            Estimate(
                "permutation test: QM (moderators)",
                self.qm,
                statistic=self.qm,
                p=self.qm_p,
                method=f"{kind}; {self.method_label}",
                notes=notes,
                extra={"term": "QM", "p_model": self.qm_p_model, "mc_se": self.qm_mc_se},
            )
        )
        return rows

    def to_frame(self) -> pd.DataFrame:
        return to_frame(self.estimates())

    def summary(self) -> str:
        kind = "Exact" if self.exact else "Approximate"
        facts = [("permutations", self.iterations), ("seed", self.seed), ("failed fits", self.failed)]
        return summary_block(f"{kind} permutation test ({self.method_label})", facts, self.to_frame(), self.notes)


def _distinct_permutations(codes: Sequence[int]):
    """Every distinct ordering of the multiset ``codes``, in lexicographic order (Knuth's algorithm L)."""
    a = sorted(codes)
    n = len(a)
    while True:
        yield tuple(a)
        i = n - 2
        while i >= 0 and a[i] >= a[i + 1]:
            i -= 1
        if i < 0:
            return
        j = n - 1
        while a[j] <= a[i]:
            j -= 1
        a[i], a[j] = a[j], a[i]
        a[i + 1 :] = reversed(a[i + 1 :])


def permutest(
    res: ModeratorResult, *, iterations: int = 1000, seed: int, exact: bool = False, max_failures: int | None = None
) -> PermutationResult:
    """Permutation test of a meta-regression's coefficients and QM (metafor ``permutest.rma.uni``): the rows
    of the model matrix are permuted against (yi, vi), the model refitted (same method, test and control),
    and p = share of permutations with |statistic| >= |observed| - sqrt(eps) (QM >= observed - sqrt(eps)).
    Approximate test: ``iterations`` arrangements, the first the observed one, the rest drawn with
    ``numpy.random.default_rng(seed)`` (a failed refit is redrawn, at most ``max_failures`` times, default
    ``iterations``); deterministic for a seed, but not the draws R makes. Exact test (``exact=True``, or
    automatically when the distinct permutations number at most ``iterations``, as metafor): every
    distinct permutation of the rows once (failed refits left out). Monte Carlo SE of an approximate p:
    sqrt(p (1 - p) / iterations), at most 0.016 for 1000 iterations."""
    if not isinstance(res, ModeratorResult):
        raise InputError(f"permutest takes the result of rma_mods; got {type(res).__name__}")
    if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) or iterations < 2:
        raise SettingsError([("iterations", f"must be an integer >= 2, got {iterations!r}")])
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise SettingsError([("seed", f"must be an integer (the permutations are seeded), got {seed!r}")])
    y, v, X = np.asarray(res.yi), np.asarray(res.vi), np.asarray(res.X)
    k = res.k
    _, codes, counts = np.unique(X, axis=0, return_inverse=True, return_counts=True)
    codes = np.asarray(codes).ravel()
    n_distinct = math.factorial(k)
    for c in counts:
        n_distinct //= math.factorial(int(c))
    use_exact = bool(exact) or n_distinct <= iterations
    if use_exact and n_distinct > MAX_EXACT_PERMUTATIONS:
        raise AnalysisError(
            f"an exact permutation test needs {n_distinct} refits (k = {k}); more than {MAX_EXACT_PERMUTATIONS}: "
            "use exact=False with a number of iterations"
        )
    unique_rows = np.unique(X, axis=0)
    observed_stat = np.abs(np.asarray(res.statistic))
    ctrl = res.control
    p = res.p

    def refit(X_perm: np.ndarray) -> tuple[np.ndarray, float] | None:
        """The permuted model's test statistics (metafor refits with outlist "minimal": the same)."""
        try:
            tau2 = estimate_tau2(y, v, X_perm, method=res.method, **ctrl)[0]
            _, _, statistic, qm = _coefficient_tests(y, v, X_perm, tau2, res.knha, res.btt)
        except (AnalysisError, np.linalg.LinAlgError):
            return None
        return statistic, qm

    stats_perm: list[np.ndarray] = []
    qm_perm: list[float] = []
    failed = 0
    if use_exact:
        for perm in _distinct_permutations(codes.tolist()):
            out = refit(unique_rows[list(perm)])
            if out is None:
                failed += 1
                continue
            stats_perm.append(out[0])
            qm_perm.append(out[1])
        n_used = len(stats_perm)
        iterations_done = n_distinct
    else:
        rng = np.random.default_rng(int(seed))
        stats_perm.append(np.asarray(res.statistic, dtype=float))
        qm_perm.append(res.qm)
        limit = int(iterations) if max_failures is None else int(max_failures)
        while len(stats_perm) < iterations:
            out = refit(X[rng.permutation(k)])
            if out is None:
                failed += 1
                if failed > limit:
                    raise AnalysisError(
                        f"permutest: {failed} permuted models failed to fit (more than {limit}); the model is too "
                        "fragile for a permutation test on these data"
                    )
                continue
            stats_perm.append(out[0])
            qm_perm.append(out[1])
        n_used = iterations_done = int(iterations)
    if n_used == 0:
        raise AnalysisError("permutest: no permuted model could be fitted")
    S = np.abs(np.vstack(stats_perm))
    Q = np.asarray(qm_perm, dtype=float)
    pval = np.nanmean(S >= observed_stat - _COMPTOL, axis=0)
    qm_p = float(np.nanmean(Q >= res.qm - _COMPTOL))
    pval = np.minimum(pval, 1.0)
    if use_exact:
        mc_se = (0.0,) * p
        qm_mc_se = 0.0
    else:
        mc_se = tuple(float(math.sqrt(q * (1 - q) / iterations_done)) for q in pval)
        qm_mc_se = float(math.sqrt(qm_p * (1 - qm_p) / iterations_done))
    notes = list(res.notes)
    if failed:
        notes.append(f"{failed} permuted model(s) failed to fit and were " + ("left out" if use_exact else "redrawn"))
    if use_exact and not exact:
        notes.append(f"only {n_distinct} distinct permutations (<= {iterations} iterations): exact test, as metafor")
    return PermutationResult(
        terms=res.terms,
        statistic=tuple(np.asarray(res.statistic, dtype=float).tolist()),
        pval=tuple(float(x) for x in pval),
        pval_model=res.pval,
        qm=res.qm,
        qm_p=qm_p,
        qm_p_model=res.qm_p,
        iterations=int(iterations_done),
        exact=use_exact,
        seed=None if use_exact else int(seed),
        failed=failed,
        method_label=res.method_label,
        mc_se=mc_se,
        qm_mc_se=qm_mc_se,
        notes=tuple(notes),
    )


# ---------------------------------------------------------------------------------------------
# Subgroup analysis


@dataclass(frozen=True)
class SubgroupResult(ResultMixin):
    """Subgroup analysis: ``table`` has one row per subgroup (``subgroup``, k, pooled estimate, se, CI, p,
    tau^2, I^2 (%), Q and its p, each from that subgroup's own random-effects model); ``q_between`` is
    RevMan's test for subgroup differences (Q of the subgroup estimates, chi-square(G - 1), with I^2 in
    ``extra``); ``moderator_test`` the mixed-effects QM with one common tau^2 (NaN with a note when that
    model cannot be fitted); ``moderator_model`` that fit (or None)."""

    groups: tuple[str, ...]
    method: str
    knha: bool
    level: float
    k: int
    table: pd.DataFrame
    q_between: Estimate
    moderator_test: Estimate
    moderator_model: ModeratorResult | None
    notes: tuple[str, ...] = ()

    def estimates(self) -> list[Estimate]:
        rows = [
            Estimate(
                "pooled effect (subgroup)",
                r["estimate"],
                r["se"],
                r["ci_low"],
                r["ci_high"],
                r["df"],
                r["statistic"],
                r["p"],
                r["method"],
                r["notes"],
                {
                    "subgroup": r["subgroup"],
                    "k": r["k"],
                    "tau2": r["tau2"],
                    "i2": r["i2"],
                    "q": r["q"],
                    "q_p": r["q_p"],
                },
            )
            for r in self.table.to_dict("records")
        ]
        return rows + [self.q_between, self.moderator_test]

    def to_frame(self) -> pd.DataFrame:
        return to_frame(self.estimates())

    def summary(self) -> str:
        lines = [
            f"Subgroup analysis ({len(self.groups)} subgroups, k = {self.k}); each subgroup pooled on its own "
            f"({self.method}{', Knapp-Hartung' if self.knha else ''})",
            "",
        ]
        for r in self.table.to_dict("records"):
            tau2 = "NA" if pd.isna(r["tau2"]) else f"{r['tau2']:.4f}"
            i2 = "NA" if pd.isna(r["i2"]) else f"{r['i2']:.1f}%"
            lines.append(
                f"  {r['subgroup']}: k = {r['k']}, {r['estimate']:.4f} [{r['ci_low']:.4f}, {r['ci_high']:.4f}], "
                f"tau^2 = {tau2}, I^2 = {i2}"
            )
        qb, mt = self.q_between, self.moderator_test
        lines += [
            "",
            "Test for subgroup differences:",
            f"  Q-between (RevMan; separate tau^2) = {qb.estimate:.4f}, df = {qb.df:g}, p-val {_p_text(qb.p)}, "
            f"I^2 = {qb.extra['i2']:.1f}%",
            (
                f"  QM (mixed-effects, common tau^2) = {mt.estimate:.4f}, {mt.extra.get('test', '')}, "
                f"p-val {_p_text(mt.p)}"
                if not math.isnan(mt.estimate)
                else f"  QM (mixed-effects, common tau^2): not computed ({mt.notes})"
            ),
        ]
        lines += [f"Note: {n}." for n in self.notes]
        return "\n".join(lines)

    _json_skip = ("notes",)

    def _json_extra(self) -> dict:
        return {"notes": self.notes, "estimates": self.estimates()}


def subgroups(
    yi,
    vi,
    groups,
    *,
    data: pd.DataFrame | None = None,
    method: str = "REML",
    knha: bool = False,
    level: float = 0.95,
    slab=None,
    reference: str | None = None,
    control: Mapping[str, Any] | None = None,
) -> SubgroupResult:
    """Pool each subgroup separately and test for subgroup differences (RevMan 5's subgroup analysis, plus
    metafor's mixed-effects moderator test).

    Each subgroup gets its own model (``imrstats.meta.random_effects.rma``: its own tau^2; a one-study
    subgroup is that study's estimate with a note). Q-between = sum_g (theta_g - theta_bar)^2 / se_g^2 with
    theta_bar the inverse-variance mean of the subgroup estimates, on G - 1 df, with I^2 = max(0, (Q - df) /
    Q) (Borenstein & Higgins 2013; under Knapp-Hartung the se_g are the subgroups' Knapp-Hartung SEs). The
    moderator test is ``rma_mods`` with the subgroup as a categorical moderator (common tau^2): QM on G - 1
    df. ``groups`` (or the column of ``data`` it names) labels each study; subgroups are ordered as a pandas
    Categorical orders them, else sorted; ``reference`` picks the first."""
    yi, vi = _column(yi, data, "yi"), _column(vi, data, "vi")
    groups = _column(groups, data, "groups")
    slab = _column(slab, data, "slab") if slab is not None else None
    labels = tuple(str(s) for s in slab) if slab is not None else None
    y, v, method = check_effects(yi, vi, method, level, labels)
    k = y.size
    if labels is None:
        labels = tuple(f"Study {i + 1}" for i in range(k))
    if len(labels) != k:
        raise InputError(f"slab has {len(labels)} labels for {k} studies")
    g = groups if isinstance(groups, pd.Series) else pd.Series(groups)
    if isinstance(groups, pd.Categorical):
        g = pd.Series(groups)
    g = g.reset_index(drop=True)
    if len(g) != k:
        raise InputError(f"groups has {len(g)} labels for {k} studies")
    if g.isna().any():
        which = ", ".join(repr(labels[i]) for i in np.flatnonzero(g.isna().to_numpy()))
        raise InputError(f"groups: subgroup missing for {which}; assign every study to a subgroup or drop it")
    order = _levels(g, reference, "groups")
    if len(order) < 2:
        raise AnalysisError(f"all {k} studies are in one subgroup ({order[0]!r}): nothing to compare")
    ctrl = _control(control)
    text = g.map(level_label).to_numpy()
    rows, notes = [], []
    for level_name in order:
        mask = text == level_name
        sub = rma(
            y[mask],
            v[mask],
            method=method,
            knha=knha,
            level=level,
            slab=[labels[i] for i in np.flatnonzero(mask)],
            **ctrl,
        )
        if sub.k == 1:
            notes.append(f"subgroup {level_name!r} has one study: its estimate is that study's own (no tau^2)")
        rows.append(
            {
                "subgroup": level_name,
                "k": sub.k,
                "estimate": sub.estimate,
                "se": sub.se,
                "ci_low": sub.ci_low,
                "ci_high": sub.ci_high,
                "df": sub.df,
                "statistic": sub.statistic,
                "p": sub.p,
                "tau2": sub.tau2 if method not in _EQUAL else math.nan,
                "i2": sub.i2,
                "q": sub.q,
                "q_p": sub.q_p,
                "method": sub.method_label,
                "notes": "; ".join(sub.notes),
            }
        )
    table = pd.DataFrame(rows)
    est, se = table["estimate"].to_numpy(float), table["se"].to_numpy(float)
    w = 1 / se**2
    pooled = float(np.sum(w * est) / np.sum(w))
    qb = float(np.sum(w * (est - pooled) ** 2))
    df = len(order) - 1
    i2b = max(0.0, 100 * (qb - df) / qb) if qb > 0 else 0.0
    q_between = Estimate(
        "test for subgroup differences: Q-between",
        qb,
        df=float(df),
        statistic=qb,
        p=float(stats.chi2.sf(qb, df)),
        method=(
            "RevMan: Cochran's Q of the separately pooled subgroup estimates (inverse-variance weights 1 / se^2), "
            f"chi-square(G - 1 = {df}); each subgroup with its own tau^2"
        ),
        notes="; ".join(notes),
        extra={"i2": i2b, "subgroups": len(order)},
    )
    categorical = pd.Categorical(text, categories=list(order))
    try:
        model = _fit_model(
            y,
            v,
            build_design(pd.DataFrame({"subgroup": categorical}), "subgroup", labels=labels),
            method,
            knha,
            level,
            labels,
            ctrl,
        )
        moderator_test = Estimate(
            "test for subgroup differences: QM (mixed-effects)",
            model.qm,
            df=float(model.qm_df[0]),
            statistic=model.qm,
            p=model.qm_p,
            method=(
                f"meta-regression on the subgroup (treatment coding), one common tau^2 by {method}; "
                f"QM on {model.qm_name}"
            ),
            notes="; ".join(model.notes),
            extra={"test": model.qm_name, "df2": model.qm_df[1], "tau2_common": model.tau2},
        )
    except AnalysisError as error:
        model = None
        moderator_test = Estimate(
            "test for subgroup differences: QM (mixed-effects)",
            math.nan,
            df=float(df),
            method=f"meta-regression on the subgroup, one common tau^2 by {method}",
            notes=f"not computed: {error}",
            extra={"test": "", "df2": math.nan, "tau2_common": math.nan},
        )
    return SubgroupResult(
        groups=order,
        method=method,
        knha=knha,
        level=level,
        k=k,
        table=table,
        q_between=q_between,
        moderator_test=moderator_test,
        moderator_model=model,
        notes=tuple(notes),
    )


__all__ = [
    "Design",
    "Moderator",
    "ModeratorResult",
    "PermutationResult",
    "SubgroupResult",
    "build_design",
    "parse_formula",
    "permutest",
    "rma_mods",
    "subgroups",
]
