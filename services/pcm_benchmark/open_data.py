"""The benchmark results of a month as open data (pure: rows and the Frictionless Data Package
descriptor; reading ClickHouse and writing the files is ``open_data_export``'s).

Two tables, each as CSV and as Parquet: ``resultados`` (one row per entity and standard, OVERALL
included) and ``criterios`` (the evidence behind them, one row per criterion). Public bodies are
no personal data, and these tables hold none; still, what is published is an explicit allowlist
of columns (``RESULT_COLUMNS``, ``CRITERION_COLUMNS``) and nothing else reaches a file. No free
text is published: the criteria's ``reason`` and the results' ``gaps`` are never read; what they
say is in the codes (outcome, value, threshold).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pcm_common.catalogues import Catalogues
from pcm_common.catalogues.models import GovernmentLevel, Op

from pcm_benchmark.assessment import NONE, Outcome
from pcm_benchmark.national import OVERALL
from pcm_benchmark.reads import StoredCriterion, StoredResult

LICENCE: Mapping[str, str] = {
    "name": "ODC-BY-1.0",
    "path": "https://opendatacommons.org/licenses/by/1-0/",
    "title": "Open Data Commons Attribution License v1.0",
}
"""Reuse with attribution (the licence of the Plataforma Nacional de Datos Abiertos)."""

PUBLISHER = "Presidencia del Consejo de Ministros (PCM), Secretaría de Gestión Pública"
OVERALL_NAME = "Resultado general (promedio de los estándares aplicables)"

RESULTS = "resultados"
CRITERIA = "criterios"

Row = dict[str, Any]
FieldType = Literal["string", "integer", "number", "boolean", "date"]


class ExportError(Exception):
    """The results cannot be published as they are (e.g. an entity no longer catalogued)."""


@dataclass(frozen=True)
class Column:
    """One published column and its Table Schema field."""

    name: str
    type: FieldType
    title: str
    description: str
    required: bool = True
    enum: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None

    def field(self) -> dict[str, Any]:
        constraints: dict[str, Any] = {"required": self.required}
        if self.enum is not None:
            constraints["enum"] = list(self.enum)
        if self.minimum is not None:
            constraints["minimum"] = self.minimum
        if self.maximum is not None:
            constraints["maximum"] = self.maximum
        field: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "title": self.title,
            "description": self.description,
        }
        if self.type == "date":
            field["format"] = "default"  # ISO 8601, YYYY-MM-DD
        field["constraints"] = constraints
        return field


RESULT_COLUMNS: tuple[str, ...] = (
    "periodo",
    "version_catalogo",
    "entidad_id",
    "entidad_nombre",
    "sector",
    "nivel_gobierno",
    "region",
    "grupo_pares",
    "estandar_codigo",
    "estandar_nombre",
    "aplica",
    "nivel",
    "puntaje",
    "posicion_grupo",
    "total_grupo",
    "percentil_grupo",
    "posicion_nacional",
    "total_nacional",
    "percentil_nacional",
    "criterios_cumplidos",
    "criterios_no_cumplidos",
    "criterios_sin_evidencia",
    "criterios_muestra_insuficiente",
    "criterios_no_aplicables",
)
"""Every column of ``resultados``, in order: the allowlist (nothing else is published)."""

CRITERION_COLUMNS: tuple[str, ...] = (
    "periodo",
    "version_catalogo",
    "entidad_id",
    "estandar_codigo",
    "criterio_id",
    "nivel",
    "kpi_codigo",
    "indicador_codigo",
    "operador",
    "umbral",
    "resultado",
    "valor",
    "numerador",
    "denominador",
    "verificado",
)
"""Every column of ``criterios``, in order: the allowlist (no ``reason``: no free text)."""

RESULT_KEY = ("periodo", "version_catalogo", "entidad_id", "estandar_codigo")
CRITERION_KEY = (*RESULT_KEY, "criterio_id")


def _period_columns() -> list[Column]:
    return [
        Column(
            "periodo",
            "date",
            "Periodo",
            "Primer día del mes evaluado (AAAA-MM-DD); el mes completo en hora de Lima.",
        ),
        Column(
            "version_catalogo",
            "string",
            "Versión del catálogo de estándares",
            "Versión del catálogo de estándares de calidad (catalogues/standards.yaml) con la "
            "que se evaluó; resultados de versiones distintas no son comparables.",
        ),
        Column(
            "entidad_id",
            "string",
            "Código de la entidad",
            "Identificador de la entidad pública en el catálogo de entidades (p. ej. RENIEC).",
        ),
    ]


def _standard_column(standards: Sequence[str]) -> Column:
    return Column(
        "estandar_codigo",
        "string",
        "Código del estándar",
        "Estándar de calidad de la atención a la ciudadanía evaluado; OVERALL es el resultado "
        "general de la entidad sobre todos los estándares que le aplican.",
        enum=tuple(standards),
    )


def _percent(name: str, title: str, description: str, *, required: bool) -> Column:
    return Column(name, "number", title, description, required, minimum=0, maximum=100)


def _count(name: str, title: str, description: str, *, required: bool = False) -> Column:
    return Column(name, "integer", title, description, required, minimum=1)


def result_columns(levels: Sequence[str], standards: Sequence[str]) -> list[Column]:
    """The fields of ``resultados``: ``levels`` those a result may have (NONE first),
    ``standards`` the standard codes (OVERALL included)."""
    unranked = " Vacío si el estándar no aplica a la entidad."
    outcome_counts = [
        (
            "criterios_cumplidos",
            "Criterios cumplidos",
            "Criterios cuyo valor cumple el umbral (MET).",
        ),
        (
            "criterios_no_cumplidos",
            "Criterios no cumplidos",
            "Criterios con valor que no cumple el umbral (NOT_MET).",
        ),
        (
            "criterios_sin_evidencia",
            "Criterios sin evidencia",
            "Criterios sin valor del indicador en el periodo, o con un valor autorreportado no "
            "vigente o rechazado por la entidad supervisora (NO_EVIDENCE).",
        ),
        (
            "criterios_muestra_insuficiente",
            "Criterios con muestra insuficiente",
            "Criterios cuyo indicador se calculó sobre menos observaciones que el mínimo del "
            "catálogo; no cuentan como cumplidos (INSUFFICIENT_SAMPLE).",
        ),
        (
            "criterios_no_aplicables",
            "Criterios no aplicables",
            "Criterios que no aplican a la entidad, p. ej. de trámites para una entidad sin "
            "procedimientos TUPA (NOT_APPLICABLE).",
        ),
    ]
    return [
        *_period_columns(),
        Column("entidad_nombre", "string", "Nombre de la entidad", "Nombre oficial."),
        Column(
            "sector",
            "string",
            "Sector",
            "Código del sector al que pertenece la entidad (catálogo de entidades).",
        ),
        Column(
            "nivel_gobierno",
            "string",
            "Nivel de gobierno",
            "Nivel de gobierno de la entidad: NACIONAL, REGIONAL o LOCAL.",
            enum=tuple(level.value for level in GovernmentLevel),
        ),
        Column(
            "region",
            "string",
            "Región",
            "Código del departamento (región) de la sede principal de la entidad.",
        ),
        Column(
            "grupo_pares",
            "string",
            "Grupo de pares",
            "Código del grupo de entidades comparables entre sí (catálogo de grupos de pares); "
            "la posición en el grupo se calcula dentro de él.",
        ),
        _standard_column(standards),
        Column(
            "estandar_nombre",
            "string",
            "Nombre del estándar",
            "Nombre del estándar en el catálogo; para OVERALL, el resultado general.",
        ),
        Column(
            "aplica",
            "boolean",
            "El estándar aplica",
            "Falso si ningún criterio del estándar aplica a la entidad: se muestra sin puntaje "
            "ni posición. OVERALL aplica siempre.",
        ),
        Column(
            "nivel",
            "string",
            "Nivel alcanzado",
            "Nivel acumulativo alcanzado (se alcanza un nivel al cumplir todos sus criterios "
            "aplicables y los de los niveles inferiores); NONE: ningún nivel. Para OVERALL, el "
            "nivel más bajo entre los estándares que aplican.",
            enum=tuple(levels),
        ),
        _percent(
            "puntaje",
            "Puntaje (0-100)",
            "Porcentaje de los criterios aplicables del estándar que se cumplen, en todos sus "
            "niveles; para OVERALL, el promedio de los puntajes de los estándares que aplican."
            + unranked,
            required=False,
        ),
        _count(
            "posicion_grupo",
            "Posición en el grupo de pares",
            "Posición de la entidad entre las del grupo de pares a las que el estándar aplica "
            "(1 = la mejor; empates comparten posición)." + unranked,
        ),
        _count(
            "total_grupo",
            "Entidades en el grupo de pares",
            "Número de entidades del grupo de pares a las que el estándar aplica." + unranked,
        ),
        _percent(
            "percentil_grupo",
            "Percentil en el grupo de pares",
            "Rango percentil (0-100) en el grupo de pares: porcentaje de entidades por debajo, "
            "más la mitad de las empatadas." + unranked,
            required=False,
        ),
        _count(
            "posicion_nacional",
            "Posición nacional",
            "Posición entre todas las entidades a las que el estándar aplica (1 = la mejor)."
            + unranked,
        ),
        _count(
            "total_nacional",
            "Entidades evaluadas a nivel nacional",
            "Número de entidades a las que el estándar aplica." + unranked,
        ),
        _percent(
            "percentil_nacional",
            "Percentil nacional",
            "Rango percentil (0-100) entre todas las entidades a las que el estándar aplica."
            + unranked,
            required=False,
        ),
        *(
            Column(
                name,
                "integer",
                title,
                description + " Para OVERALL, de todos los estándares.",
                minimum=0,
            )
            for name, title, description in outcome_counts
        ),
    ]


def criterion_columns(levels: Sequence[str], standards: Sequence[str]) -> list[Column]:
    """The fields of ``criterios``: ``levels`` those of the catalogue (a criterion belongs to
    one), ``standards`` the standard codes."""
    return [
        *_period_columns(),
        _standard_column(standards),
        Column(
            "criterio_id",
            "string",
            "Código del criterio",
            "Identificador del criterio en el catálogo de estándares (p. ej. E01-B1).",
        ),
        Column(
            "nivel",
            "string",
            "Nivel del criterio",
            "Nivel del estándar al que pertenece el criterio.",
            enum=tuple(levels),
        ),
        Column(
            "kpi_codigo",
            "string",
            "Código del KPI",
            "KPI calculado por la plataforma que el criterio evalúa (catálogo de KPI); vacío si "
            "el criterio evalúa un indicador autorreportado.",
            required=False,
        ),
        Column(
            "indicador_codigo",
            "string",
            "Código del indicador autorreportado",
            "Indicador autorreportado por la entidad con evidencia que el criterio evalúa; vacío "
            "si el criterio evalúa un KPI.",
            required=False,
        ),
        Column(
            "operador",
            "string",
            "Operador",
            "Comparación del valor con el umbral: >= (al menos), <= (a lo sumo), == (igual).",
            enum=tuple(op.value for op in Op),
        ),
        Column(
            "umbral",
            "number",
            "Umbral",
            "Valor que el criterio exige (porcentajes 0-100; sí/no como 1/0).",
        ),
        Column(
            "resultado",
            "string",
            "Resultado del criterio",
            "MET: cumple; NOT_MET: no cumple; NO_EVIDENCE: sin valor en el periodo, o valor "
            "autorreportado no vigente o rechazado; INSUFFICIENT_SAMPLE: muestra menor al mínimo "
            "(no cuenta como cumplido); NOT_APPLICABLE: no aplica a la entidad.",
            enum=tuple(outcome.value for outcome in Outcome),
        ),
        Column(
            "valor",
            "number",
            "Valor",
            "Valor del KPI en el mes, o valor autorreportado (también el rechazado o no "
            "vigente, que no cuenta); vacío si no hay valor.",
            required=False,
        ),
        Column(
            "numerador",
            "number",
            "Numerador",
            "Numerador del KPI (p. ej. atenciones dentro del tiempo objetivo); vacío para "
            "indicadores autorreportados y criterios sin valor.",
            required=False,
        ),
        Column(
            "denominador",
            "number",
            "Denominador",
            "Denominador del KPI (la muestra, p. ej. atenciones del mes); vacío para "
            "indicadores autorreportados y criterios sin valor.",
            required=False,
        ),
        Column(
            "verificado",
            "boolean",
            "Verificado",
            "Para indicadores autorreportados: verdadero si la entidad supervisora verificó el "
            "valor (uno pendiente de revisión cuenta, sin verificar); vacío para KPI.",
            required=False,
        ),
    ]


@dataclass(frozen=True)
class OpenData:
    """A month's open data: both tables' columns and rows."""

    period: dt.date
    catalogue_version: str
    created: dt.datetime
    """When the results were computed (UTC): the package's ``created``, so that reruns over
    the same results are byte-identical."""
    catalogue_versions: Mapping[str, str]
    result_columns: tuple[Column, ...]
    results: tuple[Row, ...]
    criterion_columns: tuple[Column, ...]
    criteria: tuple[Row, ...]

    def tables(self) -> dict[str, tuple[tuple[Column, ...], tuple[Row, ...]]]:
        return {
            RESULTS: (self.result_columns, self.results),
            CRITERIA: (self.criterion_columns, self.criteria),
        }


def build(
    catalogues: Catalogues,
    results: Sequence[StoredResult],
    criteria: Sequence[StoredCriterion],
    computed: dt.datetime | None = None,
) -> OpenData:
    """The open data of one period's results under one catalogue version (all of ``results``
    share both) and the criteria behind them; ``computed``: when they were computed (default
    the newest ``computed_at``, naive ones taken as UTC, as the assessment writes them)."""
    if not results:
        raise ExportError("no results to publish")
    period, version = results[0].period_start, results[0].catalogue_version
    mixed = {(r.period_start, r.catalogue_version) for r in results} - {(period, version)}
    if mixed:
        raise ExportError(f"results of more than one period or version: {sorted(mixed)}")
    declared = [s.code for s in catalogues.standards]
    standards = _enum([*declared, OVERALL], (r.standard for r in results))
    levels = _enum(catalogues.standard_levels, (c.level for c in criteria))
    result_levels = _enum([NONE, *levels], (r.level for r in results))
    result_rows = tuple(result_row(catalogues, r) for r in results)
    criterion_rows = tuple(criterion_row(period, version, c) for c in criteria)
    data = OpenData(
        period,
        version,
        _utc(computed or max(r.computed_at for r in results)),
        dict(catalogues.versions),
        tuple(result_columns(result_levels, standards)),
        result_rows,
        tuple(criterion_columns(levels, standards)),
        criterion_rows,
    )
    for name, (columns, rows) in data.tables().items():
        check_allowlist(name, columns, rows)
    return data


def _utc(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def _enum(declared: Sequence[str], seen: Iterable[str]) -> tuple[str, ...]:
    """The declared values in order, then any other value the data holds (a result of an older
    catalogue version): the schema always describes what was published."""
    return (*declared, *sorted(set(seen) - set(declared)))


def result_row(catalogues: Catalogues, result: StoredResult) -> Row:
    """One row of ``resultados`` (a standard that does not apply: no score, rank or percentile)."""
    try:
        entity = catalogues.entity(result.entity_id)
    except KeyError:
        raise ExportError(f"entity {result.entity_id!r} is not in the entities catalogue") from None
    if result.overall:
        standard_name = OVERALL_NAME
    else:
        named = {s.code: s.name for s in catalogues.standards}
        if result.standard not in named:
            raise ExportError(f"standard {result.standard!r} is not in the standards catalogue")
        standard_name = named[result.standard]
    applies = result.national_rank > 0

    def ranked(value: float) -> float | None:
        return value if applies else None

    return {
        "periodo": result.period_start,
        "version_catalogo": result.catalogue_version,
        "entidad_id": result.entity_id,
        "entidad_nombre": entity.name,
        "sector": entity.sector,
        "nivel_gobierno": entity.government_level.value,
        "region": entity.region,
        "grupo_pares": result.peer_group,
        "estandar_codigo": result.standard,
        "estandar_nombre": standard_name,
        "aplica": applies,
        "nivel": result.level,
        "puntaje": ranked(result.score),
        "posicion_grupo": result.peer_rank if applies else None,
        "total_grupo": result.peer_count if applies else None,
        "percentil_grupo": ranked(result.peer_percentile),
        "posicion_nacional": result.national_rank if applies else None,
        "total_nacional": result.national_count if applies else None,
        "percentil_nacional": ranked(result.national_percentile),
        "criterios_cumplidos": result.met,
        "criterios_no_cumplidos": result.not_met,
        "criterios_sin_evidencia": result.no_evidence,
        "criterios_muestra_insuficiente": result.insufficient_sample,
        "criterios_no_aplicables": result.not_applicable,
    }


def criterion_row(period: dt.date, version: str, criterion: StoredCriterion) -> Row:
    """One row of ``criterios`` (its ``reason`` is free text: left out)."""
    kpi = criterion.kpi_code or None
    measured = kpi is not None and criterion.value is not None
    return {
        "periodo": period,
        "version_catalogo": version,
        "entidad_id": criterion.entity_id,
        "estandar_codigo": criterion.standard,
        "criterio_id": criterion.criterion_id,
        "nivel": criterion.level,
        "kpi_codigo": kpi,
        "indicador_codigo": criterion.indicator_code or None,
        "operador": criterion.op,
        "umbral": criterion.threshold,
        "resultado": criterion.outcome,
        "valor": criterion.value,
        # Stored as 0 when there is none: only a KPI's value has a numerator and denominator.
        "numerador": criterion.numerator if measured else None,
        "denominador": criterion.denominator if measured else None,
        "verificado": None if kpi is not None else criterion.verified,
    }


def check_allowlist(table: str, columns: Sequence[Column], rows: Iterable[Row]) -> None:
    """Raise unless the table's columns, and every row's, are exactly its allowlist."""
    allowed = {RESULTS: RESULT_COLUMNS, CRITERIA: CRITERION_COLUMNS}[table]
    names = tuple(c.name for c in columns)
    if names != allowed:
        raise ExportError(f"{table}: columns {names} are not the allowlist {allowed}")
    for row in rows:
        if tuple(row) != allowed:
            extra = sorted(set(row) - set(allowed))
            raise ExportError(f"{table}: a row's columns differ from the allowlist ({extra})")


@dataclass(frozen=True)
class FileFacts:
    """What the descriptor says of a written file (the reader can check it)."""

    bytes: int
    sha256: str


FORMATS: Mapping[str, tuple[str, str]] = {
    "csv": ("csv", "text/csv"),
    "parquet": ("parquet", "application/vnd.apache.parquet"),
}
"""File suffix → (Data Package ``format``, ``mediatype``)."""


def file_name(table: str, suffix: str) -> str:
    return f"{table}.{suffix}"


def resource_name(table: str, suffix: str) -> str:
    """The CSV resource carries the table's name (the foreign keys' target); Parquet's adds it."""
    return table if suffix == "csv" else f"{table}-{suffix}"


