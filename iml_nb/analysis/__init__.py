"""From metrics to claims: per-seed gaps and intervals (stats), verdict rules with multiplicity control (verdicts), invariant checks
(checks), charts (plots), the paper-claims report (report), and the interactive explorer (explore)."""
