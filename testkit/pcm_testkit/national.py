"""A synthetic national registry: the real catalogue entities plus generated ones, up to Peru's
about 2,700 public entities, for tests and benchmarks at national scale.

``write_national_catalogues`` copies a catalogue directory (by default the repository's
``catalogues/``) and appends generated entities to its ``entities.csv``, leaving every other file
and every real entity's line untouched, so the result goes through the real loader
(``load_catalogues(directory)``, or ``PCM_CATALOGUE_DIR`` for a processor) like any catalogue.

What is generated, in this order, until the requested total is reached:

- one regional government (``GR-<REGION>``) for each of the 25 regions that has none yet;
- municipalities (about 71% of the rest, as 1,890 of Peru's ~2,700 entities are): provincial
  (about 10% of them, MEF types A or C) and district (types B, D, E, F or G), spread over the
  regions by their real number of provinces and districts; ``peer_group`` is the
  ``MUNICIPALIDAD_TIPO_<type>`` of their ``municipal_type``, as the loader checks;
- regional bodies (peer group ``GOBIERNO_REGIONAL``): each region's directorates (health,
  education, labour, ...), then local units (UGEL, health networks, hospitals).

Every generated entity has PRESENCIAL and, more often the larger it is, TELEFONICO, VIRTUAL and
MOVIL; it offers the generic services (``*`` in services.csv), so the test kit's ``Generator``
produces valid events for it with no other change. Same seed and total: same file, byte for byte.
"""

from __future__ import annotations

import csv
import io
import random
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass
from pathlib import Path

from pcm_common.catalogues import default_directory

from pcm_testkit.generator import DAILY_VOLUME

NATIONAL_ENTITIES = 2_700
"""Peru's public entities, roughly: the default size of the registry."""

# Of Peru's ~2,700 entities, 1,890 are municipalities: 196 provincial, the rest district.
MUNICIPAL_SHARE = 1_890 / 2_660
PROVINCIAL_SHARE = 196 / 1_890
# MEF municipal classification (Programa de Incentivos), approximate counts per type: types A and
# C are provincial municipalities, B and D to G district ones (see catalogues/peer_groups.csv).
PROVINCIAL_TYPES = {"A": 74, "C": 122}
DISTRICT_TYPES = {"B": 166, "D": 242, "E": 555, "F": 523, "G": 192}
# Provinces and districts per region (INEI), by region code: where municipalities go.
PROVINCES = {
    "AMAZONAS": 7, "ANCASH": 20, "APURIMAC": 7, "AREQUIPA": 8, "AYACUCHO": 11, "CAJAMARCA": 13,
    "CALLAO": 1, "CUSCO": 13, "HUANCAVELICA": 7, "HUANUCO": 11, "ICA": 5, "JUNIN": 9,
    "LA_LIBERTAD": 12, "LAMBAYEQUE": 3, "LIMA": 10, "LORETO": 8, "MADRE_DE_DIOS": 3,
    "MOQUEGUA": 3, "PASCO": 3, "PIURA": 8, "PUNO": 13, "SAN_MARTIN": 10, "TACNA": 4,
    "TUMBES": 3, "UCAYALI": 4,
}  # fmt: skip
DISTRICTS = {
    "AMAZONAS": 84, "ANCASH": 166, "APURIMAC": 84, "AREQUIPA": 109, "AYACUCHO": 119,
    "CAJAMARCA": 127, "CALLAO": 7, "CUSCO": 112, "HUANCAVELICA": 100, "HUANUCO": 84, "ICA": 43,
    "JUNIN": 124, "LA_LIBERTAD": 83, "LAMBAYEQUE": 38, "LIMA": 171, "LORETO": 53,
    "MADRE_DE_DIOS": 11, "MOQUEGUA": 20, "PASCO": 29, "PIURA": 65, "PUNO": 110,
    "SAN_MARTIN": 77, "TACNA": 28, "TUMBES": 13, "UCAYALI": 17,
}  # fmt: skip
# (id prefix, name, sector) of the directorates every regional government has.
DIRECTORATES = (
    ("DIRESA", "Dirección Regional de Salud", "SALUD"),
    ("DRE", "Dirección Regional de Educación", "EDUCACION"),
    ("DRTPE", "Dirección Regional de Trabajo y Promoción del Empleo", "TRABAJO"),
    ("DRTC", "Dirección Regional de Transportes y Comunicaciones", "TRANSPORTES"),
    ("DRA", "Dirección Regional de Agricultura", "AGRICULTURA"),
    ("DIRCETUR", "Dirección Regional de Comercio Exterior y Turismo", "COMERCIO_TURISMO"),
    ("DREM", "Dirección Regional de Energía y Minas", "ENERGIA_MINAS"),
    ("DRVCS", "Dirección Regional de Vivienda, Construcción y Saneamiento", "VIVIENDA"),
)
LOCAL_UNITS = (
    ("UGEL", "Unidad de Gestión Educativa Local", "EDUCACION"),
    ("RED-SALUD", "Red de Salud", "SALUD"),
    ("HOSPITAL", "Hospital Regional", "SALUD"),
)
# Chance of each channel besides PRESENCIAL (TELEFONICO, VIRTUAL, MOVIL): larger municipalities
# (lower MEF letter) offer more; a regional body is between types A and C.
CHANNEL_ODDS = {
    "A": (0.6, 0.95, 0.1),
    "B": (0.5, 0.9, 0.05),
    "C": (0.3, 0.7, 0.05),
    "D": (0.15, 0.5, 0.05),
    "E": (0.1, 0.35, 0.05),
    "F": (0.05, 0.2, 0.05),
    "G": (0.05, 0.1, 0.05),
    "REGIONAL": (0.4, 0.75, 0.15),
}
DEFAULT_DAILY_TICKETS = 100
"""Tickets per business day of a peer group missing from the generator's ``DAILY_VOLUME``."""


