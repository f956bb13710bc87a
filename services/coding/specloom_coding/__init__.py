"""The coding-family orchestrator service: test-writing and coding workflows."""
