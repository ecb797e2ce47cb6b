"""Claims and their verdicts: what a chapter asserts, measured over seeds, judged by one written rule.

A claim compares measurements, each a setting's per-seed values. The verdicts:

- **supported**: the difference in the claimed direction exceeds both the claim's minimum effect and twice its
  standard error across seeds (with one seed there is no spread, and the minimum effect alone decides);
- **contradicted**: the same, in the other direction;
- **inconclusive**: the difference is within that margin;
- **not measurable**: the runs cannot bear on the claim, and no winner is named: a compared setting has no
  finished run or a diverged one, a measurement is censored (the event, e.g. convergence, never happened
  within the epochs), every compared setting ended near chance, or the compared values tie exactly.

Each claim says where it comes from: the write-up, beyond the write-up (this project's additions), or a
self-check of the project's own machinery; tallies keep the three apart.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Literal, Optional, Sequence

from .stats import finite

SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_MEASURABLE = "supported", "contradicted", "inconclusive", "not measurable"
VERDICTS = (SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_MEASURABLE)
SOURCES = ("write-up", "beyond", "self-check")
SOURCE_NAMES = {"write-up": "the write-up's claims", "beyond": "beyond the write-up", "self-check": "self-checks"}
# A setting is near chance when its mean is less than this share of the way from chance to a perfect score.
NEAR_CHANCE_SHARE = 0.1


@dataclass(frozen=True)
class Claim:
    key: str  # stable id, used as the anchor of the claim's row (``claim-<key>``)
    statement: str
    section: str  # the chapter section that tests it, e.g. "1.2"
    source: Literal["write-up", "beyond", "self-check"] = "write-up"
    unit: str = ""
    min_effect: float = 0.0  # in ``unit``


@dataclass(frozen=True)
class Measure:
    """One setting's per-seed values of one measurement, and what may make them meaningless."""

    label: str
    values: tuple[float, ...]
    runs: int = 0  # runs asked for (finished, diverged or failed)
    diverged: int = 0
    censored: int = 0  # values equal to the budget because the event never happened
    near_chance: bool = False

    @property
    def n(self) -> int:
        return len(finite(self.values))

    @property
    def mean(self) -> float:
        arr = finite(self.values)
        return float(arr.mean()) if len(arr) else math.nan

    @property
    def sd(self) -> float:
        arr = finite(self.values)
        return float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def near_chance(mean: float, chance: float, best: float = 1.0) -> bool:
    """Whether ``mean`` is within ``NEAR_CHANCE_SHARE`` of the way from ``chance`` to ``best``."""
    return bool(math.isfinite(mean) and (mean - chance) < NEAR_CHANCE_SHARE * (best - chance))


def measure(label: str, values: Sequence[float], runs: Optional[int] = None, diverged: int = 0,
            censored: int = 0, chance: Optional[float] = None, best: float = 1.0, scale: float = 1.0) -> Measure:
    """A Measure from raw values (``scale`` e.g. 100 for percent; ``chance`` and ``best`` in raw units)."""
    raw = [v for v in values if v is not None]
    flag = chance is not None and near_chance(float(finite(raw).mean()) if len(finite(raw)) else math.nan,
                                              chance, best)
    return Measure(label, tuple(scale * v for v in raw), len(values) if runs is None else runs, diverged,
                   censored, flag)


@dataclass(frozen=True)
class Verdict:
    claim: Claim
    verdict: str
    evidence: str
    rule: str
    reason: str = ""  # why a claim is not measurable

    def as_dict(self) -> dict:
        c = self.claim
        return {"key": c.key, "claim": c.statement, "section": c.section, "source": c.source, "unit": c.unit,
                "min_effect": c.min_effect, "verdict": self.verdict, "evidence": self.evidence, "rule": self.rule,
                "reason": self.reason}


def _num(value: float) -> str:
    return f"{value:.4g}"


def _units(claim: Claim) -> tuple[str, str]:
    """How to write a value and a difference of this claim's measurement: accuracies are values in %,
    differences in points; other units serve both."""
    unit = claim.unit
    return ("%", " points") if unit == "points" else ((f" {unit}",) * 2 if unit else ("", ""))