@dataclass(frozen=True)
class EntityRow:
    """One line of entities.csv, in its column order."""

    entity_id: str
    name: str
    sector: str
    government_level: str
    region: str
    peer_group: str
    municipal_type: str
    channels: str


def daily_tickets(peer_group: str) -> int:
    """Tickets per business day of an entity of ``peer_group``: the test kit generator's rule,
    so a bulk history and the generator's live events weigh entities alike."""
    return DAILY_VOLUME.get(peer_group, DEFAULT_DAILY_TICKETS)


def write_national_catalogues(
    target: Path,
    entities: int = NATIONAL_ENTITIES,
    seed: int = 0,
    source: Path | None = None,
) -> Path:
    """Copy ``source`` (default: the repository's catalogues) to ``target`` with ``entities``
    entities in total in its entities.csv; return ``target``."""
    origin = Path(source) if source is not None else default_directory()
    shutil.copytree(origin, target, dirs_exist_ok=True)
    path = target / "entities.csv"
    text = (origin / "entities.csv").read_text(encoding="utf-8")
    real = list(csv.DictReader(io.StringIO(text)))
    regions = _regions(origin / "regions.csv")
    generated = national_entities(real, regions, entities, seed)
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(astuple(row) for row in generated)
    # The real lines stay as they were: only rows are appended.
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    with path.open("a", encoding="utf-8") as file:
        file.write(out.getvalue())
    return target


def _regions(path: Path) -> dict[str, tuple[str, str]]:
    """Region code -> (ubigeo, name), in the file's order."""
    with path.open(encoding="utf-8") as file:
        return {row["code"]: (row["ubigeo"], row["name"]) for row in csv.DictReader(file)}


def national_entities(
    real: Sequence[Mapping[str, str]],
    regions: Mapping[str, tuple[str, str]],
    total: int,
    seed: int,
) -> list[EntityRow]:
    """The entities to add to ``real`` (entities.csv rows) to reach ``total``."""
    count = total - len(real)
    if count < 0:
        raise ValueError(f"{total} entities is fewer than the {len(real)} real ones")
    rng = random.Random(seed)
    governed = {row["region"] for row in real if row["peer_group"] == "GOBIERNO_REGIONAL"}
    rows = [_regional_government(code, regions, rng) for code in regions if code not in governed]
    rows = rows[:count]
    rest = count - len(rows)
    municipalities = round(rest * MUNICIPAL_SHARE)
    rows += _municipalities(municipalities, regions, rng)
    rows += _regional_bodies(rest - municipalities, regions, rng)
    return rows


