"""How much the fuzz suite runs: the hypothesis settings every fuzz test uses.

Short form (the normal suite): `RECONCILE_FUZZ_EXAMPLES` unset, 50 examples per operation and
resource. Long form by hand: `RECONCILE_FUZZ_EXAMPLES=1000` (the command is in tests/fuzz/__init__.py).
Runs are derandomized (the same examples every time, so CI is reproducible) and keep no example
database (nothing is written into the checkout).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

EXAMPLES = int(os.environ.get("RECONCILE_FUZZ_EXAMPLES", "50"))
# RECONCILE_FUZZ_NO_SHRINK=1 reports a failure as found, without shrinking it (each shrink step is
# a real request; on a slow finding that can take minutes).
PHASES = [p for p in Phase if p not in (Phase.shrink, Phase.explain)] if os.environ.get("RECONCILE_FUZZ_NO_SHRINK") \
    else list(Phase)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, phases=PHASES,
                suppress_health_check=list(HealthCheck), print_blob=False)
