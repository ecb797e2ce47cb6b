"""Verdicts: the 2·SE and minimum-effect rule, and every reason a claim is not measurable."""
import pytest

from hpnb.claims import (CONTRADICTED, INCONCLUSIVE, NOT_MEASURABLE, SUPPORTED, Claim, Measure, best_of, better,
                         equivalent, every, holds, leader, measure, near_chance, tally, tally_text)

CLAIM = Claim("t", "a beats b", "1", unit="points", min_effect=0.0)


def m(label, *values, **flags):
    return Measure(label, tuple(values), runs=len(values), **flags)


def test_two_standard_errors_and_the_minimum_effect_decide():
    a, b = m("a", 80, 82, 81), m("b", 70, 71, 72)
    assert better(CLAIM, a, b).verdict == SUPPORTED
    assert better(CLAIM, b, a).verdict == CONTRADICTED
    assert better(CLAIM, m("a", 80, 90, 70), m("b", 79, 89, 69)).verdict == INCONCLUSIVE  # within 2·SE
    assert better(Claim("t", "", "1", min_effect=20), a, b).verdict == INCONCLUSIVE  # within the minimum effect
    lower = better(CLAIM, b, a, higher=False)
    assert lower.verdict == SUPPORTED and "2·SE" in lower.evidence


def test_one_seed_rests_on_the_minimum_effect_and_says_so():
    v = better(Claim("t", "", "1", unit="points", min_effect=1.0), m("a", 90), m("b", 50))
    assert v.verdict == SUPPORTED and "no spread, threshold 1 point" in v.evidence
    assert v.evidence.startswith("a 90% vs b 50%: +40 points")  # values in %, differences in points


@pytest.mark.parametrize("a, b, reason", [
    (m("a"), m("b", 1, 2), "no finished run of a"),
    (m("a", 1, 2, diverged=1), m("b", 1, 2), "runs diverged in a (1/2)"),
    (m("a", 5, 5, censored=2), m("b", 3, 4), "the event never happened within the epochs in 2 of 2 runs of a"),
    (m("a", 11, 12, near_chance=True), m("b", 10, 11, near_chance=True), "every compared setting ended near chance"),
    (m("a", 7, 7), m("b", 7, 7), "a and b tie exactly"),
])
def test_evidence_that_cannot_bear_on_a_claim_is_not_measurable(a, b, reason):
    verdict = better(CLAIM, a, b)
    assert verdict.verdict == NOT_MEASURABLE and reason in verdict.reason


def test_one_setting_at_chance_is_still_a_comparison():
    assert better(CLAIM, m("trains", 40, 42), m("stuck", 10, 10, near_chance=True)).verdict == SUPPORTED


def test_near_chance_is_a_tenth_of_the_way_to_perfect():
    assert near_chance(0.185, 0.1) and not near_chance(0.195, 0.1)  # the line is 0.1 + 0.1 · 0.9 = 0.19
    assert measure("x", [0.11, 0.17], chance=0.1).near_chance
    assert measure("x", [0.11, 0.17], chance=0.1, scale=100).values == (11.0, 17.0)


def test_best_of_against_the_runner_up_and_ties_name_no_winner():
    ms = [m("a", 90, 91), m("b", 80, 81), m("c", 70, 71)]
    assert best_of(CLAIM, "a", ms).verdict == SUPPORTED
    contradicted = best_of(CLAIM, "c", ms)
    assert contradicted.verdict == CONTRADICTED and contradicted.evidence.startswith("a leads")
    assert "−20 points in the claimed direction" in contradicted.evidence  # c trails a
    tied = [m("a", 5, 5), m("b", 5, 5), m("c", 1, 2)]
    assert best_of(CLAIM, "a", tied).verdict == NOT_MEASURABLE
    assert leader(tied) == (None, "a, b tie at 5")
    assert leader(ms, higher=False)[0].label == "c"


def test_equivalence_needs_the_whole_interval_inside_the_tolerance():
    assert equivalent(CLAIM, m("a", 10.0, 10.2), m("b", 10.1, 10.1), tolerance=1.0).verdict == SUPPORTED
    assert equivalent(CLAIM, m("a", 20, 20.2), m("b", 10, 10.2), tolerance=1.0).verdict == CONTRADICTED
    assert equivalent(CLAIM, m("a", 10, 12), m("b", 10, 12.5), tolerance=1.0).verdict == INCONCLUSIVE


def test_every_part_must_hold():
    ok, bad = holds(CLAIM, True, "", ""), holds(CLAIM, False, "", "")
    nm = better(CLAIM, m("a"), m("b", 1))
    assert every(CLAIM, [ok, ok]).verdict == SUPPORTED
    assert every(CLAIM, [ok, nm, bad]).verdict == CONTRADICTED  # one counterexample decides
    assert every(CLAIM, [ok, nm]).verdict == NOT_MEASURABLE


def test_tallies_keep_the_sources_apart():
    records = [{"source": "write-up", "verdict": SUPPORTED}, {"source": "write-up", "verdict": NOT_MEASURABLE},
               {"source": "beyond", "verdict": CONTRADICTED}, {"source": "self-check", "verdict": SUPPORTED}]
    counts = tally(records)
    assert counts["write-up"] == {SUPPORTED: 1, CONTRADICTED: 0, INCONCLUSIVE: 0, NOT_MEASURABLE: 1}
    assert sum(counts["self-check"].values()) == 1
    assert tally_text(records) == ("The write-up's claims (2): 1 supported, 1 not measurable. Beyond the write-up "
                                   "(1): 1 contradicted. Self-checks (1): 1 supported.")
