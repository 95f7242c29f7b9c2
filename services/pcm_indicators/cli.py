"""`pcm-indicators serve`: the gRPC service; `pcm-indicators work`: the outbox relay (run both;
any number of replicas of each)."""

from __future__ import annotations

import argparse

from pcm_common.catalogues import CatalogueError
from pcm_common.logging import configure_logging

from pcm_indicators.server import run, run_worker
from pcm_indicators.settings import IndicatorsSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pcm-indicators", description=__doc__)
    parser.add_argument("command", choices=["serve", "work"])
    args = parser.parse_args(argv)
    settings = IndicatorsSettings()
    configure_logging(settings.log_level, settings.log_json)
    try:
        run(settings) if args.command == "serve" else run_worker(settings)
    except CatalogueError as error:
        print(f"error: {error}")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
