"""The auth service: users, organizations, sessions and the keys that sign access tokens."""
