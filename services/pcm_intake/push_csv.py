"""`pcm-push`: bulk import a queue system's / document system's CSV export through the gRPC API.

For entities without a gRPC integration. Rows are converted, sent in batches through the same
IntakeService (so the same validation applies), with a progress bar; every refused row is
written to a report (row number, event id, field, reason). Re-running the same file is safe:
already-accepted rows come back as duplicates.

Exit codes: 0 every row stored (or duplicate), 1 some rows refused (see the report), 2 the
import could not run (bad arguments, credentials, unreachable service).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import grpc
from google.protobuf.message import Message
from pcm.monitoring.v1 import attention_pb2, common_pb2, procedure_pb2
from pcm_common.csv_messages import message_from_row
from pcm_common.validation import FieldError
from tqdm import tqdm

from pcm_intake.client import IntakeClient

KINDS: dict[str, type[Message]] = {
    "attentions": attention_pb2.AttentionEvent,
    "procedures": procedure_pb2.ProcedureStageEvent,
}


@dataclass
class ImportSummary:
    rows: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected_rows: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class Row:
    line: int  # line number in the file (header = 1)
    message: Message


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="pcm-push", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("kind", choices=sorted(KINDS))
    parser.add_argument("csv_file", type=Path)
    parser.add_argument("--entity", required=True, help="your entity id (filled where empty)")
    parser.add_argument("--target", default="127.0.0.1:50051", help="intake host:port")
    parser.add_argument("--token-env", default="PCM_TOKEN", help="env var holding the token")
    parser.add_argument("--ca", type=Path, help="CA certificate (PEM) to use TLS")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument(
        "--report", type=Path, help="rejected rows CSV (default: <file>.rejected.csv)"
    )
    parser.add_argument("--timezone", default="America/Lima", help="zone of naive timestamps")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    token = os.environ.get(args.token_env)
    if not token:
        print(f"error: set your entity token in ${args.token_env}", file=sys.stderr)
        return 2
    if not args.csv_file.exists():
        print(f"error: {args.csv_file}: no such file", file=sys.stderr)
        return 2
    report_path = args.report or args.csv_file.with_suffix(".rejected.csv")
    client = IntakeClient(args.target, token, args.ca)
    try:
        with report_path.open("w", newline="") as report_file:
            summary = run_import(args, client, report_file)
    except grpc.RpcError as error:
        print(f"error: {error.code().name}: {error.details()}", file=sys.stderr)
        return 2
    finally:
        client.close()
    print(
        f"{summary.rows} rows: {summary.accepted} stored, {summary.duplicates} duplicates, "
        f"{len(summary.rejected_rows)} refused"
        + (f" (details in {report_path})" if summary.rejected_rows else "")
    )
    return 1 if summary.rejected_rows else 0


def run_import(
    args: argparse.Namespace, client: IntakeClient, report_file: TextIO
) -> ImportSummary:
    report = csv.writer(report_file)
    report.writerow(["row", "event_id", "field", "reason"])
    summary = ImportSummary()
    total = count_rows(args.csv_file)
    with tqdm(total=total, unit="row", disable=args.quiet, file=sys.stderr) as progress:
        batch: list[Row] = []
        for row, errors in read_rows(
            args.csv_file, KINDS[args.kind], args.entity, ZoneInfo(args.timezone)
        ):
            summary.rows += 1
            if errors:
                summary.rejected_rows.add(row.line)
                report.writerows(
                    [row.line, getattr(row.message, "event_id", ""), e.field, e.reason]
                    for e in errors
                )
                progress.update(1)
                continue
            batch.append(row)
            if len(batch) >= args.batch_size:
                send(args.kind, client, batch, summary, report, progress)
                batch = []
        if batch:
            send(args.kind, client, batch, summary, report, progress)
    return summary


def count_rows(path: Path) -> int:
    with path.open("rb") as file:
        return max(0, sum(1 for _ in file) - 1)


def read_rows(
    path: Path, message_type: type[Message], entity_id: str, zone: ZoneInfo
) -> Iterator[tuple[Row, list[FieldError]]]:
    with path.open(newline="", encoding="utf-8-sig") as file:
        for line, record in enumerate(csv.DictReader(file), start=2):
            message, errors = message_from_row(record, message_type, zone)
            # Every pushed message type has entity_id; the export may leave it out.
            if not getattr(message, "entity_id"):  # noqa: B009
                setattr(message, "entity_id", entity_id)  # noqa: B010
            yield Row(line, message), errors


def send(
    kind: str,
    client: IntakeClient,
    batch: list[Row],
    summary: ImportSummary,
    report: Any,  # csv.writer's type is private
    progress: tqdm,
) -> None:
    messages = [row.message for row in batch]
    result: common_pb2.PushResult = (
        client.push_attentions(messages)  # type: ignore[arg-type]
        if kind == "attentions"
        else client.push_procedure_stages(messages)  # type: ignore[arg-type]
    )
    summary.accepted += result.accepted
    summary.duplicates += len(result.duplicate_indexes)
    for rejection in result.rejections:
        row = batch[rejection.index]
        summary.rejected_rows.add(row.line)
        report.writerow([row.line, rejection.event_id, rejection.field, rejection.reason])
    progress.update(len(batch))


if __name__ == "__main__":
    raise SystemExit(main())
