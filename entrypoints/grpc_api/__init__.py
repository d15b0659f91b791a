"""The gRPC API (protos/tributary/v1/tributary.proto): thin servicers over the same services as the HTTP routes."""
