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
OVERALL = "OVERALL"  # the processor's driver code of the overall question


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


@dataclass(frozen=True)
class EntitySatisfaction:
    entity_id: str
    wait_mean_s: float | None
    means: dict[str, float | None]
    """Mean score per driver code, and OVERALL (the overall question)."""
    satisfied_pct: float | None
    """Top-2-box of the overall question."""
    answers: int
    """Valid answers to the overall question: the sample behind the figures."""


def _ratio(parts: tuple[float, float] | None, scale: float = 1.0) -> float | None:
    if parts is None or not parts[1]:
        return None
    return scale * parts[0] / parts[1]


def read_satisfaction(
    client: Client, database: str, catalogues: Catalogues
) -> list[EntitySatisfaction]:
    """Per entity, over every month of the demo: the mean score per driver and overall, and the
    overall top-2-box, from the MONTH KPIs' numerators and denominators (over several months, a
    mean is the sum of their numerators over the sum of their denominators)."""
    means = {"SATISFACTION_MEAN": OVERALL}
    means |= {f"SATISFACTION_MEAN_{d.code}": d.code for d in catalogues.drivers}
    rows = client.execute(
        "SELECT entity_id, kpi_code, sum(num), sum(den) FROM ("
        " SELECT entity_id, kpi_code, period_start, argMax(numerator, version) AS num,"
        " argMax(denominator, version) AS den"
        f" FROM {database}.kpi_values WHERE grain = 'MONTH' AND channel = ''"
        " AND service_id = '' AND kpi_code IN %(codes)s"
        " GROUP BY entity_id, kpi_code, period_start"
        ") GROUP BY entity_id, kpi_code",
        {"codes": (*means, "SATISFACTION_PCT", "WAIT_MEAN_S")},
    )
    found: dict[str, dict[str, tuple[float, float]]] = {}
    for entity_id, code, numerator, denominator in rows:
        found.setdefault(entity_id, {})[code] = (numerator, denominator)
    return [
        EntitySatisfaction(
            entity_id,
            _ratio(values.get("WAIT_MEAN_S")),
            {driver: _ratio(values.get(code)) for code, driver in means.items()},
            _ratio(values.get("SATISFACTION_PCT"), 100.0),
            int(values.get("SATISFACTION_PCT", (0.0, 0.0))[1]),
        )
        for entity_id, values in sorted(found.items())
        if "SATISFACTION_MEAN" in values
    ]


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _figure(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def by_wait(entities: list[EntitySatisfaction]) -> list[EntitySatisfaction]:
    """Shortest mean wait first; entities without attentions last."""
    return sorted(entities, key=lambda e: _or(e.wait_mean_s, float("inf")))


def print_satisfaction(entities: list[EntitySatisfaction], catalogues: Catalogues) -> None:
    """Mean score (1-5) per driver and overall, entities by their mean wait: satisfaction with
    time falls as waits grow."""
    drivers = [d.code for d in catalogues.drivers]
    headers = ["entity", "wait (min)", *[d.lower() for d in drivers], "overall", "% satisf.", "n"]
    ordered = by_wait(entities)
    table = [
        [
            e.entity_id,
            _figure(None if e.wait_mean_s is None else e.wait_mean_s / 60, "{:.1f}"),
            *[_figure(e.means[d], "{:.2f}") for d in [*drivers, OVERALL]],
            _figure(e.satisfied_pct, "{:.0f}"),
            f"{e.answers:,}",
        ]
        for e in ordered
    ]
    widths = [max(len(str(row[i])) for row in [headers, *table]) for i in range(len(headers))]
    print("\n      Satisfaction per driver (mean 1-5; overall question; by mean wait)")
    for row in [headers, ["-" * w for w in widths], *table]:
        cells = (
            v.rjust(w) if i else v.ljust(w)
            for i, (v, w) in enumerate(zip(row, widths, strict=True))
        )
        print("      " + "  ".join(cells))


def draw_satisfaction(
    entities: list[EntitySatisfaction], catalogues: Catalogues, path: Path
) -> None:
    """Heat map: one row per entity (by mean wait), one column per driver, coloured by mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drivers = [*(d.code for d in catalogues.drivers), OVERALL]
    ordered = by_wait(entities)
    nan = float("nan")
    grid: list[list[float]] = [[_or(e.means[d], nan) for d in drivers] for e in ordered]
    figure, axes = plt.subplots(figsize=(9, max(4, 0.26 * len(ordered))))
    image = axes.imshow(grid, cmap="RdYlGn", vmin=1, vmax=5, aspect="auto")
    axes.set_xticks(range(len(drivers)), [d.replace("_", " ").lower() for d in drivers])
    axes.set_yticks(range(len(ordered)), [e.entity_id for e in ordered], fontsize=7)
    plt.setp(axes.get_xticklabels(), rotation=30, ha="right")
    axes.set_title("Mean satisfaction (1-5) per driver; entities from shortest to longest wait")
    figure.colorbar(image, ax=axes, label="mean score")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
