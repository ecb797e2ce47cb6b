import json

import pytest

from hpnb.results import ChapterResults, compare, fmt_mean_std, mean_std


def test_mean_std_uses_the_sample_std_and_ignores_non_finite_values():
    assert mean_std([1.0, 2.0, 3.0, float("nan"), None]) == (2.0, 1.0, 3)
    assert fmt_mean_std([0.5]) == "0.50" and fmt_mean_std([]) == "—"


def test_compare_uses_two_standard_errors_and_the_minimum_effect():
    a, b = [0.80, 0.82, 0.81], [0.70, 0.71, 0.72]
    assert compare(a, b)[0] == "supported"
    assert compare(b, a)[0] == "contradicted"
    assert compare([0.80, 0.90, 0.70], [0.79, 0.89, 0.69])[0] == "inconclusive"  # within the spread
    assert compare(a, b, min_effect=0.2)[0] == "inconclusive"
    verdict, evidence = compare([0.9], [0.5], min_effect=0.1)
    assert verdict == "supported" and "no spread" in evidence
    assert compare([], [0.5])[0] == "inconclusive"


def test_chapter_results_file(tmp_path):
    r = ChapterResults("99_test", "Test chapter", "smoke", data="digits")
    row = r.reference("Table 1 · x", 30.0, [31.0, 33.0])
    assert row == {"item": "Table 1 · x", "reference": 30.0, "reproduced": 32.0, "std": pytest.approx(2 ** 0.5),
                   "difference": 2.0, "n_seeds": 2, "unit": ""}
    r.claim("a beats b", [1, 1.1, 1.2], [0, 0.1, 0.2])
    data = json.loads(r.save(tmp_path).read_text())
    assert data["claims"][0]["verdict"] == "supported" and data["references"][0]["difference"] == 2.0
    assert data["runs"] == {"trained": 0, "cached": 0, "failed": 0}
