"""KPI results: reported by the borrower, verified by the lender, and the margins they move."""
