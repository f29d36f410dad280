import pandas as pd

from imrstats.trial.consort import baseline_table, consort_counts


def _toy():
    part = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d", "e"],
            "arm": ["IMR", "IMR", "IMR", "TAU", "TAU"],
            "site": "S",
            "sex": ["female", "male", "male", "female", "male"],
            "age": [30, 40, 50, 35, 45],
            "diagnosis": "schizophrenia",
            "sessions_attended": [0, 12, 3, 0, 0],
        }
    )
    assess = pd.DataFrame(
        {
            "id": ["a", "b", "b", "c", "d", "e", "a"],
            "timepoint": ["post", "post", "fu12", "baseline", "fu12", "post", "baseline"],
            "instrument": ["gaf_f", "gaf_f", "gaf_f", "gaf_f", "psp", "psp", "gaf_f"],
            "score": [50, 60, None, 40, 55, 50, 45],
        }
    )
    return part, assess


def test_consort_counts_by_hand():
    part, assess = _toy()
    flow = consort_counts(part, assess).set_index("stage")
    assert flow.loc["Randomised and allocated"].tolist() == [3, 2]
    assert flow.loc["Attended no IMR session"].tolist() == [1, 0]  # a attended none
    assert flow.loc["Assessed post-intervention"].tolist() == [2, 1]  # a, b; e
    assert flow.loc["Assessed at 12-month follow-up"].tolist() == [0, 1]  # b's fu12 score is missing; d
    assert flow.loc["Lost at 12-month follow-up"].tolist() == [3, 1]
    assert flow.loc["Analysed, complete case (gaf_f at post)"].tolist() == [2, 0]


def test_baseline_table_counts_and_means():
    part, assess = _toy()
    table = baseline_table(part, assess, ("gaf_f",), {"gaf_f": "GAF-F"}).set_index("characteristic")
    assert table.loc["sex: male", "IMR"] == "2 (66.7%)"
    assert table.loc["age, mean (SD)", "TAU"] == "40.0 (7.1)"
    assert table.loc["GAF-F at baseline, mean (SD) [n]", "IMR"] == "42.5 (3.5) [2]"
