"""The gRPC ComplaintsService: one push declaration on the push-service kit, and a read.

The kit authenticates, authorizes, validates each item (``validation.py``) and drops in-batch
copies; its sink is the complaint book (``book.py``): the state machine and the outbox in one
PostgreSQL transaction. The answer adds a receipt (stage, due date, term) per stored item.
"""

from __future__ import annotations

import grpc
from pcm.monitoring.v1 import complaints_service_pb2, complaints_service_pb2_grpc
from pcm_common import domains
from pcm_common.auth import Access
from pcm_common.push import PushDeclaration, PushKit
from pcm_common.push.kit import to_result
from pcm_common.push.reading import allowed, refuse_nul

from pcm_complaints import lifecycle
from pcm_complaints.book import ComplaintBook, receipts
from pcm_complaints.lifecycle import Complaint
from pcm_complaints.validation import ComplaintCatalogue, ComplaintRules


class ComplaintsServicer(complaints_service_pb2_grpc.ComplaintsServiceServicer):
    def __init__(self, kit: PushKit, catalogue: ComplaintCatalogue, book: ComplaintBook) -> None:
        self._kit = kit
        self._book = book
        self._events = kit.endpoint(PushDeclaration(domains.COMPLAINT, ComplaintRules(catalogue)))

    def PushComplaintEvents(  # noqa: N802 (gRPC method name)
        self,
        request: complaints_service_pb2.PushComplaintEventsRequest,
        context: grpc.ServicerContext,
    ) -> complaints_service_pb2.PushComplaintEventsResponse:
        outcome = self._events.sort(request.events, context)
        return complaints_service_pb2.PushComplaintEventsResponse(
            result=to_result(outcome), receipts=receipts(outcome)
        )

    def GetComplaint(  # noqa: N802 (gRPC method name)
        self, request: complaints_service_pb2.GetComplaintRequest, context: grpc.ServicerContext
    ) -> complaints_service_pb2.GetComplaintResponse:
        allowed(self._kit, context, Access.READ, request.entity_id)
        refuse_nul(context, request)
        record = self._book.get(request.entity_id, request.complaint_id)
        if record is None:
            context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"complaint_id: no complaint with this code at {request.entity_id}",
            )
        return complaints_service_pb2.GetComplaintResponse(complaint=status(record))


def status(record: Complaint) -> complaints_service_pb2.ComplaintStatus:
    term = record.term
    return complaints_service_pb2.ComplaintStatus(
        entity_id=record.entity_id,
        complaint_id=record.complaint_id,
        stage=lifecycle.stage_number(record.stage),
        filed_on=record.filed_on.isoformat(),
        due_on=term.due_on.isoformat(),
        term_business_days=term.business_days,
        term_basis=term.basis,
        answered_on=record.answered_on.isoformat() if record.answered_on else "",
        business_days_to_answer=record.business_days_to_answer,
        overdue=record.overdue,
        channel=record.channel,
        service_id=record.service_id,
        driver=record.driver,
        category=record.category,
        transitions=record.transitions,
    )
