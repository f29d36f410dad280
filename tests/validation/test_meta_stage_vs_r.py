"""imrstats.meta.stage (the whole meta-analysis stage) against R metafor 3.8.1 on identical input.

Reference numbers were produced once by ``tests/validation/r/meta_stage.R`` (metafor 3.8.1, R 4.2.2) from
``tests/validation/data/meta_stage_outcomes.csv`` and ``meta_stage_rates.csv`` (copies of the curated
``data/published/`` tables) and pasted below; this suite never runs R. The R script computes the effect sizes
with metafor's own ``escalc`` inputs (arm means/SDs, ``di``, ``ti``) and the Wald-CI formula, independently
of ``imrstats.meta.effect_sizes``, for the rows the stage should pick (named by hand in the script).
Key: (outcome, part, method, field, index). Tolerance: 1e-6 relative (deterministic algorithms), absolute
floor 1e-9 for quantities at or near 0 (tau^2 truncated at 0, Q-profile bounds at 0).
Known, documented departure: tau^2 of the equal-effects rows is NaN here (not estimated; metafor: 0), and
is not compared.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from imrstats.meta.stage import run_meta_stage

DATA = Path(__file__).parent / "data"
REL, ABS = 1e-6, 1e-9
SETTINGS = {
    "published_outcomes": str(DATA / "meta_stage_outcomes.csv"),
    "implementation_rates": str(DATA / "meta_stage_rates.csv"),
}
HET = ["tau^2", "tau", "I^2 (%)", "H^2"]

REF = {
    ("imrs_client", "effects", "", "yi", 0): 0.357345348217499,
    ("imrs_client", "effects", "", "yi", 1): -0.234563291001865,
    ("imrs_client", "effects", "", "yi", 2): 0.298726686078203,
    ("imrs_client", "effects", "", "yi", 3): 0.448382910450993,
    ("imrs_client", "effects", "", "vi", 0): 0.0390754600860225,
    ("imrs_client", "effects", "", "vi", 1): 0.0438596274599845,
    ("imrs_client", "effects", "", "vi", 2): 0.0229437999941512,
    ("imrs_client", "effects", "", "vi", 3): 0.0194337612189206,
    ("imrs_client", "estimators", "REML", "estimate", 0): 0.241630184438167,
    ("imrs_client", "estimators", "REML", "se", 0): 0.146586952107872,
    ("imrs_client", "estimators", "REML", "ci_low", 0): -0.224874919700331,
    ("imrs_client", "estimators", "REML", "ci_high", 0): 0.708135288576665,
    ("imrs_client", "estimators", "REML", "p", 0): 0.197835110347612,
    ("imrs_client", "estimators", "REML", "tau2", 0): 0.049037294039383,
    ("imrs_client", "estimators", "REML", "i2", 0): 62.8586466869677,
    ("imrs_client", "estimators", "REML", "q", 0): 7.66369245341501,
    ("imrs_client", "estimators", "REML", "pi_low", 0): -0.603517722562947,
    ("imrs_client", "estimators", "REML", "pi_high", 0): 1.08677809143928,
    ("imrs_client", "estimators", "DL", "estimate", 0): 0.242861819616007,
    ("imrs_client", "estimators", "DL", "se", 0): 0.146187643172492,
    ("imrs_client", "estimators", "DL", "ci_low", 0): -0.222372505276423,
    ("imrs_client", "estimators", "DL", "ci_high", 0): 0.708096144508436,
    ("imrs_client", "estimators", "DL", "p", 0): 0.195237844177208,
    ("imrs_client", "estimators", "DL", "tau2", 0): 0.0450430554639249,
    ("imrs_client", "estimators", "DL", "i2", 0): 60.8543790315702,
    ("imrs_client", "estimators", "DL", "q", 0): 7.66369245341501,
    ("imrs_client", "estimators", "DL", "pi_low", 0): -0.57728295000598,
    ("imrs_client", "estimators", "DL", "pi_high", 0): 1.06300658923799,
    ("imrs_client", "estimators", "PM", "estimate", 0): 0.239604633073844,
    ("imrs_client", "estimators", "PM", "se", 0): 0.147236884940275,
    ("imrs_client", "estimators", "PM", "ci_low", 0): -0.228968847405816,
    ("imrs_client", "estimators", "PM", "ci_high", 0): 0.708178113553504,
    ("imrs_client", "estimators", "PM", "p", 0): 0.202144540330107,
    ("imrs_client", "estimators", "PM", "tau2", 0): 0.0565795543424073,
    ("imrs_client", "estimators", "PM", "i2", 0): 66.1329397425706,
    ("imrs_client", "estimators", "PM", "q", 0): 7.66369245341501,
    ("imrs_client", "estimators", "PM", "pi_low", 0): -0.650674437568176,
    ("imrs_client", "estimators", "PM", "pi_high", 0): 1.12988370371586,
    ("imrs_client", "estimators", "ML", "estimate", 0): 0.251823154673819,
    ("imrs_client", "estimators", "ML", "se", 0): 0.143188558289526,
    ("imrs_client", "estimators", "ML", "ci_low", 0): -0.203866743613583,
    ("imrs_client", "estimators", "ML", "ci_high", 0): 0.70751305296122,
    ("imrs_client", "estimators", "ML", "p", 0): 0.176870397409007,
    ("imrs_client", "estimators", "ML", "tau2", 0): 0.0246642385866109,
    ("imrs_client", "estimators", "ML", "i2", 0): 45.9819520631804,
    ("imrs_client", "estimators", "ML", "q", 0): 7.66369245341501,
    ("imrs_client", "estimators", "ML", "pi_low", 0): -0.424528688585998,
    ("imrs_client", "estimators", "ML", "pi_high", 0): 0.928174997933635,
    ("imrs_client", "estimators", "EE", "estimate", 0): 0.278103551441469,
    ("imrs_client", "estimators", "EE", "se", 0): 0.0834978461673057,
    ("imrs_client", "estimators", "EE", "ci_low", 0): 0.114450780166884,
    ("imrs_client", "estimators", "EE", "ci_high", 0): 0.441756322716054,
    ("imrs_client", "estimators", "EE", "p", 0): 0.000866380631451538,
    ("imrs_client", "estimators", "EE", "tau2", 0): 0,
    ("imrs_client", "estimators", "EE", "i2", 0): 60.8543790315702,
    ("imrs_client", "estimators", "EE", "q", 0): 7.66369245341501,
    ("imrs_client", "confint", "REML", "ci_low", 0): 0,
    ("imrs_client", "confint", "REML", "ci_low", 1): 0,
    ("imrs_client", "confint", "REML", "ci_low", 2): 0,
    ("imrs_client", "confint", "REML", "ci_low", 3): 1,
    ("imrs_client", "confint", "REML", "ci_high", 0): 1.2768150142879,
    ("imrs_client", "confint", "REML", "ci_high", 1): 1.12996239507689,
    ("imrs_client", "confint", "REML", "ci_high", 2): 97.7810580251768,
    ("imrs_client", "confint", "REML", "ci_high", 3): 45.0665232054886,
    ("imrs_client", "leave1out", "REML", "estimate", 0): 0.196649481811827,
    ("imrs_client", "leave1out", "REML", "estimate", 1): 0.374999085568363,
    ("imrs_client", "leave1out", "REML", "estimate", 2): 0.208838099216106,
    ("imrs_client", "leave1out", "REML", "estimate", 3): 0.155640572937915,
    ("imrs_client", "leave1out", "REML", "ci_low", 0): -0.668012953310614,
    ("imrs_client", "leave1out", "REML", "ci_low", 1): 0.171700279924339,
    ("imrs_client", "leave1out", "REML", "ci_low", 2): -0.698923628272085,
    ("imrs_client", "leave1out", "REML", "ci_low", 3): -0.631040678570633,
    ("imrs_client", "cumulative", "REML", "estimate", 0): 0.357345348217499,
    ("imrs_client", "cumulative", "REML", "estimate", 1): 0.0654323341885833,
    ("imrs_client", "cumulative", "REML", "estimate", 2): 0.155640572937915,
    ("imrs_client", "cumulative", "REML", "estimate", 3): 0.241630184438167,
    ("imrs_client", "cumulative", "REML", "ci_high", 0): 0.744781498854133,
    ("imrs_client", "cumulative", "REML", "ci_high", 1): 3.82553790130168,
    ("imrs_client", "cumulative", "REML", "ci_high", 2): 0.942321824446463,
    ("imrs_client", "cumulative", "REML", "ci_high", 3): 0.708135288576665,
    ("imrs_client", "egger", "REML", "statistic", 0): -1.50149462911656,
    ("imrs_client", "egger", "REML", "p", 0): 0.27205221747801,
    ("imrs_client", "egger", "REML", "limit", 0): 1.28846380491747,
    ("imrs_clinician", "effects", "", "yi", 0): 0.278988966705273,
    ("imrs_clinician", "effects", "", "yi", 1): 0.387124127235624,
    ("imrs_clinician", "effects", "", "yi", 2): -0.0439692368357082,
    ("imrs_clinician", "effects", "", "vi", 0): 0.0192329401036745,
    ("imrs_clinician", "effects", "", "vi", 1): 0.0391820437013843,
    ("imrs_clinician", "effects", "", "vi", 2): 0.0500433526296391,
    ("imrs_clinician", "estimators", "REML", "estimate", 0): 0.241102369732827,
    ("imrs_clinician", "estimators", "REML", "se", 0): 0.10724564539087,
    ("imrs_clinician", "estimators", "REML", "ci_low", 0): -0.220338399161941,
    ("imrs_clinician", "estimators", "REML", "ci_high", 0): 0.702543138627595,
    ("imrs_clinician", "estimators", "REML", "p", 0): 0.153550447019456,
    ("imrs_clinician", "estimators", "REML", "tau2", 0): 1.66845663176038e-06,
    ("imrs_clinician", "estimators", "REML", "i2", 0): 0.00492128486019827,
    ("imrs_clinician", "estimators", "REML", "q", 0): 2.24272734686008,
    ("imrs_clinician", "estimators", "REML", "pi_low", 0): -0.220371866857204,
    ("imrs_clinician", "estimators", "REML", "pi_high", 0): 0.702576606322858,
    ("imrs_clinician", "estimators", "DL", "estimate", 0): 0.237922185653967,
    ("imrs_clinician", "estimators", "DL", "se", 0): 0.110304904996397,
    ("imrs_clinician", "estimators", "DL", "ci_low", 0): -0.236681514933537,
    ("imrs_clinician", "estimators", "DL", "ci_high", 0): 0.712525886241472,
    ("imrs_clinician", "estimators", "DL", "p", 0): 0.16372363119909,
    ("imrs_clinician", "estimators", "DL", "tau2", 0): 0.00411437391718083,
    ("imrs_clinician", "estimators", "DL", "i2", 0): 10.8228647231643,
    ("imrs_clinician", "estimators", "DL", "q", 0): 2.24272734686008,
    ("imrs_clinician", "estimators", "DL", "pi_low", 0): -0.311092694347251,
    ("imrs_clinician", "estimators", "DL", "pi_high", 0): 0.786937065655186,
    ("imrs_clinician", "estimators", "PM", "estimate", 0): 0.237037280466667,
    ("imrs_clinician", "estimators", "PM", "se", 0): 0.111108372485052,
    ("imrs_clinician", "estimators", "PM", "ci_low", 0): -0.241023461704164,
    ("imrs_clinician", "estimators", "PM", "ci_high", 0): 0.715098022637498,
    ("imrs_clinician", "estimators", "PM", "p", 0): 0.166501849190198,
    ("imrs_clinician", "estimators", "PM", "tau2", 0): 0.00542351621678201,
    ("imrs_clinician", "estimators", "PM", "i2", 0): 13.7916227272513,
    ("imrs_clinician", "estimators", "PM", "q", 0): 2.24272734686008,
    ("imrs_clinician", "estimators", "PM", "pi_low", 0): -0.336501432677077,
    ("imrs_clinician", "estimators", "PM", "pi_high", 0): 0.810575993610411,
    ("imrs_clinician", "estimators", "ML", "estimate", 0): 0.241103253951482,
    ("imrs_clinician", "estimators", "ML", "se", 0): 0.107244755549645,
    ("imrs_clinician", "estimators", "ML", "ci_low", 0): -0.220333686265511,
    ("imrs_clinician", "estimators", "ML", "ci_high", 0): 0.702540194168475,
    ("imrs_clinician", "estimators", "ML", "p", 0): 0.153547575665796,
    ("imrs_clinician", "estimators", "ML", "tau2", 0): 6.38395964666986e-07,
    ("imrs_clinician", "estimators", "ML", "i2", 0): 0.00188307193187778,
    ("imrs_clinician", "estimators", "ML", "q", 0): 2.24272734686008,
    ("imrs_clinician", "estimators", "ML", "pi_low", 0): -0.220346492290437,
    ("imrs_clinician", "estimators", "ML", "pi_high", 0): 0.7025530001934,
    ("imrs_clinician", "estimators", "EE", "estimate", 0): 0.241103801984249,
    ("imrs_clinician", "estimators", "EE", "se", 0): 0.101274612155454,
    ("imrs_clinician", "estimators", "EE", "ci_low", 0): 0.0426092096112961,
    ("imrs_clinician", "estimators", "EE", "ci_high", 0): 0.439598394357201,
    ("imrs_clinician", "estimators", "EE", "p", 0): 0.0172800870479306,
    ("imrs_clinician", "estimators", "EE", "tau2", 0): 0,
    ("imrs_clinician", "estimators", "EE", "i2", 0): 10.8228647231643,
    ("imrs_clinician", "estimators", "EE", "q", 0): 2.24272734686008,
    ("imrs_clinician", "confint", "REML", "ci_low", 0): 0,
    ("imrs_clinician", "confint", "REML", "ci_low", 1): 0,
    ("imrs_clinician", "confint", "REML", "ci_low", 2): 0,
    ("imrs_clinician", "confint", "REML", "ci_low", 3): 1,
    ("imrs_clinician", "confint", "REML", "ci_high", 0): 1.94203043350157,
    ("imrs_clinician", "confint", "REML", "ci_high", 1): 1.39356752025209,
    ("imrs_clinician", "confint", "REML", "ci_high", 2): 98.2842929677965,
    ("imrs_clinician", "confint", "REML", "ci_high", 3): 58.2850091087923,
    ("imrs_clinician", "leave1out", "REML", "estimate", 0): 0.184174842693715,
    ("imrs_clinician", "leave1out", "REML", "estimate", 1): 0.16521017443018,
    ("imrs_clinician", "leave1out", "REML", "estimate", 2): 0.314592110455548,
    ("imrs_clinician", "leave1out", "REML", "ci_low", 0): -2.54992401051656,
    ("imrs_clinician", "leave1out", "REML", "ci_low", 1): -1.79501506525893,
    ("imrs_clinician", "leave1out", "REML", "ci_low", 2): -0.331099136993807,
    ("imrs_clinician", "cumulative", "REML", "estimate", 0): 0.278988966705273,
    ("imrs_clinician", "cumulative", "REML", "estimate", 1): 0.314592110455548,
    ("imrs_clinician", "cumulative", "REML", "estimate", 2): 0.241102369732827,
    ("imrs_clinician", "cumulative", "REML", "ci_high", 0): 0.550802408994542,
    ("imrs_clinician", "cumulative", "REML", "ci_high", 1): 0.960283357904902,
    ("imrs_clinician", "cumulative", "REML", "ci_high", 2): 0.702543138627595,
    ("imrs_clinician", "egger", "REML", "statistic", 0): -0.600441326616089,
    ("imrs_clinician", "egger", "REML", "p", 0): 0.655751714763952,
    ("imrs_clinician", "egger", "REML", "limit", 0): 0.65146241369518,
    ("hope", "effects", "", "yi", 0): 0.07297882488536,
    ("hope", "effects", "", "yi", 1): 0.0797125174135099,
    ("hope", "effects", "", "vi", 0): 0.0392568766272479,
    ("hope", "effects", "", "vi", 1): 0.0189724030460483,
    ("hope", "estimators", "REML", "estimate", 0): 0.0775185296233637,
    ("hope", "estimators", "REML", "se", 0): 0.00315595576110459,
    ("hope", "estimators", "REML", "ci_low", 0): 0.0374183095844587,
    ("hope", "estimators", "REML", "ci_high", 0): 0.117618749662269,
    ("hope", "estimators", "REML", "p", 0): 0.0259039342689493,
    ("hope", "estimators", "REML", "tau2", 0): 0,
    ("hope", "estimators", "REML", "i2", 0): 0,
    ("hope", "estimators", "REML", "q", 0): 0.000778690983609339,
    ("hope", "estimators", "REML", "pi_low", 0): 0.0374183095844587,
    ("hope", "estimators", "REML", "pi_high", 0): 0.117618749662269,
    ("hope", "estimators", "DL", "estimate", 0): 0.0775185296233637,
    ("hope", "estimators", "DL", "se", 0): 0.00315595576110459,
    ("hope", "estimators", "DL", "ci_low", 0): 0.0374183095844587,
    ("hope", "estimators", "DL", "ci_high", 0): 0.117618749662269,
    ("hope", "estimators", "DL", "p", 0): 0.0259039342689493,
    ("hope", "estimators", "DL", "tau2", 0): 0,
    ("hope", "estimators", "DL", "i2", 0): 0,
    ("hope", "estimators", "DL", "q", 0): 0.000778690983609339,
    ("hope", "estimators", "DL", "pi_low", 0): 0.0374183095844587,
    ("hope", "estimators", "DL", "pi_high", 0): 0.117618749662269,
    ("hope", "estimators", "PM", "estimate", 0): 0.0775185296233637,
    ("hope", "estimators", "PM", "se", 0): 0.00315595576110459,
    ("hope", "estimators", "PM", "ci_low", 0): 0.0374183095844587,
    ("hope", "estimators", "PM", "ci_high", 0): 0.117618749662269,
    ("hope", "estimators", "PM", "p", 0): 0.0259039342689493,
    ("hope", "estimators", "PM", "tau2", 0): 0,
    ("hope", "estimators", "PM", "i2", 0): 0,
    ("hope", "estimators", "PM", "q", 0): 0.000778690983609339,
    ("hope", "estimators", "PM", "pi_low", 0): 0.0374183095844587,
    ("hope", "estimators", "PM", "pi_high", 0): 0.117618749662269,
    ("hope", "estimators", "ML", "estimate", 0): 0.0775185296233637,
    ("hope", "estimators", "ML", "se", 0): 0.00315595576110459,
    ("hope", "estimators", "ML", "ci_low", 0): 0.0374183095844587,
    ("hope", "estimators", "ML", "ci_high", 0): 0.117618749662269,
    ("hope", "estimators", "ML", "p", 0): 0.0259039342689493,
    ("hope", "estimators", "ML", "tau2", 0): 0,
    ("hope", "estimators", "ML", "i2", 0): 0,
    ("hope", "estimators", "ML", "q", 0): 0.000778690983609339,
    ("hope", "estimators", "ML", "pi_low", 0): 0.0374183095844587,
    ("hope", "estimators", "ML", "pi_high", 0): 0.117618749662269,
    ("hope", "estimators", "EE", "estimate", 0): 0.0775185296233637,
    ("hope", "estimators", "EE", "se", 0): 0.113096283536261,
    ("hope", "estimators", "EE", "ci_low", 0): -0.144146112893038,
    ("hope", "estimators", "EE", "ci_high", 0): 0.299183172139766,
    ("hope", "estimators", "EE", "p", 0): 0.493078508891067,
    ("hope", "estimators", "EE", "tau2", 0): 0,
    ("hope", "estimators", "EE", "i2", 0): 0,
    ("hope", "estimators", "EE", "q", 0): 0.000778690983609339,
    ("hope", "confint", "REML", "ci_low", 0): 0,
    ("hope", "confint", "REML", "ci_low", 1): 0,
    ("hope", "confint", "REML", "ci_low", 2): 0,
    ("hope", "confint", "REML", "ci_low", 3): 1,
    ("hope", "confint", "REML", "ci_high", 0): 0,
    ("hope", "confint", "REML", "ci_high", 1): 0,
    ("hope", "confint", "REML", "ci_high", 2): 0,
    ("hope", "confint", "REML", "ci_high", 3): 1,
    ("hope", "leave1out", "REML", "estimate", 0): 0.0797125174135099,
    ("hope", "leave1out", "REML", "estimate", 1): 0.07297882488536,
    ("hope", "leave1out", "REML", "ci_low", 0): -0.19025360088841,
    ("hope", "leave1out", "REML", "ci_low", 1): -0.315355663658527,
    ("hope", "cumulative", "REML", "estimate", 0): 0.07297882488536,
    ("hope", "cumulative", "REML", "estimate", 1): 0.0775185296233637,
    ("hope", "cumulative", "REML", "ci_high", 0): 0.461313313429247,
    ("hope", "cumulative", "REML", "ci_high", 1): 0.117618749662269,
    ("functioning", "effects", "", "yi", 0): 0.0157150902171042,
    ("functioning", "effects", "", "yi", 1): 0.577915751247947,
    ("functioning", "effects", "", "vi", 0): 0.0312815121129411,
    ("functioning", "effects", "", "vi", 1): 0.0197487834491481,
    ("functioning", "estimators", "REML", "estimate", 0): 0.307072193325648,
    ("functioning", "estimators", "REML", "se", 0): 0.280913143928603,
    ("functioning", "estimators", "REML", "ci_low", 0): -3.2622677265137,
    ("functioning", "estimators", "REML", "ci_high", 0): 3.87641211316499,
    ("functioning", "estimators", "REML", "p", 0): 0.471695903403498,
    ("functioning", "estimators", "REML", "tau2", 0): 0.132519643850714,
    ("functioning", "estimators", "REML", "i2", 0): 83.8547274827316,
    ("functioning", "estimators", "REML", "q", 0): 6.19376352384538,
    ("functioning", "estimators", "REML", "pi_low", 0): -5.53545902673247,
    ("functioning", "estimators", "REML", "pi_high", 0): 6.14960341338377,
    ("functioning", "estimators", "DL", "estimate", 0): 0.307072193325648,
    ("functioning", "estimators", "DL", "se", 0): 0.280913143928603,
    ("functioning", "estimators", "DL", "ci_low", 0): -3.2622677265137,
    ("functioning", "estimators", "DL", "ci_high", 0): 3.87641211316499,
    ("functioning", "estimators", "DL", "p", 0): 0.471695903403498,
    ("functioning", "estimators", "DL", "tau2", 0): 0.132519643850714,
    ("functioning", "estimators", "DL", "i2", 0): 83.8547274827316,
    ("functioning", "estimators", "DL", "q", 0): 6.19376352384538,
    ("functioning", "estimators", "DL", "pi_low", 0): -5.53545902673247,
    ("functioning", "estimators", "DL", "pi_high", 0): 6.14960341338377,
    ("functioning", "estimators", "PM", "estimate", 0): 0.307071506183243,
    ("functioning", "estimators", "PM", "se", 0): 0.280913169016881,
    ("functioning", "estimators", "PM", "ci_low", 0): -3.2622687324329,
    ("functioning", "estimators", "PM", "ci_high", 0): 3.87641174479938,
    ("functioning", "estimators", "PM", "p", 0): 0.471696641195376,
    ("functioning", "estimators", "PM", "tau2", 0): 0.132530231945692,
    ("functioning", "estimators", "PM", "i2", 0): 83.8558091194056,
    ("functioning", "estimators", "PM", "q", 0): 6.19376352384538,
    ("functioning", "estimators", "PM", "pi_low", 0): -5.53560619808328,
    ("functioning", "estimators", "PM", "pi_high", 0): 6.14974921044976,
    ("functioning", "estimators", "ML", "estimate", 0): 0.317439992483919,
    ("functioning", "estimators", "ML", "se", 0): 0.280342688251274,
    ("functioning", "estimators", "ML", "ci_low", 0): -3.24465160072636,
    ("functioning", "estimators", "ML", "ci_high", 0): 3.8795315856942,
    ("functioning", "estimators", "ML", "p", 0): 0.460543137012771,
    ("functioning", "estimators", "ML", "tau2", 0): 0.0530768801702242,
    ("functioning", "estimators", "ML", "i2", 0): 67.5346871099123,
    ("functioning", "estimators", "ML", "q", 0): 6.19376352384538,
    ("functioning", "estimators", "ML", "pi_low", 0): -4.29316013078036,
    ("functioning", "estimators", "ML", "pi_high", 0): 4.9280401157482,
    ("functioning", "estimators", "EE", "estimate", 0): 0.360343444692185,
    ("functioning", "estimators", "EE", "se", 0): 0.11002718480211,
    ("functioning", "estimators", "EE", "ci_low", 0): 0.144694125159717,
    ("functioning", "estimators", "EE", "ci_high", 0): 0.575992764224653,
    ("functioning", "estimators", "EE", "p", 0): 0.00105646968149215,
    ("functioning", "estimators", "EE", "tau2", 0): 0,
    ("functioning", "estimators", "EE", "i2", 0): 83.8547274827316,
    ("functioning", "estimators", "EE", "q", 0): 6.19376352384538,
    ("functioning", "confint", "REML", "ci_low", 0): 0.00591815499550425,
    ("functioning", "confint", "REML", "ci_low", 1): 0.0769295456603264,
    ("functioning", "confint", "REML", "ci_low", 2): 18.8276587973427,
    ("functioning", "confint", "REML", "ci_low", 3): 1.23194672616793,
    ("functioning", "confint", "REML", "ci_high", 0): 100,
    ("functioning", "confint", "REML", "ci_high", 1): 10,
    ("functioning", "confint", "REML", "ci_high", 2): 99.9744913607859,
    ("functioning", "confint", "REML", "ci_high", 3): 3920.24047856352,
    ("functioning", "leave1out", "REML", "estimate", 0): 0.577915751247947,
    ("functioning", "leave1out", "REML", "estimate", 1): 0.0157150902171042,
    ("functioning", "leave1out", "REML", "ci_low", 0): 0.302481297377869,
    ("functioning", "leave1out", "REML", "ci_low", 1): -0.330935512884791,
    ("functioning", "cumulative", "REML", "estimate", 0): 0.0157150902171042,
    ("functioning", "cumulative", "REML", "estimate", 1): 0.307072193325648,
    ("functioning", "cumulative", "REML", "ci_high", 0): 0.362365693318999,
    ("functioning", "cumulative", "REML", "ci_high", 1): 3.87641211316499,
    ("symptoms", "effects", "", "yi", 0): 0.198525193454166,
    ("symptoms", "effects", "", "yi", 1): -0.0561193675867792,
    ("symptoms", "effects", "", "vi", 0): 0.0386510204444039,
    ("symptoms", "effects", "", "vi", 1): 0.0357397375783443,
    ("symptoms", "estimators", "REML", "estimate", 0): 0.0662201545427448,
    ("symptoms", "estimators", "REML", "se", 0): 0.127224743017038,
    ("symptoms", "estimators", "REML", "ci_low", 0): -1.55032347773895,
    ("symptoms", "estimators", "REML", "ci_high", 0): 1.68276378682444,
    ("symptoms", "estimators", "REML", "p", 0): 0.694479306418435,
    ("symptoms", "estimators", "REML", "tau2", 0): 0,
    ("symptoms", "estimators", "REML", "i2", 0): 0,
    ("symptoms", "estimators", "REML", "q", 0): 0.871665435213162,
    ("symptoms", "estimators", "REML", "pi_low", 0): -1.55032347773895,
    ("symptoms", "estimators", "REML", "pi_high", 0): 1.68276378682444,
    ("symptoms", "estimators", "DL", "estimate", 0): 0.0662201545427448,
    ("symptoms", "estimators", "DL", "se", 0): 0.127224743017038,
    ("symptoms", "estimators", "DL", "ci_low", 0): -1.55032347773895,
    ("symptoms", "estimators", "DL", "ci_high", 0): 1.68276378682444,
    ("symptoms", "estimators", "DL", "p", 0): 0.694479306418435,
    ("symptoms", "estimators", "DL", "tau2", 0): 0,
    ("symptoms", "estimators", "DL", "i2", 0): 0,
    ("symptoms", "estimators", "DL", "q", 0): 0.871665435213162,
    ("symptoms", "estimators", "DL", "pi_low", 0): -1.55032347773895,
    ("symptoms", "estimators", "DL", "pi_high", 0): 1.68276378682444,
    ("symptoms", "estimators", "PM", "estimate", 0): 0.0662201545427448,
    ("symptoms", "estimators", "PM", "se", 0): 0.127224743017038,
    ("symptoms", "estimators", "PM", "ci_low", 0): -1.55032347773895,
    ("symptoms", "estimators", "PM", "ci_high", 0): 1.68276378682444,
    ("symptoms", "estimators", "PM", "p", 0): 0.694479306418435,
    ("symptoms", "estimators", "PM", "tau2", 0): 0,
    ("symptoms", "estimators", "PM", "i2", 0): 0,
    ("symptoms", "estimators", "PM", "q", 0): 0.871665435213162,
    ("symptoms", "estimators", "PM", "pi_low", 0): -1.55032347773895,
    ("symptoms", "estimators", "PM", "pi_high", 0): 1.68276378682444,
    ("symptoms", "estimators", "ML", "estimate", 0): 0.0662201545427448,
    ("symptoms", "estimators", "ML", "se", 0): 0.127224743017038,
    ("symptoms", "estimators", "ML", "ci_low", 0): -1.55032347773895,
    ("symptoms", "estimators", "ML", "ci_high", 0): 1.68276378682444,
    ("symptoms", "estimators", "ML", "p", 0): 0.694479306418435,
    ("symptoms", "estimators", "ML", "tau2", 0): 0,
    ("symptoms", "estimators", "ML", "i2", 0): 0,
    ("symptoms", "estimators", "ML", "q", 0): 0.871665435213162,
    ("symptoms", "estimators", "ML", "pi_low", 0): -1.55032347773895,
    ("symptoms", "estimators", "ML", "pi_high", 0): 1.68276378682444,
    ("symptoms", "estimators", "EE", "estimate", 0): 0.0662201545427448,
    ("symptoms", "estimators", "EE", "se", 0): 0.136268874790089,
    ("symptoms", "estimators", "EE", "ci_low", 0): -0.200861932259628,
    ("symptoms", "estimators", "EE", "ci_high", 0): 0.333302241345117,
    ("symptoms", "estimators", "EE", "p", 0): 0.627001082659118,
    ("symptoms", "estimators", "EE", "tau2", 0): 0,
    ("symptoms", "estimators", "EE", "i2", 0): 0,
    ("symptoms", "estimators", "EE", "q", 0): 0.871665435213162,
    ("symptoms", "confint", "REML", "ci_low", 0): 0,
    ("symptoms", "confint", "REML", "ci_low", 1): 0,
    ("symptoms", "confint", "REML", "ci_low", 2): 0,
    ("symptoms", "confint", "REML", "ci_low", 3): 1,
    ("symptoms", "confint", "REML", "ci_high", 0): 32.9766999551719,
    ("symptoms", "confint", "REML", "ci_high", 1): 5.74253427984299,
    ("symptoms", "confint", "REML", "ci_high", 2): 99.8873341705519,
    ("symptoms", "confint", "REML", "ci_high", 3): 887.580560049888,
    ("symptoms", "leave1out", "REML", "estimate", 0): -0.0561193675867792,
    ("symptoms", "leave1out", "REML", "estimate", 1): 0.198525193454166,
    ("symptoms", "leave1out", "REML", "ci_low", 0): -0.426649703955644,
    ("symptoms", "leave1out", "REML", "ci_low", 1): -0.186801036401763,
    ("symptoms", "cumulative", "REML", "estimate", 0): 0.198525193454166,
    ("symptoms", "cumulative", "REML", "estimate", 1): 0.0662201545427448,
    ("symptoms", "cumulative", "REML", "ci_high", 0): 0.583851423310095,
    ("symptoms", "cumulative", "REML", "ci_high", 1): 1.68276378682444,
    ("hospitalisation", "effects", "", "yi", 0): -0.198850858745165,
    ("hospitalisation", "effects", "", "vi", 0): 0.273662110212411,
    ("imrs_client", "sensitivity_post_first", "REML", "estimate", 0): 0.351840359582386,
    ("imrs_client", "sensitivity_post_first", "REML", "ci_low", 0): 0.205967439101223,
    ("imrs_client", "sensitivity_with_sensitivity", "REML", "estimate", 0): 0.372387333087609,
    ("imrs_client", "sensitivity_with_sensitivity", "REML", "ci_low", 0): -0.2174996628079,
    ("dropout_pct", "implementation", "REML", "k", 0): 6,
    ("dropout_pct", "implementation", "REML", "pct", 0): 26.8421423256888,
    ("dropout_pct", "implementation", "REML", "ci_low", 0): 21.030549287854,
    ("dropout_pct", "implementation", "REML", "ci_high", 0): 33.5768710097305,
    ("dropout_pct", "implementation", "REML", "pi_low", 0): 19.1395045261332,
    ("dropout_pct", "implementation", "REML", "pi_high", 0): 36.2548038726418,
    ("dropout_pct", "implementation", "REML", "logit", 0): -1.0026464130361,
    ("dropout_pct", "implementation", "REML", "logit_se", 0): 0.124656041573916,
    ("dropout_pct", "implementation_printed_only", "REML", "k", 0): 3,
    ("dropout_pct", "implementation_printed_only", "REML", "pct", 0): 28.5110248727033,
    ("dropout_pct", "implementation_printed_only", "REML", "ci_low", 0): 20.7118533788133,
    ("dropout_pct", "implementation_printed_only", "REML", "ci_high", 0): 37.8452372506427,
    ("dropout_pct", "implementation_printed_only", "REML", "logit", 0): -0.919252393676089,
    ("dropout_pct", "implementation_printed_only", "REML", "logit_se", 0): 0.0983416770647224,
    ("completion_pct", "implementation", "REML", "k", 0): 4,
    ("completion_pct", "implementation", "REML", "pct", 0): 54.5476708038008,
    ("completion_pct", "implementation", "REML", "ci_low", 0): 9.40371007184545,
    ("completion_pct", "implementation", "REML", "ci_high", 0): 93.2775755144678,
    ("completion_pct", "implementation", "REML", "pi_low", 0): 0.582772173079938,
    ("completion_pct", "implementation", "REML", "pi_high", 0): 99.5946473461112,
    ("completion_pct", "implementation", "REML", "logit", 0): 0.182410946243849,
    ("completion_pct", "implementation", "REML", "logit_se", 0): 0.769131565383815,
    ("completion_pct", "implementation_printed_only", "REML", "k", 0): 2,
    ("completion_pct", "implementation_printed_only", "REML", "pct", 0): 60.1610905242746,
    ("completion_pct", "implementation_printed_only", "REML", "ci_low", 0): 0.0944357807809637,
    ("completion_pct", "implementation_printed_only", "REML", "ci_high", 0): 99.9585666162885,
    ("completion_pct", "implementation_printed_only", "REML", "logit", 0): 0.412181746798519,
    ("completion_pct", "implementation_printed_only", "REML", "logit_se", 0): 0.580522864686805,
}


@pytest.fixture(scope="module")
def stage():
    return run_meta_stage({}, SETTINGS)


def _ours(stage) -> dict:
    t = stage.tables
    out: dict = {}
    effects = t["meta_effects"]
    for outcome, group in effects.loc[effects["included"]].groupby("outcome_label", sort=False):
        group = group.sort_values(["year", "study"])
        for i, (yi, vi) in enumerate(zip(group["yi"], group["vi"])):
            out[(outcome, "effects", "", "yi", i)], out[(outcome, "effects", "", "vi", i)] = yi, vi
    for _, r in t["meta_estimators"].iterrows():
        for field in ("estimate", "se", "ci_low", "ci_high", "p", "tau2", "i2", "q", "pi_low", "pi_high"):
            out[(r["outcome_label"], "estimators", r["estimator"], field, 0)] = r[field]
    het = t["meta_heterogeneity"]
    for outcome, group in het.groupby("outcome_label", sort=False):
        group = group.set_index("quantity").loc[HET]
        for i, (lo, hi) in enumerate(zip(group["ci_low"], group["ci_high"])):
            out[(outcome, "confint", "REML", "ci_low", i)], out[(outcome, "confint", "REML", "ci_high", i)] = lo, hi
    for part, fields in (
        ("leave_one_out", {"estimate": "estimate", "ci_low": "ci_low"}),
        ("cumulative", {"estimate": "estimate", "ci_high": "ci_high"}),
    ):
        name = "leave1out" if part == "leave_one_out" else part
        for outcome, group in t[f"meta_{part}"].groupby("outcome_label", sort=False):
            for i, (_, r) in enumerate(group.iterrows()):
                for ref_field, col in fields.items():
                    out[(outcome, name, "REML", ref_field, i)] = r[col]
    for outcome, group in t["meta_egger"].groupby("outcome_label", sort=False):
        slope = group.loc[group["quantity"].str.startswith("funnel")].iloc[0]
        limit = group.loc[group["quantity"].str.startswith("limit")].iloc[0]
        out[(outcome, "egger", "REML", "statistic", 0)] = slope["statistic"]
        out[(outcome, "egger", "REML", "p", 0)] = slope["p"]
        out[(outcome, "egger", "REML", "limit", 0)] = limit["estimate"]
    sens = t["meta_sensitivity"]
    sens = sens.loc[sens["outcome_label"] == "imrs_client"]
    for name, prefix in (("post_first", "timepoint preference"), ("with_sensitivity", "rows curated")):
        r = sens.loc[sens["analysis"].str.startswith(prefix)].iloc[0]
        out[("imrs_client", f"sensitivity_{name}", "REML", "estimate", 0)] = r["estimate"]
        out[("imrs_client", f"sensitivity_{name}", "REML", "ci_low", 0)] = r["ci_low"]
    for _, r in t["meta_implementation_pooled"].iterrows():
        for ref_field, col in (
            ("k", "k"),
            ("pct", "estimate"),
            ("ci_low", "ci_low"),
            ("ci_high", "ci_high"),
            ("pi_low", "pi_low"),
            ("pi_high", "pi_high"),
            ("logit", "logit_estimate"),
            ("logit_se", "logit_se"),
        ):
            out[(r["measure"], "implementation", "REML", ref_field, 0)] = r[col]
    sens = t["meta_implementation_sensitivity"]
    for _, r in sens.loc[sens["analysis"].str.startswith("only printed")].iterrows():
        for ref_field, col in (
            ("k", "k"),
            ("pct", "estimate"),
            ("ci_low", "ci_low"),
            ("ci_high", "ci_high"),
            ("logit", "logit_estimate"),
            ("logit_se", "logit_se"),
        ):
            out[(r["measure"], "implementation_printed_only", "REML", ref_field, 0)] = r[col]
    return out


def _close(ours, ref) -> bool:
    return (
        ours is not None
        and not (isinstance(ours, float) and math.isnan(ours))
        and math.isclose(float(ours), ref, rel_tol=REL, abs_tol=ABS)
    )


PARTS = sorted({(key[0], key[1]) for key in REF})


@pytest.mark.parametrize("outcome, part", PARTS)
def test_stage_matches_metafor(stage, outcome, part):
    ours = _ours(stage)
    ref = {k: v for k, v in REF.items() if k[:2] == (outcome, part) and not (k[2] == "EE" and k[3] == "tau2")}
    assert ref
    bad = [(k, ours.get(k), v) for k, v in ref.items() if not _close(ours.get(k), v)]
    assert not bad, f"{len(bad)} of {len(ref)} values differ from metafor, e.g. {bad[:4]}"


def test_stage_pools_the_rows_the_reference_names(stage):
    effects = stage.tables["meta_effects"]
    counts = effects.loc[effects["included"]].groupby("outcome_label").size().to_dict()
    assert counts == {
        "imrs_client": 4,
        "imrs_clinician": 3,
        "hope": 2,
        "functioning": 2,
        "symptoms": 2,
        "hospitalisation": 1,
    }
    jensen = effects.loc[effects["included"] & (effects["study"] == "Jensen 2019")]
    assert set(jensen["timepoint"]) == {"fu12"} and set(jensen["analysis"]) == {"complete_case"}


def test_stage_divides_the_rates_by_the_denominators_the_reference_names(stage):
    """The R script names each study's denominator (people offered IMR) by hand; the stage must use the same."""
    rates = stage.tables["meta_implementation_rates"]
    used = rates.loc[rates["included"]].groupby("study")["n"].first().to_dict()
    assert used == {
        "Mueser 2006": 31,
        "Salyers Godfrey 2009": 324,
        "Salyers 2011": 144,
        "Fardig 2011": 20,
        "Salyers 2010": 162,
        "Fujita 2010": 21,
    }
    assumed = set(rates.loc[rates["included"] & rates["denominator_assumed"], "study"])
    assert assumed == {"Fardig 2011", "Salyers 2010", "Fujita 2010"}
