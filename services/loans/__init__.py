"""The loans service: loans, KPIs, margin ratchets and their lifecycle."""
