"""`pcm-intake serve`: run the intake gRPC service."""

from __future__ import annotations

from pcm_common.startup import service_main

from pcm_intake.server import run
from pcm_intake.settings import IntakeSettings


def main(argv: list[str] | None = None) -> int:
    return service_main("pcm-intake", __doc__, IntakeSettings, {"serve": run}, argv)


if __name__ == "__main__":
    raise SystemExit(main())