def apportion(total: int, weights: Mapping[str, float]) -> dict[str, int]:
    """``total`` split in proportion to ``weights`` (largest remainder: sums exactly)."""
    whole = sum(weights.values())
    shares = {key: total * weight / whole for key, weight in weights.items()}
    result = {key: int(share) for key, share in shares.items()}
    left = total - sum(result.values())
    by_remainder = sorted(shares, key=lambda key: result[key] - shares[key])
    for key in by_remainder[:left]:
        result[key] += 1
    return result


def _channels(kind: str, rng: random.Random) -> str:
    phone, virtual, mobile = CHANNEL_ODDS[kind]
    offered = ["PRESENCIAL"]
    offered += ["TELEFONICO"] if rng.random() < phone else []
    offered += ["VIRTUAL"] if rng.random() < virtual else []
    offered += ["MOVIL"] if rng.random() < mobile else []
    return "|".join(offered)


def _regional_government(
    code: str, regions: Mapping[str, tuple[str, str]], rng: random.Random
) -> EntityRow:
    name = regions[code][1]
    return EntityRow(
        f"GR-{code.replace('_', '-')}",
        f"Gobierno Regional de {name}",
        "GOBIERNO_REGIONAL",
        "REGIONAL",
        code,
        "GOBIERNO_REGIONAL",
        "",
        _channels("REGIONAL", rng),
    )


def _shuffled(quotas: Mapping[str, int], rng: random.Random) -> list[str]:
    """Each key as many times as its quota, in a seeded random order."""
    items = [key for key, quota in quotas.items() for _ in range(quota)]
    rng.shuffle(items)
    return items


def _municipalities(
    count: int, regions: Mapping[str, tuple[str, str]], rng: random.Random
) -> list[EntityRow]:
    provincial = round(count * PROVINCIAL_SHARE)
    rows: list[EntityRow] = []
    for level, number, places, types in (
        ("Provincial", provincial, PROVINCES, PROVINCIAL_TYPES),
        ("Distrital", count - provincial, DISTRICTS, DISTRICT_TYPES),
    ):
        where = _shuffled(apportion(number, {code: places[code] for code in regions}), rng)
        kinds = _shuffled(apportion(number, types), rng)
        serial: dict[str, int] = {}
        for region, municipal_type in zip(where, kinds, strict=True):
            serial[region] = serial.get(region, 0) + 1
            ubigeo, name = regions[region]
            rows.append(
                EntityRow(
                    f"MUNI-{level[0]}-{ubigeo}-{serial[region]:03d}",
                    f"Municipalidad {level} {serial[region]:03d} de {name} (sintética)",
                    "GOBIERNO_LOCAL",
                    "LOCAL",
                    region,
                    f"MUNICIPALIDAD_TIPO_{municipal_type}",
                    municipal_type,
                    _channels(municipal_type, rng),
                )
            )
    return rows


def _regional_bodies(
    count: int, regions: Mapping[str, tuple[str, str]], rng: random.Random
) -> list[EntityRow]:
    """Directorates of each region first, then local units spread like the districts."""
    directorates = [(d, code, 0) for d in DIRECTORATES for code in regions][:count]
    units = apportion(count - len(directorates), {code: DISTRICTS[code] for code in regions})
    local = [
        (LOCAL_UNITS[n % len(LOCAL_UNITS)], code, n // len(LOCAL_UNITS) + 1)
        for code, number in units.items()
        for n in range(number)
    ]
    return [_regional_body(*item, regions, rng) for item in (*directorates, *local)]


def _regional_body(
    kind: tuple[str, str, str],
    region: str,
    serial: int,
    regions: Mapping[str, tuple[str, str]],
    rng: random.Random,
) -> EntityRow:
    prefix, title, sector = kind
    ubigeo, name = regions[region]
    slug = region.replace("_", "-")
    entity_id = f"{prefix}-{slug}" if not serial else f"{prefix}-{ubigeo}-{serial:03d}"
    label = f"{title} {name}" if not serial else f"{title} {serial:03d} de {name} (sintética)"
    return EntityRow(
        entity_id,
        label,
        sector,
        "REGIONAL",
        region,
        "GOBIERNO_REGIONAL",
        "",
        _channels("REGIONAL", rng),
    )
