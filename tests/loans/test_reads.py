"""GetLoan and ListLoans read committed versions: a write shows at once, a refused one never."""

from __future__ import annotations

from loansuite.loans.v1 import loan_service_pb2 as pb

from tests.loans.database import refusing_inserts
from tests.loans.factories import get_loan, new_loan, update_loan
from tests.support import Account, Suite


def listed(suite: Suite, account: Account, loan_id: str) -> pb.Loan:
    response = suite.loans.ListLoans(pb.ListLoansRequest(page_size=100), metadata=account.metadata)
    [loan] = [loan for loan in response.page.loans if loan.id == loan_id]
    return loan


def test_a_committed_change_is_what_every_read_shows_next(suite: Suite, borrower: Account) -> None:
    loan = new_loan(suite.loans, borrower)
    assert get_loan(suite.loans, borrower, loan.id).loan == listed(suite, borrower, loan.id) == loan

    renamed = update_loan(suite.loans, borrower, loan.id, etag=loan.etag, name="Renamed")

    assert renamed.HasField("loan"), renamed.error
    assert get_loan(suite.loans, borrower, loan.id).loan == renamed.loan
    assert listed(suite, borrower, loan.id) == renamed.loan
    assert renamed.loan.etag != loan.etag


def test_a_write_that_rolled_back_never_shows_in_a_read(suite: Suite, borrower: Account) -> None:
    loan = new_loan(suite.loans, borrower)
    get_loan(suite.loans, borrower, loan.id)  # read, and so converted, before the write

    # The write runs, new version and all, and then the database refuses its audit event.
    with refusing_inserts(suite, "outbox_events"):
        failed = update_loan(suite.loans, borrower, loan.id, etag=loan.etag, name="Never")
    assert failed.error.code != 0

    assert get_loan(suite.loans, borrower, loan.id).loan == loan
    assert listed(suite, borrower, loan.id) == loan
    again = update_loan(suite.loans, borrower, loan.id, etag=loan.etag, name="Later")
    assert again.HasField("loan"), again.error  # the same version number, other content
    assert get_loan(suite.loans, borrower, loan.id).loan == again.loan


def test_a_page_of_kept_and_new_loans_keeps_the_newest_first_order(suite: Suite) -> None:
    borrower = suite.register()  # an organization of its own: these are all its loans
    older = [new_loan(suite.loans, borrower) for _ in range(3)]
    request = pb.ListLoansRequest(page_size=100)
    first = suite.loans.ListLoans(request, metadata=borrower.metadata).page.loans  # now kept

    newer = new_loan(suite.loans, borrower)  # read in full, the others come from what is kept
    renamed = update_loan(suite.loans, borrower, older[1].id, etag=older[1].etag, name="Moved")
    second = suite.loans.ListLoans(request, metadata=borrower.metadata).page.loans

    assert [loan.id for loan in first] == [loan.id for loan in reversed(older)]
    assert list(second) == [newer, older[2], renamed.loan, older[0]]
