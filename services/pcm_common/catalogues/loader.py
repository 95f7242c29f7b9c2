"""Read, validate and cross-check the catalogue directory into one ``Catalogues`` object.

Services call ``load_catalogues()`` once at start: a wrong catalogue stops them with one
line naming the file, line and field, instead of failing later on some event.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar

from pydantic import BaseModel

from .calendar import BusinessCalendar
from .catalogue import Catalogues
from .checks import Parsed, check_all
from .errors import CatalogueError
from .models import (
    ChannelsFile,
    ComplaintTerm,
    DriversFile,
    Entity,
    Kpi,
    KpisFile,
    NonWorkingDay,
    Office,
    PeerGroup,
    Region,
    Service,
    StandardsFile,
    TupaTerm,
    WaitTarget,
)
from .sources import LineDict, Located, located, read_csv, read_yaml, validate

ENV_VAR = "PCM_CATALOGUE_DIR"

M = TypeVar("M", bound=BaseModel)

# CSV files: (name, model, required columns, optional columns).
_ENTITY_COLUMNS = (
    "entity_id",
    "name",
    "sector",
    "government_level",
    "region",
    "peer_group",
    "municipal_type",
    "channels",
)
_SERVICE_COLUMNS = (
    "service_id",
    "entity_id",
    "name",
    "kind",
    "target_wait_minutes",
    "target_service_minutes",
    "legal_term_business_days",
    "channels",
)


def default_directory() -> Path:
    """``$PCM_CATALOGUE_DIR`` if set, else the repository's ``catalogues/``."""
    configured = os.environ.get(ENV_VAR)
    if configured:
        return Path(configured)
    # services/pcm_common/catalogues/loader.py -> repository root is three levels up.
    return Path(__file__).resolve().parents[3] / "catalogues"


def load_catalogues(directory: Path | None = None) -> Catalogues:
    """Load every catalogue file; raise ``CatalogueError`` on the first problem found."""
    root = Path(directory) if directory is not None else default_directory()
    if not root.is_dir():
        raise CatalogueError(root, None, None, "catalogue directory not found")
    parsed = _parse(root)
    kpis = check_all(parsed)
    return _build(root, parsed, kpis)


def _parse(root: Path) -> Parsed:
    # Order matters only for which error is reported first: definitions before references.
    channels_path, channels_raw, channels = _yaml(root, "channels.yaml", ChannelsFile)
    drivers_path, drivers_raw, drivers = _yaml(root, "drivers.yaml", DriversFile)
    kpis_path, kpis_raw, kpis = _yaml(root, "kpis.yaml", KpisFile)
    standards_path, standards_raw, standards = _yaml(root, "standards.yaml", StandardsFile)
    return Parsed(
        paths={"complaint_terms.csv": root / "complaint_terms.csv"},
        versions={
            "channels": channels.version,
            "drivers": drivers.version,
            "kpis": kpis.version,
            "standards": standards.version,
        },
        channels=located(channels_path, channels.channels, channels_raw.get("channels")),
        levels=located(channels_path, channels.levels, channels_raw.get("levels")),
        likert=drivers.scale,
        drivers=located(drivers_path, drivers.drivers, drivers_raw.get("drivers")),
        journey_stages=located(drivers_path, drivers.stages, drivers_raw.get("stages")),
        kpis=located(kpis_path, kpis.kpis, kpis_raw.get("kpis")),
        kpi_parameters=kpis.parameters,
        procedure_rules=kpis.procedure_rules,
        standard_levels=standards.levels,
        scoring=standards.scoring,
        indicators=located(standards_path, standards.indicators, standards_raw.get("indicators")),
        standards=located(standards_path, standards.standards, standards_raw.get("standards")),
        regions=_csv(root, "regions.csv", Region, ("code", "ubigeo", "name")),
        peer_groups=_csv(
            root,
            "peer_groups.csv",
            PeerGroup,
            ("code", "government_level", "name"),
            ("description", "municipal_type"),
        ),
        entities=_csv(root, "entities.csv", Entity, _ENTITY_COLUMNS),
        services=_csv(root, "services.csv", Service, _SERVICE_COLUMNS, ("legal_basis", "calendar")),
        offices=_csv(root, "offices.csv", Office, ("entity_id", "office_id", "region", "name")),
        complaint_terms=_csv(
            root,
            "complaint_terms.csv",
            ComplaintTerm,
            ("entity_id", "category", "legal_term_business_days", "legal_basis"),
            ("max_override_business_days",),
        ),
        wait_targets=_csv(
            root,
            "wait_targets.csv",
            WaitTarget,
            ("service_id", "channel", "target_wait_seconds", "source"),
        ),
        tupa_terms=_csv(
            root,
            "tupa_terms.csv",
            TupaTerm,
            ("service_id", "valid_from", "legal_term_business_days", "legal_basis"),
        ),
        non_working_days=_csv(
            root,
            "calendar/non_working_days.csv",
            NonWorkingDay,
            ("date", "scope", "kind", "reference", "description"),
            ("tax_business_day",),
        ),
    )


def _yaml(root: Path, name: str, model: type[M]) -> tuple[Path, LineDict, M]:
    path = root / name
    raw = read_yaml(path)
    return path, raw, validate(model, path, raw)


def _csv(
    root: Path, name: str, model: type[M], columns: Sequence[str], optional: Sequence[str] = ()
) -> list[Located[M]]:
    path = root / name
    return [
        Located(validate(model, path, row), path, row.line, row.key_lines, row)
        for row in read_csv(path, columns, optional)
    ]


def _build(root: Path, parsed: Parsed, kpis: Sequence[Kpi]) -> Catalogues:
    regions = tuple(item.value for item in parsed.regions)
    decreed = [item.value for item in parsed.non_working_days]
    calendar = BusinessCalendar(decreed, regions=(region.code for region in regions))
    # Tax procedures count the decreed days that stay business days for tax purposes.
    tax_calendar = BusinessCalendar(
        (day for day in decreed if not day.tax_business_day),
        regions=(region.code for region in regions),
    )
    return Catalogues(
        directory=root,
        versions=dict(parsed.versions),
        channels=tuple(item.value for item in parsed.channels),
        channel_levels=tuple(item.value for item in parsed.levels),
        likert=parsed.likert,
        drivers=tuple(item.value for item in parsed.drivers),
        kpis=tuple(kpis),
        kpi_parameters=MappingProxyType({p.code: p for p in parsed.kpi_parameters}),
        indicators=tuple(item.value for item in parsed.indicators),
        standard_levels=parsed.standard_levels,
        scoring=parsed.scoring,
        standards=tuple(item.value for item in parsed.standards),
        regions=regions,
        peer_groups=tuple(item.value for item in parsed.peer_groups),
        entities=tuple(item.value for item in parsed.entities),
        services=tuple(item.value for item in parsed.services),
        complaint_terms=tuple(item.value for item in parsed.complaint_terms),
        wait_targets=tuple(item.value for item in parsed.wait_targets),
        procedure_rules=parsed.procedure_rules,
        tupa_terms=tuple(
            sorted((item.value for item in parsed.tupa_terms), key=lambda t: t.valid_from)
        ),
        calendar=calendar,
        tax_calendar=tax_calendar,
        offices=tuple(item.value for item in parsed.offices),
        journey_stages=tuple(item.value for item in parsed.journey_stages),
    )
