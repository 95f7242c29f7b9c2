"""`pcm-indicators serve`: the gRPC service; `pcm-indicators work`: the outbox relay (run both;
any number of replicas of each)."""

from __future__ import annotations

from pcm_common.startup import service_main

from pcm_indicators.server import run, run_worker
from pcm_indicators.settings import IndicatorsSettings


def main(argv: list[str] | None = None) -> int:
    return service_main(
        "pcm-indicators", __doc__, IndicatorsSettings, {"serve": run, "work": run_worker}, argv
    )


if __name__ == "__main__":
    raise SystemExit(main())
