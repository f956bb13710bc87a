"""The design-family orchestrator service: context and component design workflows."""
