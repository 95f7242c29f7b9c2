"""`pcm-surveys serve`: the gRPC service; `pcm-surveys work`: the outbox relays (run both; any
number of replicas of each)."""

from __future__ import annotations

from pcm_common.startup import service_main

from pcm_surveys.server import run, run_worker
from pcm_surveys.settings import SurveysSettings


def main(argv: list[str] | None = None) -> int:
    commands = {"serve": run, "work": run_worker}
    return service_main("pcm-surveys", __doc__, SurveysSettings, commands, argv)


if __name__ == "__main__":
    raise SystemExit(main())
