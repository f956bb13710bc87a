"""The Python client SDK for the specloom gateway.

    async with Client("127.0.0.1:7420", token) as client:
        session = await client.start_session("ContextDesign", {"context": "Inventory"})
        async for event in client.watch(session.id):
            ...

Every method raises a :mod:`specloom.errors` subclass on failure, with the
gateway's status code kept (``NotFound``, ``Unauthenticated``...); an
unreachable gateway is :class:`~specloom.errors.Unavailable`.
"""

from specloom.client._client import Client, mode_of, status_name

__all__ = ["Client", "mode_of", "status_name"]