def _amount(value: float, unit: str) -> str:
    """``value`` with its unit, singular where English wants it ("1 point", "0.5 points")."""
    text = f"{value:g}{unit}"
    return text[:-1] if abs(value) == 1 and unit.endswith("s") else text


def _rule(claim: Claim) -> str:
    return (f"supported/contradicted when the difference exceeds the larger of "
            f"{_amount(claim.min_effect, _units(claim)[1])} and 2·SE over the runs compared; otherwise inconclusive")


def _listed(items: list[str], most: int = 3) -> str:
    return ", ".join(items[:most]) + (f" and {len(items) - most} more" if len(items) > most else "")


def _blocked(claim: Claim, measures: Iterable[Measure]) -> Optional[Verdict]:
    """A not-measurable verdict if the measurements cannot bear on the claim, with the reasons summarised."""
    measures = list(measures)
    empty = [m.label for m in measures if m.n == 0]
    diverged = [m for m in measures if m.n and m.diverged]
    censored = [m for m in measures if m.n and not m.diverged and m.censored]
    reasons = []
    if empty:
        reasons.append(f"no finished run of {_listed(empty)}")
    if diverged:
        reasons.append(f"runs diverged in {_listed([f'{m.label} ({m.diverged}/{m.runs})' for m in diverged])}")
    if censored:
        never, runs = sum(m.censored for m in censored), sum(m.n for m in censored)
        reasons.append(f"the event never happened within the epochs in {never} of {runs} runs of "
                       f"{_listed([m.label for m in censored])} (censored)")
    if not reasons and measures and all(m.near_chance for m in measures):
        value = _units(claim)[0]
        reasons.append("every compared setting ended near chance ("
                       + _listed([f"{m.label} {_num(m.mean)}{value}" for m in measures], 4) + ")")
    if reasons:
        return Verdict(claim, NOT_MEASURABLE, "; ".join(reasons), _rule(claim), reason="; ".join(reasons))
    return None


def better(claim: Claim, a: Measure, b: Measure, higher: bool = True) -> Verdict:
    """Judge "``a`` is better than ``b``" (higher values better unless ``higher`` is False)."""
    blocked = _blocked(claim, (a, b))
    if blocked:
        return blocked
    sign = 1 if higher else -1
    diff = sign * (a.mean - b.mean)
    value, unit = _units(claim)
    if a.n > 1 and b.n > 1:
        se = math.sqrt(a.sd ** 2 / a.n + b.sd ** 2 / b.n)
        margin = max(claim.min_effect, 2 * se)
        spread = f"2·SE {_amount(float(f'{2 * se:.2g}'), unit)}, n = {a.n}/{b.n} runs"
    else:
        se, margin = 0.0, claim.min_effect
        spread = f"one run each: no spread, threshold {_amount(claim.min_effect, unit)}"
    evidence = (f"{a.label} {_num(a.mean)}{value} vs {b.label} {_num(b.mean)}{value}: "
                f"{'+' if diff >= 0 else '−'}{abs(diff):.3g}{unit} in the claimed direction ({spread})")
    if diff == 0 and se == 0:
        reason = f"{a.label} and {b.label} tie exactly ({_num(a.mean)}{value})"
        return Verdict(claim, NOT_MEASURABLE, evidence, _rule(claim), reason=reason)
    verdict = SUPPORTED if diff > margin else CONTRADICTED if diff < -margin else INCONCLUSIVE
    return Verdict(claim, verdict, evidence, _rule(claim))


def ranking(measures: Sequence[Measure], higher: bool = True) -> list[Measure]:
    return sorted(measures, key=lambda m: m.mean, reverse=higher)


def leader(measures: Sequence[Measure], higher: bool = True, unit: str = "") -> tuple[Optional[Measure], str]:
    """The best measure by mean, or None and why none can be named (unmeasurable or tied)."""
    blocked = _blocked(Claim("leader", "", "", unit=unit), measures)
    if blocked:
        return None, blocked.reason
    ranked = ranking(measures, higher)
    if len(ranked) > 1 and ranked[0].mean == ranked[1].mean:
        tied = [m.label for m in ranked if m.mean == ranked[0].mean]
        return None, f"{', '.join(tied)} tie at {_num(ranked[0].mean)}{_units(Claim('', '', '', unit=unit))[0]}"
    return ranked[0], ""


