"""The demo's closing national summary: what an oversight analyst would want on one screen after a
month of national data went through the platform (levels per standard, the best and the last
entity of every peer group, complaints past due, the alerts Prometheus is raising)."""

from __future__ import annotations

import datetime as dt
import json
import urllib.request
from collections import Counter
from collections.abc import Sequence
from typing import Any

from pcm_benchmark.job import summary as level_lines
from pcm_benchmark.reads import StoredResult
from pcm_benchmark.web import labels
from pcm_common.catalogues import Catalogues


def summary_month(today: dt.date) -> dt.date:
    """The month a month of data ending today mostly falls in: the one holding the day 15 days
    ago (early in a month, the last complete month)."""
    return (today - dt.timedelta(days=15)).replace(day=1)


def peer_group_lines(results: Sequence[StoredResult], catalogues: Catalogues) -> list[str]:
    """Per peer group with at least two entities: the best and the last by overall rank."""
    overall = [r for r in results if r.overall]
    lines = []
    for group in catalogues.peer_groups:
        members = sorted(
            (r for r in overall if r.peer_group == group.code), key=lambda r: r.peer_rank
        )
        if len(members) < 2:
            continue
        best, last = members[0], members[-1]
        lines.append(
            f"{group.code:<40} best {best.entity_id} {best.score:.0f}, "
            f"last {last.entity_id} {last.score:.0f} ({len(members)} entities)"
        )
    return lines


def overdue_line(rows: Sequence[tuple[str, int]], shown: int = 3) -> str:
    """Complaints past due: the total and the entities with the most (``(entity, overdue)``)."""
    total = sum(count for _, count in rows)
    worst = ", ".join(f"{entity} {count}" for entity, count in rows[:shown] if count)
    entities = sum(1 for _, count in rows if count)
    return f"{total:,} open past their due date at {entities} entities" + (
        f" (most: {worst})" if worst else ""
    )


def alert_lines(prometheus_url: str) -> list[str]:
    """The alerts Prometheus is raising now (firing, then pending), one line per alert name."""
    try:
        with urllib.request.urlopen(f"{prometheus_url}/api/v1/alerts", timeout=5) as answer:
            alerts: list[dict[str, Any]] = json.load(answer)["data"]["alerts"]
    except (OSError, ValueError, KeyError) as error:
        return [f"Prometheus at {prometheus_url} did not answer ({error})"]
    if not alerts:
        return ["none firing or pending"]
    counts = Counter((a["state"], a["labels"]["alertname"]) for a in alerts)
    lines = []
    for state in ("firing", "pending"):
        names = sorted((name, n) for (s, name), n in counts.items() if s == state)
        if names:
            shown = ", ".join(f"{name} x{n}" if n > 1 else name for name, n in names)
            lines.append(f"{state}: {shown}")
    return lines


def print_summary(
    month: dt.date,
    results: Sequence[StoredResult],
    catalogues: Catalogues,
    overdue: Sequence[tuple[str, int]],
    prometheus_url: str,
) -> None:
    version = results[0].catalogue_version if results else "-"
    print(
        f"\n  National summary: {labels.month(month)} "
        f"({len(catalogues.entities)} entities, standards catalogue {version})"
    )
    print("    Levels reached per standard (entities):")
    for line in level_lines(results, catalogues):
        print(f"      {line}")
    print("    Best and last per peer group (overall score):")
    for line in peer_group_lines(results, catalogues):
        print(f"      {line}")
    print(f"    Complaints: {overdue_line(overdue)}")
    print("    Alerts (Prometheus):")
    for line in alert_lines(prometheus_url):
        print(f"      {line}")
