"""Shared gRPC plumbing: server bootstrap, the error/metrics interceptor, channels, metadata."""
