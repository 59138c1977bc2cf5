"""KPIs and margin ratchets: the borrower proposes and edits, the lender reviews (use_cases.py)."""
