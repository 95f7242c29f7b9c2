"""The demo's outcome: one row per entity for a day, and a chart people can take in at once."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from clickhouse_driver import Client
from pcm_common.catalogues import Catalogues

LIMA = ZoneInfo("America/Lima")  # the processor's default time zone of DAY buckets

COLUMNS = [
    ("ATTENTIONS", "attentions", "{:,.0f}"),
    ("WAIT_MEAN_S", "wait mean (min)", "{:.1f}"),
    ("WAIT_P90_S", "wait p90 (min)", "{:.1f}"),
    ("SERVED_WITHIN_TARGET_PCT", "% within target", "{:.1f}"),
    ("ABANDONMENT_PCT", "% abandoned", "{:.1f}"),
    ("DIGITAL_TAKEUP_PCT", "% digital", "{:.1f}"),
    ("CHANNEL_LEVEL", "channel level", "{:.0f}"),
    ("PROCEDURES_WITHIN_TERM_PCT", "% procedures in term", "{:.1f}"),
]
MINUTES = {"WAIT_MEAN_S", "WAIT_P90_S"}
LEVEL_NAMES = {1: "básico", 2: "intermedio", 3: "avanzado"}


@dataclass(frozen=True)
class EntityDay:
    entity_id: str
    peer_group: str
    values: dict[str, float]


def day_start(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), LIMA)


def read_day(client: Client, database: str, day: date, catalogues: Catalogues) -> list[EntityDay]:
    """Entity-level (all channels, all services) DAY KPIs, newest version of each."""
    rows = client.execute(
        f"SELECT entity_id, kpi_code, argMax(value, version) FROM {database}.kpi_values "
        "WHERE grain = 'DAY' AND period_start = %(start)s AND channel = '' AND service_id = '' "
        "GROUP BY entity_id, kpi_code",
        {"start": day_start(day)},
    )
    by_entity: dict[str, dict[str, float]] = {}
    for entity_id, code, value in rows:
        by_entity.setdefault(entity_id, {})[code] = value
    return [
        EntityDay(entity_id, catalogues.entity(entity_id).peer_group, values)
        for entity_id, values in sorted(by_entity.items())
    ]


def cell(code: str, values: dict[str, float], pattern: str) -> str:
    if code not in values:
        return "-"
    value = values[code] / 60 if code in MINUTES else values[code]
    if code == "CHANNEL_LEVEL":
        return LEVEL_NAMES.get(int(value), str(value))
    return pattern.format(value)


def print_table(days: list[EntityDay], day: date) -> None:
    headers = ["entity", *[title for _, title, _ in COLUMNS]]
    table = [[d.entity_id, *[cell(c, d.values, p) for c, _, p in COLUMNS]] for d in days]
    widths = [max(len(str(row[i])) for row in [headers, *table]) for i in range(len(headers))]
    print(f"\nKPIs per entity for {day:%A %d %B %Y} (all channels and services)")
    for row in [headers, ["-" * w for w in widths], *table]:
        print(
            "  ".join(
                str(v).rjust(w) if i else str(v).ljust(w)
                for i, (v, w) in enumerate(zip(row, widths, strict=True))
            )
        )


def write_csv(days: list[EntityDay], path: Path) -> None:
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["entity_id", "peer_group", *[code for code, _, _ in COLUMNS]])
        for d in days:
            writer.writerow(
                [d.entity_id, d.peer_group, *[d.values.get(c, "") for c, _, _ in COLUMNS]]
            )


def draw_chart(days: list[EntityDay], day: date, path: Path) -> None:
    """% served within target per entity, grouped and coloured by peer group."""
    import matplotlib

    matplotlib.use("Agg")  # files only: the demo may run on a server without a display
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    ranked = sorted(
        (d for d in days if "SERVED_WITHIN_TARGET_PCT" in d.values),
        key=lambda d: (d.peer_group, d.values["SERVED_WITHIN_TARGET_PCT"]),
    )
    groups = sorted({d.peer_group for d in ranked})
    palette = plt.get_cmap("tab10")
    colours = {group: palette(i % 10) for i, group in enumerate(groups)}
    figure, axes = plt.subplots(figsize=(10, max(4, 0.28 * len(ranked))))
    axes.barh(
        [d.entity_id for d in ranked],
        [d.values["SERVED_WITHIN_TARGET_PCT"] for d in ranked],
        color=[colours[d.peer_group] for d in ranked],
    )
    axes.set_xlim(0, 100)
    axes.set_xlabel("% of served tickets whose wait was within the service's target")
    axes.set_title(f"Served within target time, {day:%d/%m/%Y}, by peer group")
    axes.legend(
        handles=[Patch(color=colours[g], label=g.replace("_", " ").lower()) for g in groups],
        loc="lower right",
        fontsize=8,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
