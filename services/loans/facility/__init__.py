"""Facility terms and the margin schedule: base margin, reference rate, interest periods."""
