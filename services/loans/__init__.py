"""The loans service: loans between borrower and lender organizations, by subdomain.

- ``loan/`` — the loan itself: create, get, list, update, delete, invite a lender
- ``lifecycle/`` — the state machine (transitions as data) and the loan's history
- ``kpis/`` — KPIs with their review by the lender, and the margin ratchets on them
- ``results/`` — reported and verified KPI results, and the margin adjustments they make
- ``watching/`` — change notifications: the bus, the PostgreSQL listener, WatchLoans
- ``facility/`` — the facility terms (base margin, reference rate, interest periods) and
  the margin schedule
- ``ledger/`` — drawdowns requested and decided, repayments, and the ledger they write
- ``report/`` — GetLoanReport: the loan with everything that belongs to it

Beside them: ``vocabulary`` (every enumerated value), ``models`` (tables, and the
rules that guard a row), ``aggregate`` (the one write path of a loan and its
parts), ``rpc`` (the servicer base and ``@mutation``), ``servicer`` and ``wiring``.
docs/ARCHITECTURE.md draws the map.
"""
