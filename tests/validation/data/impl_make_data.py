"""Makes impl_programme.csv and impl_samples.csv (deterministic; run from the repo root).

A Ferrara-like registry (the Ferrara implementation study: 126 courses, CMHC 69 / SerD 52 / EDP 5) for the R validation
of the implementation stage; synthetic, not real patients. Seeds 20170401 and 7.
"""

import numpy as np
import pandas as pd

rng = np.random.default_rng(20170401)
sizes = {"CMHC": 69, "SerD": 52, "EDP": 5}
units = {
    "CMHC": ["Cento", "Copparo", "Codigoro", "Ferrara", "Portomaggiore"],
    "SerD": ["SerD Ferrara", "SerD Cento", "SerD Codigoro", "SerD Portomaggiore"],
    "EDP": ["EDP Ferrara"],
}
p_mod = {
    "CMHC": [0.85, 0.7, 0.6, 0.5, 0.6, 0.03, 0.5, 0.55, 0.08, 0.08, 0.45],
    "SerD": [0.55, 0.35, 0.3, 0.25, 0.2, 1.0, 0.45, 0.35, 0.05, 0.05, 0.45],
    "EDP": [0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0],
}
rows = []
i = 0
for st, n in sizes.items():
    for _ in range(n):
        i += 1
        start = pd.Timestamp("2017-04-01") + pd.Timedelta(days=int(rng.integers(0, 1400)))
        months = max(2, rng.gamma(2.0, 4.8))
        stop = start + pd.Timedelta(days=int(months * 30.4375))
        age = {"EDP": rng.integers(16, 30)}.get(st, rng.integers(18, 66))
        birth = start.year - int(age)
        ill_years = rng.uniform(0.1, 0.9) if st == "EDP" else rng.uniform(0.5, min(26, int(age) - 14))
        first = start - pd.Timedelta(days=int(ill_years * 365.25))
        if st == "SerD":
            dx = "substance use"
        elif st == "EDP":
            dx = "eating disorder"
        else:
            dx = rng.choice(
                ["schizophrenia", "bipolar", "depression", "delusional", "substance use"],
                p=[0.4, 0.25, 0.25, 0.08, 0.02],
            )
        sex = rng.choice(
            ["female", "male"], p=[0.8, 0.2] if st == "EDP" else ([0.45, 0.55] if st == "CMHC" else [0.3, 0.7])
        )
        fmt = rng.choice(["group", "individual", "remote"], p=[0.8, 0.15, 0.05] if st != "EDP" else [0.6, 0.4, 0])
        mods = (rng.random(11) < np.array(p_mod[st])).astype(int)
        sessions = max(1, int(rng.poisson(24 if st == "CMHC" else 17 if st == "SerD" else 10)))
        if rng.random() < 0.4:
            user = int(np.clip(np.round(rng.normal(55, 7.5)), 15, 75))
            prov = int(np.clip(np.round(user - 1 + rng.normal(0, 4)), 15, 75))
        else:
            user = prov = np.nan
        row = dict(
            id=f"P{i:03d}",
            service_type=st,
            service=rng.choice(units[st]),
            format=fmt,
            start_date=start.date().isoformat(),
            stop_date=stop.date().isoformat(),
            sessions=sessions,
            **{f"m{k + 1:02d}": int(mods[k]) for k in range(11)},
            imrs_user=user,
            imrs_provider=prov,
            sex=sex,
            birth_year=birth,
            first_contact_date=first.date().isoformat(),
            diagnosis=dx,
        )
        rows.append(row)
pd.DataFrame(rows).to_csv("tests/validation/data/impl_programme.csv", index=False)

# Small samples for the exact branches (no ties): Mann-Whitney exact, Spearman AS 89 exact & Edgeworth.
r2 = np.random.default_rng(7)
samples = pd.DataFrame(
    {
        "a": np.r_[np.round(r2.normal(10, 2, 8), 3), [np.nan] * 22],
        "b": np.r_[np.round(r2.normal(12, 3, 11), 3), [np.nan] * 19],
        "sx7": np.r_[np.round(r2.normal(0, 1, 7), 4), [np.nan] * 23],
        "sy7": np.nan,
        "sx30": np.round(r2.normal(0, 1, 30), 4),
        "sy30": np.nan,
    }
)
samples.loc[:6, "sy7"] = np.round(samples.loc[:6, "sx7"] * 0.5 + r2.normal(0, 1, 7), 4)
samples["sy30"] = np.round(samples["sx30"] * 0.3 + r2.normal(0, 1, 30), 4)
samples.to_csv("tests/validation/data/impl_samples.csv", index=False)
