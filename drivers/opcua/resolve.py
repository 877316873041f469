"""Resolve every tag to a NodeId of *this* connection, and learn each node's type.

Runs on every connect, so a server that restarted with a different namespace array, or that
moved a node under the same browse path, is followed without restarting the gateway:

1. read the server's NamespaceArray and map namespace URIs to their current indexes;
2. translate all browse paths in one TranslateBrowsePathsToNodeIds call;
3. read DataType and Value of every node in one Read: a node that does not exist, is not a
   variable or does not hold the type the tag map expects becomes a per-tag error naming the tag
   and node; the others are resolved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from asyncua import Client, ua

from drivers.base import DeviceFault
from drivers.opcua.addressing import parse_browse_path, parse_node
from drivers.opcua.config import OpcUaDeviceConfig, OpcUaTag

__all__ = ["Resolution", "ResolvedNode", "resolve", "resolve_one", "status_text"]

_HIERARCHICAL = ua.NodeId(ua.Int32(ua.ObjectIds.HierarchicalReferences))
_ROOT = ua.NodeId(ua.Int32(ua.ObjectIds.RootFolder))
_NO = cast("ua.Boolean", False)  # asyncua types its Boolean fields with a non-bool class
_YES = cast("ua.Boolean", True)


def status_text(code: ua.StatusCode | int) -> str:
    """``BadNodeIdUnknown (The node id refers to …)``."""
    status = code if isinstance(code, ua.StatusCode) else ua.StatusCode(ua.UInt32(code))
    doc = status.doc.rstrip(".")
    return f"{status.name} ({doc})" if doc else status.name


@dataclass(frozen=True, slots=True)
class ResolvedNode:
    """A tag's node on this connection. ``vtype`` is the node's value type (None: not known
    until it holds a value)."""

    tag: str
    node_id: ua.NodeId
    vtype: ua.VariantType | None
    where: str  # "tag 'x' (node 'ns=2;s=…')" for messages


@dataclass(slots=True)
class Resolution:
    nodes: dict[str, ResolvedNode] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def _where(name: str, tag: OpcUaTag) -> str:
    if tag.node is not None:
        return f"tag {name!r} (node {tag.node!r})"
    return f"tag {name!r} (browse path {tag.browse_path!r})"


class _Namespaces:
    def __init__(self, array: list[str], device_uri: str | None) -> None:
        self.array = array
        self.device_uri = device_uri
        self.device_index = self.index_of(device_uri) if device_uri is not None else 0

    def index_of(self, uri: str) -> int:
        try:
            return self.array.index(uri)
        except ValueError:
            known = ", ".join(f"{i}: {u}" for i, u in enumerate(self.array))
            raise LookupError(
                f"namespace {uri!r} is not on the server (its namespaces: {known})"
            ) from None


def _node_id(tag: OpcUaTag, ns: _Namespaces) -> ua.NodeId:
    assert tag.node is not None
    addr = parse_node(tag.node)
    if addr.uri is not None:
        return addr.node_id(ns.index_of(addr.uri))
    if addr.index is not None:
        return addr.node_id(addr.index)
    return addr.node_id(ns.device_index)


def _browse_path(tag: OpcUaTag, ns: _Namespaces) -> ua.BrowsePath:
    assert tag.browse_path is not None
    elements = []
    for step in parse_browse_path(tag.browse_path):
        if step.index is None and ns.device_uri is None:
            raise LookupError(
                f"browse name {step.name!r} has no namespace index and the device has no "
                "namespace_uri"
            )
        index = step.index if step.index is not None else ns.device_index
        elements.append(
            ua.RelativePathElement(
                ReferenceTypeId=_HIERARCHICAL,
                IsInverse=_NO,
                IncludeSubtypes=_YES,
                TargetName=ua.QualifiedName(step.name, index),
            )
        )
    return ua.BrowsePath(StartingNode=_ROOT, RelativePath=ua.RelativePath(Elements=elements))


def _builtin(data_type: ua.NodeId) -> ua.VariantType | None:
    """The VariantType of a built-in DataType node id (ns=0;i=1..25)."""
    if data_type.NamespaceIndex == 0 and isinstance(data_type.Identifier, int):
        try:
            return ua.VariantType(data_type.Identifier)
        except ValueError:
            return None
    return None


async def resolve(client: Client, cfg: OpcUaDeviceConfig) -> Resolution:
    """Resolve every tag of ``cfg`` on the connected ``client``.

    Raises DeviceFault when the device's namespace_uri is missing or no tag resolves at all."""
    out = Resolution()
    ns = _Namespaces(await client.get_namespace_array(), None)
    if cfg.namespace_uri is not None:
        try:
            ns = _Namespaces(ns.array, cfg.namespace_uri)
        except LookupError as exc:
            raise DeviceFault(f"device namespace_uri: {exc}") from None
    ids: dict[str, ua.NodeId] = {}
    paths: dict[str, ua.BrowsePath] = {}
    for name, tag in cfg.tags.items():
        try:
            if tag.node is not None:
                ids[name] = _node_id(tag, ns)
            else:
                paths[name] = _browse_path(tag, ns)
        except LookupError as exc:
            out.errors[name] = f"{_where(name, tag)}: {exc.args[0]}"
    if paths:
        results = await client.uaclient.translate_browsepaths_to_nodeids(list(paths.values()))
        for (name, _), result in zip(paths.items(), results, strict=True):
            if not result.StatusCode.is_good() or not result.Targets:
                why = "no target" if result.StatusCode.is_good() else status_text(result.StatusCode)
                out.errors[name] = f"{_where(name, cfg.tags[name])}: no such node: {why}"
                continue
            target = result.Targets[0].TargetId
            ids[name] = ua.NodeId(target.Identifier, target.NamespaceIndex, target.NodeIdType)
    await _read_types(client, cfg, ids, out)
    if not out.nodes:
        raise DeviceFault("no tag could be resolved: " + "; ".join(out.errors.values()))
    return out


