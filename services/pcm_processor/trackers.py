"""What follows a domain's subjects across periods, for the KPIs that events alone cannot
date: the procedure term tracker (``terms.py``), the complaint period closes
(``complaint_closes.py``), or nothing. Declared here as data, read by the processor and by
``recompute``."""

from __future__ import annotations

from pcm_common.catalogues import Catalogues

from pcm_processor.complaint_closes import ComplaintCloses
from pcm_processor.domain.buckets import BucketClock
from pcm_processor.domain.registry import FactDomain
from pcm_processor.pipeline import Store
from pcm_processor.terms import TermTracker

TRACKERS: dict[str, type[TermTracker] | type[ComplaintCloses]] = {
    "procedure_stage": TermTracker,
    "complaint": ComplaintCloses,
}


def tracker_for(
    domain: FactDomain, catalogues: Catalogues, clock: BucketClock, store: Store, database: str
) -> TermTracker | ComplaintCloses | None:
    tracker = TRACKERS.get(domain.name)
    return None if tracker is None else tracker(catalogues, clock, store, database)
