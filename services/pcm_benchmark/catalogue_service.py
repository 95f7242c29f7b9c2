"""The gRPC CatalogueService: the oversight body publishes a new version of the rule
catalogues through the API (the national role, with an author and a note), and anyone
authenticated reads their history (``pcm_common.catalogues.registry``).

The files sent are checked together with the service's own copies of the others (a standards
file naming a KPI the KPI file lacks is refused), by the same loader every service starts with:
a catalogue that would not load is never published.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from pcm.monitoring.v1 import catalogue_service_pb2, catalogue_service_pb2_grpc
from pcm_common.auth import Principal, TokenStore
from pcm_common.catalogues import Catalogues, load_catalogues
from pcm_common.catalogues.errors import CatalogueError
from pcm_common.catalogues.registry import PublishedVersion, VersionTaken, history, publish
from pcm_common.grpc_server import abort_with
from pcm_common.outbox import Connections
from pcm_common.push.reading import invalid_argument

from pcm_benchmark.guard import Guarded, observed
from pcm_benchmark.metrics import CATALOGUES_PUBLISHED

MAX_AUTHOR = 200
MAX_NOTE = 2_000
MAX_FILE_BYTES = 1_000_000


class CatalogueServicer(Guarded, catalogue_service_pb2_grpc.CatalogueServiceServicer):
    def __init__(
        self,
        tokens: TokenStore,
        catalogues: Catalogues,
        connections: Connections,
        retry_after_s: float,
    ) -> None:
        super().__init__(tokens, retry_after_s)
        self._catalogues = catalogues
        self._connections = connections

    @observed
    def PublishCatalogues(  # noqa: N802 (gRPC method name)
        self,
        request: catalogue_service_pb2.PublishCataloguesRequest,
        context: grpc.ServicerContext,
    ) -> catalogue_service_pb2.PublishCataloguesResponse:
        principal = self._national(
            context, "publish catalogues", "read the published versions (ListCatalogueVersions)"
        )
        author, note = self._author_and_note(context, request, principal)
        files = self._files(context, request.files)
        with tempfile.TemporaryDirectory(prefix="pcm-catalogues-") as scratch:
            directory = Path(scratch) / "catalogues"
            shutil.copytree(self._catalogues.directory, directory)
            for name, content in files.items():
                (directory / f"{name}.yaml").write_text(content, encoding="utf-8")
            candidate = self._loaded(context, directory, files)
            try:
                with self._connections.connection() as conn:
                    recorded = publish(conn, candidate, author, note, request.validate_only)
            except VersionTaken as taken:
                abort_with(
                    context,
                    grpc.StatusCode.ALREADY_EXISTS,
                    "ERROR_REASON_VERSION_TAKEN",
                    f"files[{taken.path.stem}]: version: {taken.reason}",
                )
        if not request.validate_only:
            CATALOGUES_PUBLISHED.inc(sum(v.new for v in recorded))
        return catalogue_service_pb2.PublishCataloguesResponse(
            catalogues=[_message(v, request.validate_only) for v in recorded]
        )

    @observed
    def ListCatalogueVersions(  # noqa: N802 (gRPC method name)
        self,
        request: catalogue_service_pb2.ListCatalogueVersionsRequest,
        context: grpc.ServicerContext,
    ) -> catalogue_service_pb2.ListCatalogueVersionsResponse:
        self._caller(context)
        name = request.catalogue
        if name and name not in self._catalogues.versions:
            invalid_argument(context, f"catalogue: {name[:40]!r} is not one of {self._names()}")
        with self._connections.connection() as conn:
            found = history(conn, name or None)
        return catalogue_service_pb2.ListCatalogueVersionsResponse(
            versions=[_message(v, False) for v in found]
        )

    def _names(self) -> str:
        return ", ".join(sorted(self._catalogues.versions))

    def _author_and_note(
        self,
        context: grpc.ServicerContext,
        request: catalogue_service_pb2.PublishCataloguesRequest,
        principal: Principal,
    ) -> tuple[str, str]:
        author, note = request.author.strip(), request.note.strip()
        for field, value, most in (("author", author, MAX_AUTHOR), ("note", note, MAX_NOTE)):
            if not value:
                invalid_argument(context, f"{field}: required (who publishes, and why)")
            if len(value) > most:
                invalid_argument(context, f"{field}: longer than {most} characters")
        # The credential's id beside the stated name: who really held the national role.
        return f"{author} ({principal.entity_id})", note

    def _files(
        self, context: grpc.ServicerContext, files: Sequence[catalogue_service_pb2.CatalogueFile]
    ) -> dict[str, str]:
        if not files:
            invalid_argument(context, f"files: at least one of {self._names()}")
        chosen: dict[str, str] = {}
        for index, file in enumerate(files):
            if file.name not in self._catalogues.versions:
                invalid_argument(
                    context,
                    f"files[{index}].name: {file.name[:40]!r} is not one of {self._names()}",
                )
            if file.name in chosen:
                invalid_argument(context, f"files[{index}].name: {file.name!r} sent twice")
            if len(file.content.encode()) > MAX_FILE_BYTES:
                invalid_argument(
                    context, f"files[{file.name}].content: larger than {MAX_FILE_BYTES} bytes"
                )
            chosen[file.name] = file.content
        return chosen

    def _loaded(
        self, context: grpc.ServicerContext, directory: Path, files: dict[str, str]
    ) -> Catalogues:
        """The catalogues with the files sent, loaded as a service would at start; a file that
        does not load (or breaks another) is INVALID_ARGUMENT naming the file and the reason."""
        try:
            candidate = load_catalogues(directory)
        except CatalogueError as error:
            where = f":{error.line}" if error.line is not None else ""
            field = f" field '{error.field}':" if error.field else ""
            invalid_argument(
                context, f"files[{error.path.stem}]{where}:{field} {error.reason}"[:1_000]
            )
        for name in files:
            if candidate.versions[name] == self._catalogues.versions[name] and (
                (directory / f"{name}.yaml").read_bytes()
                != (self._catalogues.directory / f"{name}.yaml").read_bytes()
            ):
                # The in-force version under edited content: refused before the registry sees
                # it, since the service's own copy is what the running platform assesses with.
                invalid_argument(
                    context,
                    f"files[{name}]: version: {candidate.versions[name]} is the version in "
                    "force with other content: give the new content a new version",
                )
        return candidate


def _message(
    version: PublishedVersion, validate_only: bool
) -> catalogue_service_pb2.PublishedCatalogue:
    message = catalogue_service_pb2.PublishedCatalogue(
        catalogue=version.catalogue,
        version=version.version,
        sha256=version.sha256,
        author=version.author,
        note=version.note,
        newly_published=version.new and not validate_only,
    )
    if not (validate_only and version.new):  # a dry run's new version has no publication time
        stamp = Timestamp()
        stamp.FromDatetime(version.published_at.astimezone(dt.UTC))
        message.published_at.CopyFrom(stamp)
    return message
