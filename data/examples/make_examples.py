"""Regenerate the small example inputs in data/examples/ (deterministic; run from the project root:
`.venv/bin/python data/examples/make_examples.py`). The files are committed; tests read them.

- small_csv/, small_parquet/, small_sav/, small_dta/: the same 24-participant synthetic trial in each
  accepted format (the SPSS and Stata files code arm and sex as labelled integers, as exports usually do,
  and use -99 as a user-missing code for scores);
- dirty_csv/: a deliberately broken copy whose expected problem list tests/test_check.py pins.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat

from imrstats.config import load_config
from imrstats.data.simulate import simulate_all

HERE = Path(__file__).resolve().parent


def small_tables() -> dict[str, pd.DataFrame]:
    config = load_config(
        overrides={
            "seed": 7,
            "simulate": {
                "trial": {"sites": {"North": 12, "South": 12}},
                "programme": {"service_types": {"CMHC": 6, "SerD": 5, "EDP": 3}},
            },
        }
    )
    tables = simulate_all(config)
    # keep the example small: the eleven outcome totals plus the IMRS client items (item scoring)
    keep = tables["assessments"]["instrument"].str.match(
        r"^(gaf_f|gaf_s|psp|hamd6|ymrs|mhrm|hope|csq8|imrs_client_item\d+)$"
    )
    tables["assessments"] = tables["assessments"][keep].reset_index(drop=True)
    return tables


def write_formats(tables: dict[str, pd.DataFrame]) -> None:
    for fmt in ("csv", "parquet", "sav", "dta"):
        (HERE / f"small_{fmt}").mkdir(exist_ok=True)
    for name, frame in tables.items():
        frame.to_csv(HERE / "small_csv" / f"{name}.csv", index=False, lineterminator="\n")
        frame.to_parquet(HERE / "small_parquet" / f"{name}.parquet", index=False)
        _write_labelled(name, frame)


def _write_labelled(name: str, frame: pd.DataFrame) -> None:
    """SPSS / Stata versions: arm and sex as labelled integers, missing scores as the user-missing code -99."""
    out = frame.copy()
    labels, user_missing = {}, {}
    codes = {"arm": {1: "IMR", 2: "TAU"}, "sex": {1: "female", 2: "male"}}
    for col, mapping in codes.items():
        if col in out.columns:
            inverse = {v: k for k, v in mapping.items()}
            out[col] = out[col].map(inverse).astype(float)
            labels[col] = {float(k): v for k, v in mapping.items()}
    for col in out.columns:
        if out[col].dtype == bool:
            out[col] = out[col].astype(int)
    if "score" in out.columns:
        out["score"] = out["score"].fillna(-99)
        user_missing["score"] = [-99]
    pyreadstat.write_sav(
        out,
        HERE / "small_sav" / f"{name}.sav",
        variable_value_labels=labels,
        missing_ranges={k: v for k, v in user_missing.items()},
    )
    stata = out.copy()
    if "score" in stata.columns:
        stata["score"] = stata["score"].replace(-99, np.nan)
    pyreadstat.write_dta(stata, HERE / "small_dta" / f"{name}.dta", variable_value_labels=labels)


def write_dirty(tables: dict[str, pd.DataFrame]) -> None:
    out = HERE / "dirty_csv"
    out.mkdir(exist_ok=True)
    part = tables["participants"].astype(str).copy()
    part.loc[1, "id"] = part.loc[0, "id"]  # duplicated id (row 2)
    part.loc[2, "arm"] = "Placebo"  # unknown arm code (row 3)
    part.loc[3, "age"] = "150"  # out of range (row 4)
    part.loc[4, "sex"] = "Female"  # other case: a warning, clean repairs it (row 5)
    tau = part.index[part["arm"] == "TAU"][0]
    part.loc[tau, "sessions_attended"] = "5"  # a TAU participant with IMR sessions
    part.to_csv(out / "participants.csv", index=False, lineterminator="\n")
    assess = tables["assessments"].astype(object).copy()
    assess.loc[0, "score"] = "n/a"  # non-numeric score (row 1)
    gaf = assess.index[assess["instrument"] == "gaf_f"][0]
    assess.loc[gaf, "score"] = 120  # GAF-F above 100
    item = assess.index[assess["instrument"] == "imrs_client_item01"][0]
    assess.loc[item, "score"] = 6  # an IMRS item above 5
    assess.loc[len(assess)] = ["P9999", "post", "gaf_f", 50]  # id not in participants
    assess.loc[len(assess)] = [tables["participants"].loc[5, "id"], "week6", "gaf_f", 50]  # unknown timepoint
    assess.loc[len(assess)] = [tables["participants"].loc[5, "id"], "post", "gaf_x", 50]  # unknown instrument
    assess.loc[len(assess)] = [tables["participants"].loc[6, "id"], "post", "gaf_f", -99]  # missing code: fine
    assess.to_csv(out / "assessments.csv", index=False, lineterminator="\n")


if __name__ == "__main__":
    tables = small_tables()
    write_formats(tables)
    write_dirty(tables)
    print("examples written to", HERE)
