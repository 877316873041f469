"""How a tag names its node, parsed once from the config and resolved on every connect.

Two notations (see ``README.md``):

* ``node`` — an OPC UA NodeId string: ``ns=2;s=Line1.BagCount`` (a literal namespace *index*),
  ``nsu=urn:plc;s=Line1.BagCount`` (a namespace *URI*), or ``s=Line1.BagCount`` / ``i=1001``
  without a namespace: then the device's ``namespace_uri`` (or namespace 0 when it has none).
* ``browse_path`` — browse names from the Root folder, ``/``-separated:
  ``0:Objects/2:Line1/2:BagCount``. A name with a numeric prefix uses that namespace index; a
  name without one (``0:Objects/Line1/BagCount``) is in the device's ``namespace_uri``.

Indexes can change when a server restarts (its namespace array is rebuilt); URIs do not. So
only the URI forms survive a PLC that renumbers its namespaces: the driver reads the namespace
array again on every connect and maps URIs to the current indexes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # asyncua costs ~23 MB: imported only when an OPC UA device is configured
    from asyncua import ua

__all__ = ["BrowseStep", "NodeAddress", "parse_browse_path", "parse_node"]

_NS_PREFIX = re.compile(r"^\s*(ns|nsu)=")
_STEP = re.compile(r"^(?:(\d+):)?(.*)$")


@dataclass(frozen=True, slots=True)
class NodeAddress:
    """A parsed ``node:`` string. ``index`` (a literal namespace index) or ``uri`` (a namespace
    URI) says which namespace; both None: the device's ``namespace_uri``, else 0."""

    text: str
    identifier: Any  # str, int, UUID or bytes, as asyncua parsed it
    id_type: ua.NodeIdType
    index: int | None = None
    uri: str | None = None

    def node_id(self, index: int) -> ua.NodeId:
        """The NodeId in namespace ``index`` (the namespace resolved for this connection)."""
        from asyncua import ua

        return ua.NodeId(self.identifier, ua.Int16(index), self.id_type)


@dataclass(frozen=True, slots=True)
class BrowseStep:
    """One browse name of a path: ``index`` None means the device's ``namespace_uri``."""

    name: str
    index: int | None


def parse_node(text: str) -> NodeAddress:
    """Parse a NodeId string; raises ValueError naming what is wrong."""
    from asyncua import ua

    text = text.strip()
    try:
        parsed = ua.NodeId.from_string(text)
    except (ValueError, ua.UaError, IndexError, KeyError) as exc:
        raise ValueError(
            f"not a NodeId: {text!r} (expected e.g. 'ns=2;s=Line1.BagCount', "
            "'nsu=urn:plc;s=Line1.BagCount', 's=Line1.BagCount' or 'i=1001')"
        ) from exc
    if parsed.Identifier in (None, ""):
        raise ValueError(f"not a NodeId: {text!r} has no identifier")
    uri = parsed.NamespaceUri if isinstance(parsed, ua.ExpandedNodeId) else None
    if isinstance(parsed, ua.ExpandedNodeId) and parsed.ServerIndex:
        raise ValueError(f"{text!r} names another server (svr=); only local nodes are supported")
    explicit = _NS_PREFIX.match(text) is not None
    return NodeAddress(
        text=text,
        identifier=parsed.Identifier,
        id_type=parsed.NodeIdType,
        index=parsed.NamespaceIndex if explicit and uri is None else None,
        uri=uri or None,
    )


def parse_browse_path(text: str) -> tuple[BrowseStep, ...]:
    """Parse ``0:Objects/2:Line1/BagCount``; raises ValueError naming what is wrong."""
    raw = text.strip().strip("/")
    if not raw:
        raise ValueError("empty browse path (expected e.g. '0:Objects/2:Line1/2:BagCount')")
    steps = []
    for part in raw.split("/"):
        m = _STEP.match(part.strip())
        if not m or not m.group(2).strip():
            raise ValueError(f"empty browse name in {text!r}")
        index = int(m.group(1)) if m.group(1) is not None else None
        if index is not None and index > 65535:
            raise ValueError(f"namespace index {index} in {text!r} is above 65535")
        steps.append(BrowseStep(m.group(2).strip(), index))
    return tuple(steps)
