"""What saltgw's web surfaces share (the public resolver, gateway/resolver/, and the internal
console, gateway/console/): WSGI request reading and answers (:mod:`.wsgi`) and a waitress server
run in the foreground or a background thread (:mod:`.server`), which need the ``resolver`` extra
(waitress, Jinja2); and the ``listen:`` address both configs take (:mod:`.listen`, core)."""

from __future__ import annotations

__all__: list[str] = []
