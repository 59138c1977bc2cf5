"""The reporting calendar: observation periods, due dates, statuses, and missed periods."""
