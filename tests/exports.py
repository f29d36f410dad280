"""Exports built as trial teams build them, shared by the study-spec tests (tests/data/test_init.py) and the
pipeline runs on them (tests/pipeline/test_own_trial.py): pyreadstat for SPSS with value labels and
user-missing ranges, pandas.to_stata with value labels, a semicolon CSV with decimal commas, an Excel sheet,
Parquet. Each builder writes its file into ``folder`` and returns {"path": ..., "frame": the data written}."""

from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat

N = 48  # participants per export


def spss_wide(folder: Path) -> dict:
    """SPSS, wide: arms 1/2 with value labels (IMR, Usual care), Danish sex labels, ICD-10 diagnoses, GAF-F and a
    CGI-S (not in the registry) at t0/t1/t2, -99 declared user-missing on gaf_f_t1, -99 not declared on
    gaf_f_t2, 999 for an unknown age."""
    rng = np.random.default_rng(11)
    arm = np.array([1, 2] * (N // 2), dtype=float)
    frame = pd.DataFrame(
        {
            "PID": [f"AAR-{i:04d}" for i in range(1, N + 1)],
            "GROUP": arm,
            "CENTRE": rng.choice([1.0, 2.0, 3.0], N),
            "SEX": rng.choice([1.0, 2.0], N),
            "AGE": rng.integers(18, 64, N).astype(float),
            "DIAG": rng.choice(["F20.0", "F20.3", "F25.1", "F31.2", "F33.1", "F60.3"], N),
            "SESSIONS": np.where(arm == 1, rng.integers(0, 40, N), 0).astype(float),
        }
    )
    for t in range(3):
        frame[f"gaf_f_t{t}"] = rng.integers(25, 75, N).astype(float)
        frame[f"cgi_s_t{t}"] = rng.integers(2, 8, N).astype(float)
    frame.loc[[2, 9, 17], "gaf_f_t1"] = -99.0
    frame.loc[[4, 30], "gaf_f_t2"] = -99.0
    frame.loc[6, "AGE"] = 999.0
    path = folder / "trial.sav"
    pyreadstat.write_sav(
        frame,
        str(path),
        column_labels={"gaf_f_t0": "GAF functioning, baseline", "cgi_s_t0": "CGI severity, baseline"},
        variable_value_labels={
            "GROUP": {1.0: "IMR", 2.0: "Usual care"},
            "CENTRE": {1.0: "Aarhus", 2.0: "Odense", 3.0: "Aalborg"},
            "SEX": {1.0: "Mand", 2.0: "Kvinde"},
        },
        missing_ranges={"gaf_f_t1": [-99.0]},
    )
    return {"path": path, "frame": frame}


def stata_long(folder: Path) -> dict:
    """Stata, long: trt 0/1 labelled Waitlist/CBT, visit 1-5 labelled Baseline, Week 4, ..., Week 24 (four
    post-baseline visits, some missed), BPRS (not in the registry) and PSP with -9 for 'not rated'."""
    rng = np.random.default_rng(12)
    rows = []
    for i in range(N):
        last = int(rng.choice([3, 4, 5, 5, 5]))
        for visit in range(1, last + 1):
            rows.append(
                {
                    "subjid": 500 + i,
                    "trt": i % 2,
                    "visit": visit,
                    "site": ["north", "south"][i % 3 == 0],
                    "gender": ["female", "male"][i % 2 == 0],
                    "age": 20 + i % 40,
                    "bprs": float(rng.integers(30, 90)),
                    "psp": float(rng.integers(20, 90)),
                }
            )
    frame = pd.DataFrame(rows)
    frame.loc[[3, 40], "psp"] = -9.0
    path = folder / "visits.dta"
    frame.to_stata(
        path,
        write_index=False,
        value_labels={
            "trt": {0: "Waitlist", 1: "CBT"},
            "visit": {1: "Baseline", 2: "Week 4", 3: "Week 8", 4: "Week 12", 5: "Week 24"},
        },
    )
    return {"path": path, "frame": frame}


def csv_semicolons(folder: Path) -> dict:
    """A spreadsheet's CSV export: semicolons, decimal commas, visits _bl/_w4/_w8, Hope (registry) with halves,
    arms written out, 999 for a missed week-8 rating."""
    rng = np.random.default_rng(13)
    hope = {t: rng.integers(12, 90, N) / 2 for t in ("bl", "w4", "w8")}
    frame = pd.DataFrame(
        {
            "Patient": [f"{i:03d}" for i in range(1, N + 1)],
            "Randomisation": ["Intervention", "Control"] * (N // 2),
            "Gender": rng.choice(["F", "M"], N),
            "Age": [f"{a:.1f}".replace(".", ",") for a in rng.uniform(18, 60, N)],
            **{f"hope_{t}": [f"{v:g}".replace(".", ",") for v in values] for t, values in hope.items()},
        }
    )
    frame.loc[[5, 21], "hope_w8"] = "999"
    path = folder / "export.csv"
    frame.to_csv(path, sep=";", index=False)
    return {"path": path, "frame": frame, "hope": hope}


def excel_six_visits(folder: Path) -> dict:
    """Excel, wide: baseline and six post-baseline visits _v1.._v7, IMRS client (registry) and WEMWBS (declared)."""
    rng = np.random.default_rng(14)
    frame = pd.DataFrame(
        {
            "participant_id": [f"P{i}" for i in range(N)],
            "group": ["TAU", "IMR"] * (N // 2),
            "clinic": rng.choice(["A", "B", "C"], N),
        }
    )
    for v in range(1, 8):
        frame[f"imrs_client_v{v}"] = rng.integers(30, 70, N).astype(float)
        frame[f"wemwbs_v{v}"] = rng.integers(20, 65, N).astype(float)
    frame.loc[N - 1, "wemwbs_v7"] = np.nan
    path = folder / "followup.xlsx"
    frame.to_excel(path, index=False, sheet_name="export")
    return {"path": path, "frame": frame}


def parquet_canonical_visits(folder: Path) -> dict:
    """Parquet, wide, the IMR trial's own visit names (_baseline/_post/_fu12) and arms IMR/TAU."""
    rng = np.random.default_rng(15)
    frame = pd.DataFrame({"id": [f"S{i}" for i in range(N)], "arm": ["IMR", "TAU"] * (N // 2)})
    for t in ("baseline", "post", "fu12"):
        frame[f"gaf_s_{t}"] = rng.integers(20, 80, N).astype(float)
    path = folder / "trial.parquet"
    frame.to_parquet(path, index=False)
    return {"path": path, "frame": frame}
