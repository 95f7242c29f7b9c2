"""`pcm-topics`: create the registry's topics or list them."""

from __future__ import annotations

import argparse

from pcm_common.kafka.admin import ensure_topics
from pcm_common.kafka.topics import TOPICS
from pcm_common.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pcm-topics", description=__doc__)
    parser.add_argument("action", choices=["create", "list"])
    args = parser.parse_args(argv)
    settings = load_settings()
    if args.action == "list":
        for topic in TOPICS:
            print(
                f"{topic.name(settings.topic_prefix):32} key={topic.key:10} "
                f"payload={topic.payload or '-':18} partitions={topic.partitions}"
            )
        return 0
    created = ensure_topics(
        settings.kafka_bootstrap, settings.topic_prefix, settings.kafka_replication_factor
    )
    print(f"created {len(created)} topics" + (": " + ", ".join(created) if created else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
