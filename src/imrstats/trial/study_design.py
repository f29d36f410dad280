"""The study design as settings name it: `StudyDesign` (arms, visits, labels, baseline slope), the IMR trial's
default, and `design_problems` (what the settings get wrong, each naming its key). No numpy or pandas: the config
is validated with it before any job starts (`imrstats.config`); the frames built from a design are
`imrstats.trial.design`'s."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

from imrstats.errors import SettingsError

TIMEPOINTS = ("post", "fu12")
ALL_TIMEPOINTS = ("baseline",) + TIMEPOINTS
DEFAULT_COVARIATES = ("site", "sex", "age", "diagnosis")
ARMS = ("IMR", "TAU")
DEFAULT_VISITS = TIMEPOINTS
BASELINE_SLOPES = ("separate", "common")


@dataclass(frozen=True)
class StudyDesign:
    """What the trial stage needs to know of a study's design: the arm codes (as they appear in the
    participants table's ``arm`` column, after value labels are decoded), the baseline visit and the
    post-baseline visits in their order (as they appear in the assessments table's ``timepoint`` column), the
    labels a reader sees, and whether the MMRM has one baseline slope per visit (``separate``, the default, as
    Jensen et al. 2019 planned) or one common slope (``common``).

    The default is the IMR trial's: IMR vs TAU, baseline then ``post`` and ``fu12``. A study spec
    (`imrstats.data.study`) builds another from a user's export."""

    visits: tuple[str, ...] = DEFAULT_VISITS
    baseline: str = "baseline"
    intervention: str = "IMR"
    control: str = "TAU"
    arm_labels: dict[str, str] = field(default_factory=dict)  # arm code -> printed label (default: the code)
    visit_labels: dict[str, str] = field(default_factory=dict)  # visit code -> printed label (default: the code)
    visit_times: dict[str, float] = field(default_factory=dict)  # visit code -> time (e.g. weeks), optional
    baseline_slope: str = "separate"  # separate | common

    def __post_init__(self):
        if not self.visits:
            raise ValueError("a study design needs at least one post-baseline visit")
        if len(set(self.visits)) != len(self.visits) or self.baseline in self.visits or "baseline" in self.visits:
            raise ValueError(
                f"visits must be distinct and exclude the baseline visit (and the name 'baseline'): {self.visits}"
            )
        if self.intervention == self.control:
            raise ValueError("the intervention and control arms must differ")
        if self.baseline_slope not in BASELINE_SLOPES:
            raise ValueError(f"baseline_slope must be 'separate' or 'common', not {self.baseline_slope!r}")

    @property
    def arms(self) -> tuple[str, str]:
        """(intervention, control), the order contrasts are taken in: intervention - control."""
        return (self.intervention, self.control)

    @property
    def all_visits(self) -> tuple[str, ...]:
        """The baseline visit, then the post-baseline visits."""
        return (self.baseline, *self.visits)

    @property
    def outcome_columns(self) -> tuple[str, ...]:
        """The outcome's columns in a trial frame (`trial.outcome_frame`): ``baseline`` (the baseline visit,
        whatever its code), then the post-baseline visits by their codes."""
        return ("baseline", *self.visits)

    def visit_code(self, column: str) -> str:
        """The visit code of an outcome column of the trial frame (``baseline`` -> the baseline visit's code)."""
        return self.baseline if column == "baseline" else column

    def arm_label(self, arm: str) -> str:
        return self.arm_labels.get(arm, arm)

    def visit_label(self, visit: str) -> str:
        return self.visit_labels.get(visit, visit)

    @property
    def contrast_label(self) -> str:
        """e.g. "IMR - TAU" or "Intervention - Control"."""
        return f"{self.arm_label(self.intervention)} - {self.arm_label(self.control)}"

    def arm_key(self, arm: str) -> str:
        """The arm's code as it appears in column names (``n_imr``, ``mean_tau``): lower case, runs of other
        characters than letters and digits as one underscore."""
        return re.sub(r"[^0-9a-z]+", "_", str(arm).lower()).strip("_") or "arm"

    def visit_text(self, visit: str) -> str:
        """A visit as prose names it: its label; the IMR trial's own visits as Jensen et al. 2019 name them."""
        if visit in self.visit_labels:
            return self.visit_labels[visit]
        if self.all_visits == ("baseline", "post", "fu12"):
            return {"post": "post-intervention", "fu12": "12-month follow-up"}.get(visit, visit)
        return visit

    @property
    def visits_text(self) -> str:
        """The post-baseline visits as prose: "post-intervention and 12-month follow-up"."""
        return and_join([self.visit_text(v) for v in self.visits])

    @property
    def slope_text(self) -> str:
        """The baseline term of the MMRM, as the method text states it."""
        return "baseline x visit" if self.baseline_slope == "separate" else "baseline (one common slope)"

    @classmethod
    def from_settings(cls, settings: dict | None) -> "StudyDesign":
        """The design named by the config's ``trial`` section (defaults filled, `imrstats.config.section_settings`):
        ``visits``, ``baseline_visit``, ``arms`` (``intervention``, ``control``, ``labels``), ``visit_labels``,
        ``baseline_slope``. The visit settings of the analyses (``primary.timepoint``, ``subgroup_timepoint``,
        ``attendance_timepoint``; null = the last visit) must name one of the visits (`design_problems`); every
        problem is one `SettingsError` naming its key."""
        s = settings or {}
        problems = design_problems(s)
        if problems:
            raise SettingsError(problems)
        arms = s.get("arms") or {}
        return cls(
            visits=tuple(str(v) for v in s.get("visits", DEFAULT_VISITS)),
            baseline=str(s.get("baseline_visit", "baseline")),
            intervention=str(arms.get("intervention", "IMR")),
            control=str(arms.get("control", "TAU")),
            arm_labels={str(k): str(v) for k, v in (arms.get("labels") or {}).items()},
            visit_labels={str(k): str(v) for k, v in (s.get("visit_labels") or {}).items()},
            baseline_slope=s.get("baseline_slope", "separate"),
        )

    def resolve_settings(self, settings: dict) -> dict:
        """``settings`` (the trial section) with the visit settings left null set to the last visit."""
        out = dict(settings)
        for key in ("subgroup_timepoint", "attendance_timepoint"):
            if out.get(key) is None:
                out[key] = self.visits[-1]
        return out


DEFAULT_DESIGN = StudyDesign()


def design_problems(settings: dict) -> list[tuple[str, str]]:
    """What is wrong with the study design named by a ``trial`` settings section, as (key path, message) pairs
    (`StudyDesign.from_settings`; also checked with the whole config, `imrstats.config.validate_config`)."""
    s = settings or {}
    arms = s.get("arms") or {}
    problems = []
    visits = tuple(str(v) for v in s.get("visits", DEFAULT_VISITS))
    baseline = str(s.get("baseline_visit", "baseline"))
    intervention, control = str(arms.get("intervention", "IMR")), str(arms.get("control", "TAU"))
    if not visits:
        problems.append(("trial.visits", "needs at least one post-baseline visit"))
    dup = sorted({v for v in visits if visits.count(v) > 1})
    if dup:
        problems.append(("trial.visits", f"lists {dup} more than once: each visit once, in time order"))
    if baseline in visits or "baseline" in visits:
        problems.append(("trial.visits", f"includes the baseline visit {baseline!r} (trial.baseline_visit)"))
    if intervention == control:
        problems.append(("trial.arms.control", f"is the intervention arm {intervention!r} too: the arms must differ"))
    for code in arms.get("labels") or {}:
        if str(code) not in (intervention, control):
            problems.append(("trial.arms.labels", f"labels arm {code!r}, not {intervention!r} or {control!r}"))
    for code in s.get("visit_labels") or {}:
        if str(code) not in (baseline, *visits):
            problems.append(("trial.visit_labels", f"labels {code!r}, which is not a visit of {[baseline, *visits]}"))
    slope = s.get("baseline_slope", "separate")
    if slope not in BASELINE_SLOPES:
        problems.append(("trial.baseline_slope", f"must be one of {list(BASELINE_SLOPES)}, got {slope!r}"))
    for key, value in (
        ("trial.primary.timepoint", (s.get("primary") or {}).get("timepoint", DEFAULT_VISITS[0])),
        ("trial.subgroup_timepoint", s.get("subgroup_timepoint")),
        ("trial.attendance_timepoint", s.get("attendance_timepoint")),
    ):
        if value is not None and visits and str(value) not in visits:
            problems.append((key, f"{value!r} is not one of the post-baseline visits {list(visits)} (trial.visits)"))
    return problems


def and_join(names: Sequence[str]) -> str:
    """Names as prose: "a", "a and b", "a, b and c"."""
    names = [str(n) for n in names]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
