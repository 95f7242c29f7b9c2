"""`pcm-intake serve`: run the intake gRPC service."""

from __future__ import annotations

import argparse

from pcm_common.catalogues import CatalogueError
from pcm_common.logging import configure_logging

from pcm_intake.server import run
from pcm_intake.settings import IntakeSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pcm-intake", description=__doc__)
    parser.add_argument("command", choices=["serve"])
    parser.parse_args(argv)
    settings = IntakeSettings()
    configure_logging(settings.log_level, settings.log_json)
    try:
        run(settings)
    except CatalogueError as error:
        print(f"error: {error}")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
