"""Revisions of the auth database, oldest first."""
