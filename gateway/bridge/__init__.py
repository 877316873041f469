"""The bridge to the national salt traceability platform (QB/T 5279-2018 5.1 接口管理, 6.3, 11).

It consumes the line's events from MQTT into a local trace store (SQLite), builds upload
documents (EPCIS 2.0 or the platform profile's XML), forwards them with store-and-forward, and
answers trace and recall questions from the store, and publishes the public snapshot the
resolver reads. See docs/bridge.md.

Modules: ``config`` (models), ``schema`` (tables), ``records`` (event checks), ``store``
(ingest into the trace store), ``ingest`` (MQTT consumer), ``uris`` (code URIs), ``content``
(a document's records), ``epcis`` / ``platform`` (document profiles), ``xmlout`` (code runs),
``xmlcheck`` (schemas), ``documents`` (outbox builder), ``transport`` / ``upload`` (delivery),
``reconcile``, ``retention``, ``trace`` / ``trace_output`` (trace and recall), ``public`` /
``public_apply`` / ``public_publish`` (the public snapshot for the resolver), ``service``
(threads), ``cli`` (commands), ``demo`` (the demo's bridge).

Importing this package is cheap: only :mod:`gateway.bridge.config` is needed by the config
loader; lxml is imported by the modules that write or check XML.
"""

from __future__ import annotations

__all__: list[str] = []
