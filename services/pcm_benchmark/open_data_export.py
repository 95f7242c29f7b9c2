"""`pcm-benchmark export`: a month's benchmark results written as open data, a Frictionless Data
Package in ``<PCM_BENCHMARK_EXPORT_DIR>/<YYYY-MM>/`` (``resultados`` and ``criterios``, each as
CSV and Parquet, and ``datapackage.json``).

The package is written to a hidden temporary folder beside it and renamed into place: a reader
never sees half an export. A rerun over the same results writes the same bytes (the package's
``created`` is when the results were computed) and leaves the published folder untouched; over
new results (the month reassessed) it replaces it whole.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from clickhouse_driver import Client
from pcm_common.catalogues import Catalogues, load_catalogues
from pcm_common.clickhouse.client import connect
from pcm_common.logging import get_logger

from pcm_benchmark.open_data import (
    FORMATS,
    Column,
    ExportError,
    FileFacts,
    OpenData,
    Row,
    build,
    check_allowlist,
    descriptor,
    file_name,
)
from pcm_benchmark.reads import StoredCriterion, newest_version, periods, results
from pcm_benchmark.settings import BenchmarkSettings

log = get_logger(__name__)

GRAIN = "MONTH"
DESCRIPTOR = "datapackage.json"

_CRITERION_COLUMNS = [
    name for name in StoredCriterion.__dataclass_fields__ if name != "reason"
]  # free text is not even read


def period_criteria(
    client: Client, database: str, grain: str, period: dt.date, version: str
) -> list[StoredCriterion]:
    """Every criterion of a period under one catalogue version (``reads.criteria`` reads one
    entity's), by entity, standard and criterion; ``reason`` left empty, never read."""
    rows = client.execute(
        f"SELECT {', '.join(_CRITERION_COLUMNS)} FROM {database}.benchmark_criteria FINAL "
        "WHERE grain = %(grain)s AND period_start = %(period)s "
        "AND catalogue_version = %(version)s "
        "ORDER BY entity_id, standard, criterion_id",
        {"grain": grain, "period": period, "version": version},
    )
    criteria = []
    for row in rows:
        fields: dict[str, Any] = dict(zip(_CRITERION_COLUMNS, row, strict=True))
        fields["verified"] = bool(fields["verified"])
        criteria.append(StoredCriterion(reason="", **fields))
    return criteria


def open_data(
    client: Client, database: str, catalogues: Catalogues, month: dt.date | None = None
) -> OpenData:
    """The open data of a month (default: the newest assessed) under the catalogue version of
    its newest assessment."""
    if month is None:
        assessed = periods(client, database, GRAIN)
        if not assessed:
            raise ExportError("no month has been assessed yet (run `pcm-benchmark assess`)")
        month = assessed[0]
    version = newest_version(client, database, GRAIN, month)
    if version is None:
        raise ExportError(f"{month:%Y-%m} has not been assessed")
    stored = results(client, database, GRAIN, month, version=version)
    criteria = period_criteria(client, database, GRAIN, month, version)
    return build(catalogues, stored, criteria, computed(client, database, GRAIN, month, version))


def computed(
    client: Client, database: str, grain: str, period: dt.date, version: str
) -> dt.datetime | None:
    """When a period's results were computed, as an instant (the driver would hand a
    ``DateTime`` back naive, in the server's time zone)."""
    rows = client.execute(
        f"SELECT toUnixTimestamp(max(computed_at)) FROM {database}.benchmark_results "
        "WHERE grain = %(grain)s AND period_start = %(period)s "
        "AND catalogue_version = %(version)s HAVING count() > 0",
        {"grain": grain, "period": period, "version": version},
    )
    return dt.datetime.fromtimestamp(rows[0][0], dt.UTC) if rows else None


def write(data: OpenData, directory: Path) -> Path:
    """Write the package to ``directory/<YYYY-MM>/`` whole (temporary folder, then rename);
    unchanged when the same package is there already. Returns the package's folder."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{data.period:%Y-%m}"
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory))
    try:
        write_files(data, staging)
        staging.chmod(0o755)  # mkdtemp's 0700 would keep the published folder from its readers
        if target.is_dir() and _same_files(staging, target):
            log.info("open data unchanged", path=str(target))
            return target
        if target.exists():
            retired = directory / f".{target.name}.{uuid.uuid4().hex}.old"
            target.rename(retired)
            staging.rename(target)
            shutil.rmtree(retired)
        else:
            staging.rename(target)
        _fsync(directory)
        return target
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def write_files(data: OpenData, folder: Path) -> None:
    """The package's files in ``folder``: each table as CSV and Parquet, then the descriptor."""
    facts: dict[str, FileFacts] = {}
    for table, (columns, rows) in data.tables().items():
        check_allowlist(table, columns, rows)  # the last gate before a file
        for suffix in FORMATS:
            path = folder / file_name(table, suffix)
            if suffix == "csv":
                write_csv(path, columns, rows)
            else:
                write_parquet(path, columns, rows)
            facts[path.name] = _facts(path)
    content = json.dumps(descriptor(data, facts), ensure_ascii=False, indent=2) + "\n"
    (folder / DESCRIPTOR).write_text(content, encoding="utf-8")
    for path in folder.iterdir():
        _fsync(path)
    _fsync(folder)


def write_csv(path: Path, columns: Sequence[Column], rows: Sequence[Row]) -> None:
    """UTF-8 (no BOM), comma, header, CRLF line ends (RFC 4180), dot decimal, ISO dates, empty
    for a missing value, booleans as true/false."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=",", lineterminator="\r\n")
        writer.writerow([c.name for c in columns])
        for row in rows:
            writer.writerow([csv_value(row[c.name]) for c in columns])


def csv_value(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # shortest round-trip form, dot decimal
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


ARROW_TYPES: Mapping[str, pa.DataType] = {
    "string": pa.string(),
    "integer": pa.int64(),
    "number": pa.float64(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
}


def arrow_schema(columns: Sequence[Column]) -> pa.Schema:
    return pa.schema(
        [pa.field(c.name, ARROW_TYPES[c.type], nullable=not c.required) for c in columns]
    )


def write_parquet(path: Path, columns: Sequence[Column], rows: Sequence[Row]) -> None:
    schema = arrow_schema(columns)
    table = pa.Table.from_pylist(list(rows), schema=schema)
    pq.write_table(table, path, compression="zstd")


def _facts(path: Path) -> FileFacts:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return FileFacts(path.stat().st_size, digest.hexdigest())


def _same_files(one: Path, other: Path) -> bool:
    names = sorted(p.name for p in one.iterdir())
    if names != sorted(p.name for p in other.iterdir()):
        return False
    return all(_facts(one / name) == _facts(other / name) for name in names)


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def export(settings: BenchmarkSettings) -> None:
    """The command: the month of PCM_BENCHMARK_EXPORT_MONTH (default the newest assessed)."""
    catalogues = load_catalogues(settings.catalogue_dir)
    month = (
        dt.date.fromisoformat(f"{settings.benchmark_export_month}-01")
        if settings.benchmark_export_month
        else None
    )
    client = connect(settings)
    try:
        data = open_data(client, settings.clickhouse_database, catalogues, month)
    finally:
        client.disconnect()
    folder = write(data, settings.benchmark_export_dir)
    print(
        f"Open data of {data.period:%Y-%m} (standards catalogue {data.catalogue_version}): "
        f"{len(data.results)} results, {len(data.criteria)} criteria in {folder}"
    )
