"""Drawdowns and repayments: the borrower draws, the lender funds or refuses, the ledger."""