def best_of(claim: Claim, claimed: str, measures: Sequence[Measure], higher: bool = True) -> Verdict:
    """Judge "``claimed`` is the best of ``measures``": against the runner-up if it leads, else the leader
    against it."""
    blocked = _blocked(claim, measures)
    if blocked:
        return blocked
    top, why = leader(measures, higher, claim.unit)
    if top is None:
        return Verdict(claim, NOT_MEASURABLE, why, _rule(claim), reason=why)
    mine = next(m for m in measures if m.label == claimed)
    if top.label == claimed:
        runner_up = ranking([m for m in measures if m.label != claimed], higher)[0]
        return better(claim, mine, runner_up, higher)
    versus = better(claim, mine, top, higher)  # negative: the claimed setting trails the leader
    return Verdict(claim, versus.verdict, f"{top.label} leads: {versus.evidence}", versus.rule, versus.reason)


def equivalent(claim: Claim, a: Measure, b: Measure, tolerance: float) -> Verdict:
    """Judge "``a`` and ``b`` are about equal": supported when the difference ± 2·SE lies within ±tolerance,
    contradicted when it lies outside, inconclusive otherwise."""
    blocked = _blocked(claim, (a, b))
    if blocked:
        return blocked
    value, unit = _units(claim)
    diff = a.mean - b.mean
    se = math.sqrt(a.sd ** 2 / a.n + b.sd ** 2 / b.n) if a.n > 1 and b.n > 1 else 0.0
    rule = (f"supported when |difference| + 2·SE ≤ {_amount(tolerance, unit)}; contradicted when |difference| − 2·SE "
            f"exceeds it")
    evidence = (f"{a.label} {_num(a.mean)}{value} vs {b.label} {_num(b.mean)}{value}: difference {diff:+.3g}{unit} "
                f"(2·SE {_amount(float(f'{2 * se:.2g}'), unit)})")
    verdict = (SUPPORTED if abs(diff) + 2 * se <= tolerance else
               CONTRADICTED if abs(diff) - 2 * se > tolerance else INCONCLUSIVE)
    return Verdict(claim, verdict, evidence, rule)


def holds(claim: Claim, ok: bool, evidence: str, rule: str) -> Verdict:
    """A verdict computed exactly (theory, a deterministic check): supported if ``ok`` else contradicted."""
    return Verdict(claim, SUPPORTED if ok else CONTRADICTED, evidence, rule)


def every(claim: Claim, parts: Sequence[Verdict]) -> Verdict:
    """A claim that holds for every part: one contradiction decides; else any unmeasurable or inconclusive
    part leaves it so."""
    order = (CONTRADICTED, NOT_MEASURABLE, INCONCLUSIVE)
    verdict = next((v for v in order if any(p.verdict == v for p in parts)), SUPPORTED)
    evidence = "; ".join(f"{p.claim.statement}: {p.verdict}" for p in parts)
    reason = "; ".join(dict.fromkeys(p.reason for p in parts if p.verdict == NOT_MEASURABLE))  # each reason once
    return Verdict(claim, verdict, evidence, "supported when every part is; contradicted when any part is",
                   reason if verdict == NOT_MEASURABLE else "")


def tally(verdicts: Iterable[dict]) -> dict[str, dict[str, int]]:
    """Counts of each verdict per source, from verdict records (``Verdict.as_dict``)."""
    counts = {source: {v: 0 for v in VERDICTS} for source in SOURCES}
    for record in verdicts:
        counts[record["source"]][record["verdict"]] += 1
    return counts


def tally_text(verdicts: Iterable[dict]) -> str:
    """One sentence per source, e.g. "The write-up's claims: 3 supported, 1 contradicted, …"."""
    parts = []
    for source, counts in tally(verdicts).items():
        total = sum(counts.values())
        if total:
            body = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
            parts.append(f"{SOURCE_NAMES[source].capitalize()} ({total}): {body}.")
    return " ".join(parts)


__all__ = ["Claim", "Measure", "Verdict", "measure", "better", "best_of", "equivalent", "holds", "every",
           "leader", "ranking", "near_chance", "tally", "tally_text", "VERDICTS", "SOURCES", "SUPPORTED",
           "CONTRADICTED", "INCONCLUSIVE", "NOT_MEASURABLE", "NEAR_CHANCE_SHARE"]
