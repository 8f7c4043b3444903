"""From metrics to claims: per-seed gaps and intervals (stats), verdict rules with multiplicity control (verdicts), invariant checks
(checks), charts (plots), the paper's claims and how each is read (claims), the claims table (report), and the explorer (explore)."""
