"""KPIs and their margin ratchets: proposed by the borrower, reviewed by the lender."""

from __future__ import annotations

import grpc
from loansuite.loans.v1 import loan_service_pb2 as pb
from sqlalchemy.orm import Session

from services.loans import kpis, ratchets
from services.loans.kpi_conversions import (
    kpi_form,
    kpi_to_proto,
    ratchet_bps,
    ratchet_to_proto,
)
from services.loans.rpc.base import LoanRpcBase
from services.shared.envelope import unary
from services.shared.timestamps import timestamp

__all__ = ["KpiRpcs"]


class KpiRpcs(LoanRpcBase):
    @unary(pb.CreateKpiResponse)
    def CreateKpi(
        self, request: pb.CreateKpiRequest, context: grpc.ServicerContext
    ) -> pb.CreateKpiResponse:
        """Propose a KPI for a DRAFT or PENDING_APPROVAL loan (borrower)."""
        caller = self._caller(context)
        form = kpi_form(request)

        def write(session: Session) -> pb.CreateKpiResponse:
            kpi = kpis.create_kpi(session, caller=caller, loan_id=request.loan_id, form=form)
            return pb.CreateKpiResponse(kpi=kpi_to_proto(kpi))

        return self._mutate("CreateKpi", request, caller, pb.CreateKpiResponse.FromString, write)

    @unary(pb.UpdateKpiResponse)
    def UpdateKpi(
        self, request: pb.UpdateKpiRequest, context: grpc.ServicerContext
    ) -> pb.UpdateKpiResponse:
        """Change the KPI fields named in update_mask; the KPI goes back to PROPOSED (borrower)."""
        caller = self._caller(context)
        paths, form = list(request.update_mask.paths), kpi_form(request)

        def write(session: Session) -> pb.UpdateKpiResponse:
            kpi = kpis.update_kpi(
                session,
                caller=caller,
                kpi_id=request.kpi_id,
                etag=request.etag,
                paths=paths,
                form=form,
            )
            return pb.UpdateKpiResponse(kpi=kpi_to_proto(kpi))

        return self._mutate("UpdateKpi", request, caller, pb.UpdateKpiResponse.FromString, write)

    @unary(pb.DeleteKpiResponse)
    def DeleteKpi(
        self, request: pb.DeleteKpiRequest, context: grpc.ServicerContext
    ) -> pb.DeleteKpiResponse:
        """Delete a KPI with its ratchet (borrower)."""
        caller = self._caller(context)

        def write(session: Session) -> pb.DeleteKpiResponse:
            deleted = kpis.delete_kpi(
                session, caller=caller, kpi_id=request.kpi_id, etag=request.etag
            )
            deletion = pb.KpiDeletion(kpi_id=request.kpi_id, delete_time=timestamp(deleted))
            return pb.DeleteKpiResponse(deletion=deletion)

        return self._mutate("DeleteKpi", request, caller, pb.DeleteKpiResponse.FromString, write)

    @unary(pb.AcceptKpiResponse)
    def AcceptKpi(
        self, request: pb.AcceptKpiRequest, context: grpc.ServicerContext
    ) -> pb.AcceptKpiResponse:
        """Accept a PROPOSED KPI (lender)."""
        caller = self._caller(context)

        def write(session: Session) -> pb.AcceptKpiResponse:
            kpi = kpis.accept_kpi(session, caller=caller, kpi_id=request.kpi_id, etag=request.etag)
            return pb.AcceptKpiResponse(kpi=kpi_to_proto(kpi))

        return self._mutate("AcceptKpi", request, caller, pb.AcceptKpiResponse.FromString, write)

    @unary(pb.RejectKpiResponse)
    def RejectKpi(
        self, request: pb.RejectKpiRequest, context: grpc.ServicerContext
    ) -> pb.RejectKpiResponse:
        """Reject a PROPOSED KPI with a reason (lender)."""
        caller = self._caller(context)

        def write(session: Session) -> pb.RejectKpiResponse:
            kpi = kpis.reject_kpi(
                session,
                caller=caller,
                kpi_id=request.kpi_id,
                etag=request.etag,
                reason=request.reason,
            )
            return pb.RejectKpiResponse(kpi=kpi_to_proto(kpi))

        return self._mutate("RejectKpi", request, caller, pb.RejectKpiResponse.FromString, write)

    @unary(pb.ListKpisResponse)
    def ListKpis(
        self, request: pb.ListKpisRequest, context: grpc.ServicerContext
    ) -> pb.ListKpisResponse:
        """Return the loan's KPIs in creation order (either party)."""
        caller = self._caller(context)
        with self._db.read() as session:
            found = kpis.list_kpis(session, caller=caller, loan_id=request.loan_id)
            return pb.ListKpisResponse(kpis=pb.KpiList(kpis=[kpi_to_proto(k) for k in found]))

    @unary(pb.CreateMarginRatchetResponse)
    def CreateMarginRatchet(
        self, request: pb.CreateMarginRatchetRequest, context: grpc.ServicerContext
    ) -> pb.CreateMarginRatchetResponse:
        """Attach a margin ratchet to a KPI of the loan (borrower)."""
        caller = self._caller(context)
        bps = ratchet_bps(request)

        def write(session: Session) -> pb.CreateMarginRatchetResponse:
            ratchet = ratchets.create_margin_ratchet(
                session, caller=caller, loan_id=request.loan_id, kpi_id=request.kpi_id, bps=bps
            )
            return pb.CreateMarginRatchetResponse(ratchet=ratchet_to_proto(ratchet))

        parse = pb.CreateMarginRatchetResponse.FromString
        return self._mutate("CreateMarginRatchet", request, caller, parse, write)

    @unary(pb.UpdateMarginRatchetResponse)
    def UpdateMarginRatchet(
        self, request: pb.UpdateMarginRatchetRequest, context: grpc.ServicerContext
    ) -> pb.UpdateMarginRatchetResponse:
        """Change the basis points named in update_mask (borrower)."""
        caller = self._caller(context)
        paths, bps = list(request.update_mask.paths), ratchet_bps(request)

        def write(session: Session) -> pb.UpdateMarginRatchetResponse:
            ratchet = ratchets.update_margin_ratchet(
                session,
                caller=caller,
                ratchet_id=request.ratchet_id,
                etag=request.etag,
                paths=paths,
                bps=bps,
            )
            return pb.UpdateMarginRatchetResponse(ratchet=ratchet_to_proto(ratchet))

        parse = pb.UpdateMarginRatchetResponse.FromString
        return self._mutate("UpdateMarginRatchet", request, caller, parse, write)

    @unary(pb.DeleteMarginRatchetResponse)
    def DeleteMarginRatchet(
        self, request: pb.DeleteMarginRatchetRequest, context: grpc.ServicerContext
    ) -> pb.DeleteMarginRatchetResponse:
        """Delete a margin ratchet (borrower)."""
        caller = self._caller(context)

        def write(session: Session) -> pb.DeleteMarginRatchetResponse:
            deleted = ratchets.delete_margin_ratchet(
                session, caller=caller, ratchet_id=request.ratchet_id, etag=request.etag
            )
            deletion = pb.MarginRatchetDeletion(
                ratchet_id=request.ratchet_id, delete_time=timestamp(deleted)
            )
            return pb.DeleteMarginRatchetResponse(deletion=deletion)

        parse = pb.DeleteMarginRatchetResponse.FromString
        return self._mutate("DeleteMarginRatchet", request, caller, parse, write)
