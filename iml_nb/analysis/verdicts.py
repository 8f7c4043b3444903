"""The report's verdict rules, written down once: tests from per-seed intervals, equivalence for "no effect", per-seed regression
slopes for trends, and Holm's correction across the report's family of tests (statsmodels and scipy do the arithmetic).

Rules (ALPHA = 0.05):
- *positive* claims (an effect predicted > 0): a two-sided t-test of the per-seed mean against 0; "agrees" if its Holm-adjusted p is
  below ALPHA with the predicted sign, "disagrees" if below with the other sign, else "inconclusive".
- *no-effect* claims (predicted 0, or chance): "agrees" only if the equivalence test (TOST) rejects |effect| >= the claim's margin,
  fixed here in advance; "disagrees" if the t-test's Holm-adjusted p is below ALPHA; else "inconclusive". A CI that merely contains 0
  is not evidence of no effect.
- *trend* claims: the slope of the per-seed gap on the axis (OLS, standard errors clustered by seed, t with seeds − 1 degrees of
  freedom); judged like a positive claim on the slope's sign.
- The family: every test a verdict of the report reads (one per claim; one per word order for the word-order claim). The pre-registered
  10_robustness has its own family and rules, stated in its notebook, and is not re-adjusted here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as st

ALPHA = 0.05
# Equivalence margins, fixed before looking at which side of them our data fall: "no effect" must mean smaller than the effect the
# paper reports. The paper's main QA gap is about 0.03 EM (Fig. 3a), and a probe "at chance" must stay within 0.05 of 0.5.
MARGIN_GAP = 0.03
MARGIN_CHANCE = 0.05


@dataclass(frozen=True)
class Test:
    """One test a verdict reads: its estimate and 95 % CI, raw two-sided p against the null, and what the claim predicts."""

    estimate: float
    ci_low: float
    ci_high: float
    n: int
    p: float  # against `null` (two-sided)
    predicts: str  # "positive", "negative", "none" (equivalence) or "slope+" / "slope-"
    null: float = 0.0
    p_equivalence: float = math.nan  # TOST p for "none" claims
    label: str = ""


def from_interval(g: dict, predicts: str, null: float = 0.0, margin: float = MARGIN_GAP, label: str = "") -> Test | None:
    """A Test from a stored per-seed mean and 95 % t-interval (n = seeds): the t-statistic's standard error is read back from the
    interval's half-width, so summary.json files suffice. None when the record has no interval (one seed)."""
    if not g or g.get("ci_low") is None or g.get("ci_high") is None or not g.get("n_seeds") or g["n_seeds"] < 2:
        return None
    n, mean = int(g["n_seeds"]), float(g["mean"])
    df = n - 1
    se = (float(g["ci_high"]) - float(g["ci_low"])) / (2 * st.t.ppf(0.975, df))
    if se <= 0:
        p = 0.0 if mean != null else 1.0
        p_eq = 0.0 if abs(mean - null) < margin else 1.0
    else:
        p = float(2 * st.t.sf(abs(mean - null) / se, df))
        p_eq = float(max(st.t.sf((mean - (null - margin)) / se, df), st.t.cdf((mean - (null + margin)) / se, df)))
    return Test(mean, float(g["ci_low"]), float(g["ci_high"]), n, p, predicts, null, p_eq if predicts == "none" else math.nan, label)


def slope(per_seed: pd.DataFrame, x: str, y: str, predicts: str, label: str = "") -> Test | None:
    """OLS slope of y on x over every (seed, grid value), standard errors clustered by seed (seeds are the independent unit;
    t with seeds − 1 degrees of freedom). `per_seed` has columns seed, x, y."""
    import statsmodels.api as sm

    frame = per_seed.dropna(subset=[x, y])
    seeds = frame["seed"].nunique()
    if seeds < 2 or frame[x].nunique() < 2:
        return None
    fit = sm.OLS(frame[y].to_numpy(float), sm.add_constant(frame[x].to_numpy(float))).fit(
        cov_type="cluster", cov_kwds={"groups": frame["seed"].to_numpy(), "use_correction": True, "df_correction": True}, use_t=True
    )
    b, se = float(fit.params[1]), float(fit.bse[1])
    half = float(st.t.ppf(0.975, seeds - 1)) * se
    p = float(2 * st.t.sf(abs(b) / se, seeds - 1)) if se > 0 else (0.0 if b else 1.0)
    return Test(b, b - half, b + half, seeds, p, predicts, label=label)


def holm(p_values: list[float]) -> list[float]:
    """Holm-adjusted p-values (NaN stays NaN and is not counted in the family)."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = multipletests(p[ok], alpha=ALPHA, method="holm")[1]
    return out.tolist()


def verdict(test: Test | None, p_adjusted: float) -> str:
    """The rule of the module docstring, for one test and its Holm-adjusted p."""
    if test is None or math.isnan(p_adjusted):
        return "inconclusive"
    significant = p_adjusted < ALPHA
    if test.predicts == "none":
        if test.p_equivalence < ALPHA:
            return "agrees"
        return "disagrees" if significant else "inconclusive"
    sign = 1 if test.estimate > test.null else -1
    want = -1 if test.predicts in ("negative", "slope-") else 1
    if not significant:
        return "inconclusive"
    return "agrees" if sign == want else "disagrees"


RULES = {
    "positive": "t-test vs 0, Holm",
    "negative": "t-test vs 0, Holm",
    "none": "TOST ±{margin}",
    "slope+": "slope > 0 (seeds clustered), Holm",
    "slope-": "slope < 0 (seeds clustered), Holm",
}


__all__ = ["ALPHA", "MARGIN_CHANCE", "MARGIN_GAP", "RULES", "Test", "from_interval", "holm", "slope", "verdict"]
