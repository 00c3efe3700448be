"""Python client SDK for an assay engine (stdlib-only HTTP).

from assay.sdk import Client
client = Client("http://127.0.0.1:8080", api_key="assay_...")
run = client.start_workflow("Hello", input={"name": "ada"})
record = client.wait(run["workflow_id"], timeout=60)
"""

from assay.sdk.client import OVERLAP_POLICIES, STATUSES, TERMINAL_EVENTS, TERMINAL_STATUSES, Client
from assay.sdk.errors import EngineUnreachable, ProtocolError
from assay.sdk.sse import EventStream, SSEEvent, parse_sse

__all__ = [
    "Client",
    "EngineUnreachable",
    "EventStream",
    "OVERLAP_POLICIES",
    "ProtocolError",
    "SSEEvent",
    "STATUSES",
    "TERMINAL_EVENTS",
    "TERMINAL_STATUSES",
    "parse_sse",
]
