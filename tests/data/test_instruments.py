import pytest

from imrstats.data.instruments import TRIAL_OUTCOMES, get_instrument, item_index, load_registry
from imrstats.errors import InputError

# Ranges from the methods text of Jensen et al. 2019 ("Outcomes"), which the registry must follow,
# not the Table 3 footnotes (IMRS "15 to 125" and PANSS "16 to 112" are slips).
METHODS_RANGES = {
    "gaf_f": (1, 100, True),
    "gaf_s": (1, 100, True),
    "psp": (1, 100, True),
    "panss_total": (30, 210, False),
    "panss_pos": (7, 49, False),
    "panss_neg": (7, 49, False),
    "panss_gen": (16, 112, False),
    "hamd6": (0, 22, False),
    "ymrs": (0, 60, False),
    "mhrm": (0, 120, True),
    "hope": (6, 48, True),
    "csq8": (8, 32, True),
    "imrs_client": (15, 75, True),
    "imrs_clinician": (15, 75, True),
}


@pytest.mark.parametrize("key", sorted(METHODS_RANGES))
def test_ranges_follow_the_methods_text(key):
    inst = get_instrument(key)
    assert (inst.min, inst.max, inst.higher_is_better) == METHODS_RANGES[key]


def test_item_sums_match_the_total_range():
    for inst in load_registry().values():
        if inst.items:
            assert sum(i.min for i in inst.items) == inst.min
            assert sum(i.max for i in inst.items) == inst.max


def test_imrs_has_fifteen_items_and_three_subscales():
    inst = get_instrument("imrs_client")
    assert len(inst.items) == 15 and all((i.min, i.max) == (1, 5) for i in inst.items)
    assert inst.subscales == ("imrs_client_recovery", "imrs_client_management", "imrs_client_biology")
    members = [k for s in inst.subscales for k in get_instrument(s).item_keys_in_parent]
    assert sorted(members) == sorted(i.key for i in inst.items)  # a partition of the 15 items


def test_hamd6_sleep_item_is_rated_0_to_2():
    items = {i.key: i for i in get_instrument("hamd6").items}
    assert items["hamd6_item03"].max == 2 and items["hamd6_item01"].max == 4


def test_every_trial_outcome_is_registered_and_items_are_unique():
    registry = load_registry()
    assert all(k in registry for k in TRIAL_OUTCOMES) and len(TRIAL_OUTCOMES) == 11
    index = item_index(registry)
    assert index["panss_item_g16"][0] == "panss_total"
    assert index["imrs_clinician_item07"][0] == "imrs_clinician"


def test_unknown_instrument():
    with pytest.raises(InputError, match="unknown instrument 'gaf'"):
        get_instrument("gaf")
