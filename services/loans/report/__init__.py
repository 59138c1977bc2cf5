"""GetLoanReport: a loan with everything that belongs to it, read in one snapshot."""
