"""KPIs and their margin ratchets: proposed by the borrower, reviewed by the lender."""

from __future__ import annotations

import grpc
from loansuite.loans.v1 import loan_service_pb2 as pb

from services.loans.kpis import ratchets
from services.loans.kpis import use_cases as kpis
from services.loans.kpis.conversions import kpi_form, kpi_to_proto, ratchet_bps, ratchet_to_proto
from services.loans.rpc import LoanRpcBase, Write, mutation
from services.shared.envelope import unary
from services.shared.identity import Caller
from services.shared.timestamps import timestamp

__all__ = ["KpiRpcs"]


class KpiRpcs(LoanRpcBase):
    @mutation(pb.CreateKpiResponse)
    def CreateKpi(
        self, request: pb.CreateKpiRequest, caller: Caller
    ) -> Write[pb.CreateKpiResponse]:
        """Propose a KPI for a DRAFT or PENDING_APPROVAL loan (borrower)."""
        form = kpi_form(request)
        return lambda session: pb.CreateKpiResponse(
            kpi=kpi_to_proto(
                kpis.create_kpi(session, caller=caller, loan_id=request.loan_id, form=form)
            )
        )

    @mutation(pb.UpdateKpiResponse)
    def UpdateKpi(
        self, request: pb.UpdateKpiRequest, caller: Caller
    ) -> Write[pb.UpdateKpiResponse]:
        """Change the KPI fields named in update_mask; the KPI goes back to PROPOSED (borrower)."""
        paths, form = list(request.update_mask.paths), kpi_form(request)
        return lambda session: pb.UpdateKpiResponse(
            kpi=kpi_to_proto(
                kpis.update_kpi(
                    session,
                    caller=caller,
                    kpi_id=request.kpi_id,
                    etag=request.etag,
                    paths=paths,
                    form=form,
                )
            )
        )

    @mutation(pb.DeleteKpiResponse)
    def DeleteKpi(
        self, request: pb.DeleteKpiRequest, caller: Caller
    ) -> Write[pb.DeleteKpiResponse]:
        """Delete a KPI with its ratchet (borrower)."""
        return lambda session: pb.DeleteKpiResponse(
            deletion=pb.KpiDeletion(
                kpi_id=request.kpi_id,
                delete_time=timestamp(
                    kpis.delete_kpi(
                        session, caller=caller, kpi_id=request.kpi_id, etag=request.etag
                    )
                ),
            )
        )

    @mutation(pb.AcceptKpiResponse)
    def AcceptKpi(
        self, request: pb.AcceptKpiRequest, caller: Caller
    ) -> Write[pb.AcceptKpiResponse]:
        """Accept a PROPOSED KPI (lender)."""
        return lambda session: pb.AcceptKpiResponse(
            kpi=kpi_to_proto(
                kpis.accept_kpi(session, caller=caller, kpi_id=request.kpi_id, etag=request.etag)
            )
        )

    @mutation(pb.RejectKpiResponse)
    def RejectKpi(
        self, request: pb.RejectKpiRequest, caller: Caller
    ) -> Write[pb.RejectKpiResponse]:
        """Reject a PROPOSED KPI with a reason (lender)."""
        return lambda session: pb.RejectKpiResponse(
            kpi=kpi_to_proto(
                kpis.reject_kpi(
                    session,
                    caller=caller,
                    kpi_id=request.kpi_id,
                    etag=request.etag,
                    reason=request.reason,
                )
            )
        )

    @unary(pb.ListKpisResponse)
    def ListKpis(
        self, request: pb.ListKpisRequest, context: grpc.ServicerContext
    ) -> pb.ListKpisResponse:
        """Return the loan's KPIs in creation order (either party)."""
        caller = self._caller(context)
        with self._db.read() as session:
            found = kpis.list_kpis(session, caller=caller, loan_id=request.loan_id)
            return pb.ListKpisResponse(kpis=pb.KpiList(kpis=[kpi_to_proto(k) for k in found]))

    @mutation(pb.CreateMarginRatchetResponse)
    def CreateMarginRatchet(
        self, request: pb.CreateMarginRatchetRequest, caller: Caller
    ) -> Write[pb.CreateMarginRatchetResponse]:
        """Attach a margin ratchet to a KPI of the loan (borrower)."""
        bps = ratchet_bps(request)
        return lambda session: pb.CreateMarginRatchetResponse(
            ratchet=ratchet_to_proto(
                ratchets.create_margin_ratchet(
                    session, caller=caller, loan_id=request.loan_id, kpi_id=request.kpi_id, bps=bps
                )
            )
        )

    @mutation(pb.UpdateMarginRatchetResponse)
    def UpdateMarginRatchet(
        self, request: pb.UpdateMarginRatchetRequest, caller: Caller
    ) -> Write[pb.UpdateMarginRatchetResponse]:
        """Change the basis points named in update_mask (borrower)."""
        paths, bps = list(request.update_mask.paths), ratchet_bps(request)
        return lambda session: pb.UpdateMarginRatchetResponse(
            ratchet=ratchet_to_proto(
                ratchets.update_margin_ratchet(
                    session,
                    caller=caller,
                    ratchet_id=request.ratchet_id,
                    etag=request.etag,
                    paths=paths,
                    bps=bps,
                )
            )
        )

    @mutation(pb.DeleteMarginRatchetResponse)
    def DeleteMarginRatchet(
        self, request: pb.DeleteMarginRatchetRequest, caller: Caller
    ) -> Write[pb.DeleteMarginRatchetResponse]:
        """Delete a margin ratchet (borrower)."""
        return lambda session: pb.DeleteMarginRatchetResponse(
            deletion=pb.MarginRatchetDeletion(
                ratchet_id=request.ratchet_id,
                delete_time=timestamp(
                    ratchets.delete_margin_ratchet(
                        session, caller=caller, ratchet_id=request.ratchet_id, etag=request.etag
                    )
                ),
            )
        )
