"""The audit service: the append-only log of every committed change in loansuite."""
