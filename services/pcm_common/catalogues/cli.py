"""``pcm-catalogues``: check the catalogue files, list entities, publish a version.

Exit codes: 0 OK, 2 the catalogues are wrong (one line on stderr, no traceback), so CI and
operators can run ``pcm-catalogues check`` before deploying an edited catalogue.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .catalogue import Catalogues
from .errors import CatalogueError
from .loader import ENV_VAR, load_catalogues

EXIT_INVALID = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pcm-catalogues", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("check", "validate every catalogue file and print a one-line summary"),
        ("entities", "list the entities as a table"),
        ("kpis", "print every KPI as a Markdown table (the README's, generated)"),
        ("publish", "validate, then record the versioned files in PostgreSQL with author and note"),
        ("history", "list the published versions, newest first"),
    ):
        command = commands.add_parser(name, help=text, description=text)
        command.add_argument(
            "--dir",
            type=Path,
            default=None,
            help=f"catalogue directory (default: ${ENV_VAR} or the repository's catalogues/)",
        )
        if name == "publish":
            command.add_argument("--author", required=True, help="who publishes (recorded)")
            command.add_argument("--note", required=True, help="why: what changed (recorded)")
    return parser


def _entities_table(catalogues: Catalogues) -> str:
    header = ("ENTITY_ID", "LEVEL", "REGION", "PEER_GROUP", "CHANNEL_LEVEL", "CHANNELS", "NAME")
    rows = [header]
    for entity in catalogues.entities:
        level = catalogues.channel_level(entity.channels)
        rows.append(
            (
                entity.entity_id,
                entity.government_level.value,
                entity.region,
                entity.peer_group,
                level.code if level is not None else "-",
                "|".join(entity.channels),
                entity.name,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]])
        for row in rows
    )


def kpi_table(catalogues: Catalogues) -> str:
    """Every KPI as written in kpis.yaml: formula, unit, direction, minimum sample, rule source.

    The README shows this table; a test fails when the two differ, so it never goes stale.
    """
    lines = [
        "| KPI | formula | unit | direction | min. sample | domain | source of the rule |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for kpi in catalogues.kpi_definitions:
        sample = str(kpi.min_sample) if kpi.min_sample else "-"
        drivers = " (and per driver)" if kpi.per_driver else ""
        cells = (
            f"`{kpi.code}`{drivers}",
            kpi.formula,
            kpi.unit.value,
            kpi.direction.value.replace("_", " "),
            sample,
            kpi.source,
            kpi.rule_source,
        )
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        catalogues = load_catalogues(args.dir)
    except CatalogueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    if args.command in {"publish", "history"}:
        return _registry(args, catalogues)
    if args.command == "entities":
        print(_entities_table(catalogues))
    elif args.command == "kpis":
        print(kpi_table(catalogues))
    else:
        print(f"catalogues OK: {catalogues.summary()}")
    return 0


def _registry(args: argparse.Namespace, catalogues: Catalogues) -> int:
    """The PostgreSQL registry of published versions (settings PCM_POSTGRES_*)."""
    # Imported here: checking files needs no database driver nor settings.
    from pcm_common.postgres.client import connect
    from pcm_common.settings import Settings
    from pcm_common.startup import migrate_postgres

    from .registry import history, publish

    settings = Settings()
    migrate_postgres(settings)
    with connect(settings) as conn:
        if args.command == "publish":
            try:
                done = publish(conn, catalogues, args.author, args.note)
            except (CatalogueError, ValueError) as exc:
                print(f"error: {exc}", file=sys.stderr)
                return EXIT_INVALID
            for item in done:
                state = "published" if item.new else "already published"
                print(f"{item.catalogue} {item.version}: {state} ({item.sha256[:12]})")
        else:
            for item in history(conn):
                print(
                    f"{item.published_at:%Y-%m-%d %H:%M} {item.catalogue} {item.version} "
                    f"{item.sha256[:12]} {item.author}: {item.note}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
