"""loansuite: the auth, loans and audit gRPC services and the code they share."""