def descriptor(data: OpenData, files: Mapping[str, FileFacts]) -> dict[str, Any]:
    """The Frictionless Data Package descriptor (``datapackage.json``) of the written files
    (``files`` by file name)."""
    month = f"{data.period:%Y-%m}"
    titles = {
        RESULTS: (
            "Resultados por entidad y estándar",
            "Nivel, puntaje, posición y percentil de cada entidad pública en cada estándar de "
            f"calidad de la atención a la ciudadanía (y el resultado general OVERALL), {month}.",
        ),
        CRITERIA: (
            "Criterios evaluados por entidad y estándar",
            "Resultado, valor y umbral de cada criterio de cada estándar para cada entidad, "
            f"{month}: la evidencia detrás de los resultados.",
        ),
    }
    resources = []
    for table, (columns, _) in data.tables().items():
        for suffix, (fmt, mediatype) in FORMATS.items():
            path = file_name(table, suffix)
            facts = files[path]
            resource: dict[str, Any] = {
                "name": resource_name(table, suffix),
                "title": f"{titles[table][0]} ({suffix.upper()})",
                "description": titles[table][1],
                "profile": "tabular-data-resource",
                "path": path,
                "format": fmt,
                "mediatype": mediatype,
                "encoding": "utf-8",
                # No "bytes": frictionless cannot count a Parquet file's (it fails the check).
                "hash": f"sha256:{facts.sha256}",
            }
            if suffix == "csv":
                resource["dialect"] = {
                    "delimiter": ",",
                    "lineTerminator": "\r\n",
                    "quoteChar": '"',
                    "doubleQuote": True,
                    "header": True,
                }
            resource["schema"] = _schema(table, columns, suffix)
            resources.append(resource)
    return {
        "profile": "tabular-data-package",
        "name": f"pcm-benchmark-{month}",
        "title": f"Benchmark nacional de la calidad de la atención a la ciudadanía, {month}",
        "description": (
            "Evaluación mensual de las entidades de la administración pública del Perú frente "
            "a los estándares de calidad de la atención a la ciudadanía de la PCM: nivel, "
            "puntaje y posición por entidad y estándar, y el resultado de cada criterio. "
            "Datos de entidades públicas; no contiene datos personales ni texto libre."
        ),
        "version": data.catalogue_version,
        "created": f"{data.created:%Y-%m-%dT%H:%M:%SZ}",
        "licenses": [dict(LICENCE)],
        "keywords": ["atención a la ciudadanía", "calidad", "estándares", "PCM", "Perú"],
        "contributors": [{"title": PUBLISHER, "role": "publisher"}],
        "sources": [
            {
                "title": "Plataforma de monitoreo de la calidad de la atención a la ciudadanía "
                "(PCM): KPI calculados de los eventos de atención, trámites, reclamos del Libro "
                "de Reclamaciones y encuestas de satisfacción que envían las entidades",
            },
            {
                "title": "Indicadores autorreportados por las entidades con su evidencia, "
                "revisados por la Secretaría de Gestión Pública",
            },
            {
                "title": "Catálogos de la plataforma cargados al exportar: "
                + ", ".join(f"{n} {v}" for n, v in sorted(data.catalogue_versions.items())),
            },
        ],
        "resources": resources,
    }


def _schema(table: str, columns: Sequence[Column], suffix: str) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "fields": [column.field() for column in columns],
        "missingValues": [""],
        "primaryKey": list(RESULT_KEY if table == RESULTS else CRITERION_KEY),
    }
    if table == CRITERIA:
        schema["foreignKeys"] = [
            {
                "fields": list(RESULT_KEY),
                "reference": {
                    "resource": resource_name(RESULTS, suffix),
                    "fields": list(RESULT_KEY),
                },
            }
        ]
    return schema
