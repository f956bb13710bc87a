"""The gateway: client API, executor streams, auth, routing, fan-out and join.

How the pieces fit (``service.Gateway`` wires them):

- ``servicer`` — GatewayService, thin over Sessions, the orchestrators and
  Tokens; every call is authenticated first (``auth``: VerifyToken on every
  call, never cached; long-lived streams re-verify as they run, through a
  cache of a few seconds) and acts only in the token's scope, so the scope
  wall in Sessions turns another project's session into NOT_FOUND. A watch
  ends when its token is revoked and when its session is failed or paused.
- ``routing`` — session type → orchestrator, learned from ``Describe``.
- ``executors`` / ``results`` / ``output`` — one ``Connect`` stream per
  executor (at most ``max_executor_streams_per_token`` per token): register,
  heartbeats (lease renewal and token re-check), output batched into
  ``AppendOutput`` with back-pressure, results through the fused
  ``ReportAndAdvance`` whose next command comes back already leased to the
  same executor and is pushed straight back. A result is forwarded only for
  a lease the reporting executor holds (Sessions' fence sees only the epoch).
  A stream that ends releases its leases at once.
- ``hub`` — the connected executors and their leases. Executor ids are
  stable per (account, project, user, executor name), because Sessions
  renews a lease only for its holder: a reconnecting executor keeps the
  commands it lists in ``Register.running``.
- ``dispatch`` — claims for free executors on work signals and on a sweep
  (lease expiry sends no signal), coalesced per scope so a large idle fleet
  costs one empty claim per signal.
- ``joins`` — reports a parent's spawn step once its children are terminal,
  with a deterministic result so a second replica's report is a no-op.
- ``stalled`` — gives agentic sessions left with nothing pending their next step.
"""
