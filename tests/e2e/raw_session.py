"""A raw Streamlit client: one websocket session speaking Streamlit's protobuf protocol.

The browser suite drives Chromium; this drives the server the way an attacker without a
browser would: it opens ``/_stcore/stream``, asks for a page run with any query string and any
widget values (for example a "Save notes" click it never saw rendered), and records every
message the server sends back, so a test can check what leaked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.json_format import MessageToDict
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect


@dataclass
class Widget:
    """A widget value to send: ``kind`` is a WidgetState field (``string_value``, ...)."""

    id: str
    kind: str
    value: Any


@dataclass
class RawSession:
    """One websocket session on a Streamlit server at ``url`` (``http://host:port``)."""

    url: str
    cookie: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        ws_url = self.url.replace("http://", "ws://") + "/_stcore/stream"
        headers = {"Origin": self.url}
        if self.cookie:
            headers["Cookie"] = self.cookie
        self._connection = connect(
            ws_url, subprotocols=["streamlit"], additional_headers=headers, open_timeout=20, max_size=None
        )
        self._ws = self._connection.__enter__()

    def run(
        self, page: str = "", query: str = "", widgets: list[Widget] | None = None, timeout: float = 30.0
    ) -> list[dict[str, Any]]:
        """Ask for one script run and return the messages until it finished (or ``timeout``)."""
        msg = BackMsg()
        msg.rerun_script.query_string = query
        msg.rerun_script.page_name = page
        for w in widgets or []:
            state = msg.rerun_script.widget_states.widgets.add()
            state.id = w.id
            setattr(state, w.kind, w.value)
        self._ws.send(msg.SerializeToString())
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = self._ws.recv(timeout=max(0.05, deadline - time.monotonic()))
            except TimeoutError:
                break
            except ConnectionClosed:
                break
            fwd = ForwardMsg()
            fwd.ParseFromString(data)
            as_dict = MessageToDict(fwd, preserving_proto_field_name=True)
            got.append(as_dict)
            # A run that ends in st.rerun() is followed by the rerun: wait for that one too.
            if fwd.WhichOneof("type") == "script_finished" and as_dict["script_finished"] != "FINISHED_EARLY_FOR_RERUN":
                break
        self.messages += got
        return got

    def close(self) -> None:
        self._connection.__exit__(None, None, None)


def walk(obj: Any):
    """Every dict inside a message (to find elements and their fields)."""
    if isinstance(obj, dict):
        yield obj
        for value in obj.values():
            yield from walk(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from walk(value)


def text_of(messages: list[dict[str, Any]]) -> str:
    """Everything the server sent, as one string (for "did this leak?" checks)."""
    return repr(messages)


def widget_ids(messages: list[dict[str, Any]]) -> dict[str, str]:
    """Element label -> widget id, for the widgets the server rendered."""
    found = {}
    for item in walk(messages):
        if "id" in item and "label" in item and isinstance(item["id"], str):
            found[item["label"]] = item["id"]
    return found


def sign_in(session: RawSession, password: str, page: str = "", query: str = "") -> list[dict[str, Any]]:
    """Fill in and submit the sign-in form the way the browser does; return the next run's messages."""
    ids = widget_ids(session.run(page, query))
    widgets = [Widget(ids["Password"], "string_value", password), Widget(ids["Sign in"], "trigger_value", True)]
    return session.run(page, query, widgets)
