"""The lifecycle: transitions as data (transitions.py), their RPCs, and the history they leave."""