async def resolve_one(client: Client, cfg: OpcUaDeviceConfig, ref: OpcUaTag) -> ua.NodeId:
    """The NodeId of one address (a method or its object) on this connection, resolved as a
    tag's is. Raises LookupError naming the address when the server has no such node."""
    ns = _Namespaces(await client.get_namespace_array(), None)
    if cfg.namespace_uri is not None:
        ns = _Namespaces(ns.array, cfg.namespace_uri)
    if ref.node is not None:
        return _node_id(ref, ns)
    (result,) = await client.uaclient.translate_browsepaths_to_nodeids([_browse_path(ref, ns)])
    if not result.StatusCode.is_good() or not result.Targets:
        why = "no target" if result.StatusCode.is_good() else status_text(result.StatusCode)
        raise LookupError(f"browse path {ref.browse_path!r}: no such node: {why}")
    target = result.Targets[0].TargetId
    return ua.NodeId(target.Identifier, target.NamespaceIndex, target.NodeIdType)


async def _read_types(
    client: Client, cfg: OpcUaDeviceConfig, ids: dict[str, ua.NodeId], out: Resolution
) -> None:
    if not ids:
        return
    params = ua.ReadParameters()
    for node_id in ids.values():
        for attr in (ua.AttributeIds.DataType, ua.AttributeIds.Value):
            params.NodesToRead.append(ua.ReadValueId(NodeId=node_id, AttributeId=attr))
    values = await client.uaclient.read(params)
    for i, (name, node_id) in enumerate(ids.items()):
        tag = cfg.tags[name]
        where = _where(name, tag)
        dtype, value = values[2 * i], values[2 * i + 1]
        status = dtype.StatusCode or ua.StatusCode()
        if status.value == ua.StatusCodes.BadAttributeIdInvalid:
            out.errors[name] = f"{where}: {node_id.to_string()} is not a variable (no value)"
            continue
        if not status.is_good():
            out.errors[name] = f"{where}: {node_id.to_string()}: {status_text(status)}"
            continue
        declared = dtype.Value.Value if dtype.Value is not None else None
        vtype = _builtin(declared) if isinstance(declared, ua.NodeId) else None
        if vtype is None and value.Value is not None:
            held = value.Value.VariantType
            vtype = held if held != ua.VariantType.Null else None
        if tag.type is not None and vtype is not None and vtype.name != tag.type:
            out.errors[name] = (
                f"{where}: the node holds {vtype.name}, the tag map says type {tag.type}"
            )
            continue
        out.nodes[name] = ResolvedNode(name, node_id, vtype, where)
