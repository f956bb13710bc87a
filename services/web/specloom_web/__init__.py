"""The web console: a team watches and steers its sessions in a browser.

An HTTP server (Starlette on uvicorn) beside the gRPC port, rendering pages
on the server (Jinja2) and keeping them live with server-sent events and a
small script of our own (``static/console.js``; no build step). It calls
only the public GatewayService, with the signed-in person's token, so it
sees exactly what that token sees through the API.

How the pieces fit:

- ``service`` — the ServiceSpec: binds ``SPECLOOM_WEB_LISTEN`` and serves.
- ``app`` — routes, sign-in and sign-out, security headers, errors as pages.
- ``auth`` — the token cookie and the CSRF check every action passes.
- ``gateway`` — one shared channel to the gateway; a client per token.
- ``pages`` / ``actions`` — the pages and their live streams; steering.
- ``feeds`` / ``live`` / ``sse`` — polled views (the sessions list, the
  executors) shared per (token, view); session watches; the event-stream
  format and the open-stream limit.
- ``present``, ``session_view``, ``listing``, ``executors``, ``testruns``,
  ``documents``, ``diagram`` — what pages show, built from the API's
  messages.
"""
