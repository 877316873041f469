"""The internal web console (docs/console.md; issue 19): ``saltgw console CONFIG.yaml`` serves,
in its own process and on 127.0.0.1 by default, the line overview (live over Server-Sent Events
from the gateway's MQTT topics), KPI charts per shift (server-side SVG), upload completeness per
batch with the resend action, and trace and recall with a CSV export, to signed-in users with
roles; every trace, recall, export and resend goes to the trace store's access log.

Modules: :mod:`.config` (the ``console:`` file), :mod:`.users` (roles, scrypt passwords, the
users file), :mod:`.sessions`, :mod:`.live` (MQTT → the line's state), :mod:`.records` (the
trace store), :mod:`.charts` (SVG), :mod:`.pages`, :mod:`.app` (WSGI), :mod:`.server`,
:mod:`.cli`. Needs waitress and Jinja2 (the ``resolver`` extra)."""

from __future__ import annotations

__all__: list[str] = []
