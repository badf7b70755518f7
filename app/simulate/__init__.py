"""`flask funnels simulate`: a deterministic dry run of a funnel on synthetic contacts.

Two simulators share one behaviour model (`model.py`):
- `fast.py` (the default) runs the pure engine in memory, a contact at a time: 100,000
  contacts over 90 days in well under two minutes;
- `exact.py` runs the real engine (ingest and the worker's tick) on an in-memory
  database, rendering every email: the reference, for small runs and for the test
  that holds the fast one to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.simulate.model import SimulationError, Summary, load_funnel

__all__ = ["SimulationError", "Summary", "simulate"]


def simulate(
    source: str,
    config: Mapping[str, Any],
    *,
    contacts: int,
    days: int,
    seed: int,
    exact: bool = False,
) -> Summary:
    """Simulate the funnel in `source`; the summary, or SimulationError listing what
    is wrong with the definition. `exact` runs the database-backed simulator."""
    funnel = load_funnel(source, config["TEMPLATES_DIR"])
    if exact:
        from app.simulate.exact import simulate_exact  # (local: it needs SQLAlchemy)

        return simulate_exact(funnel, source, config, contacts=contacts, days=days, seed=seed)
    from app.simulate.fast import simulate_fast

    return simulate_fast(funnel, config, contacts=contacts, days=days, seed=seed)
