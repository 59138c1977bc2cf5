"""The loan itself: create, get and list loans; update, delete and invite a lender (terms)."""
