"""API models of the HTTP (and later gRPC) interfaces."""
