"""`pcm-complaints serve`: the gRPC service; `pcm-complaints work`: the outbox relay and the
overdue job (run both; any number of replicas of each)."""

from __future__ import annotations

from pcm_common.startup import service_main

from pcm_complaints.server import run, run_worker
from pcm_complaints.settings import ComplaintsSettings


def main(argv: list[str] | None = None) -> int:
    return service_main(
        "pcm-complaints", __doc__, ComplaintsSettings, {"serve": run, "work": run_worker}, argv
    )


if __name__ == "__main__":
    raise SystemExit(main())
