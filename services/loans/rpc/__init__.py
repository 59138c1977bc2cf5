"""LoanService's RPCs by topic; services/loans/servicer.py assembles them into one servicer."""
