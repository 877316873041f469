"""The resolver: the public query service a consumer's scan or typed code reaches
(QB/T 5279-2018 8.2, 9, 10.4, 11.4). docs/resolver.md describes it.

It runs as its own process (``saltgw resolver CONFIG.yaml``) and reads only the public snapshot
the bridge publishes (:mod:`gateway.public_snapshot`), never the trace store. Modules:

- :mod:`.config`: the ``resolver:`` section (pydantic; no optional packages);
- :mod:`.snapshot`: the published snapshot, one SQLite connection per thread, reloaded on a timer;
- :mod:`.lookup`: a code's public fields (table 6) from the snapshot;
- :mod:`.verdict`: the legality verdict (9.1) and the suspect-copy rule (8.8);
- :mod:`.querylog`: the resolver's own store of query records, feedback and complaints (table 5);
- :mod:`.clients`: who the client is (trusted proxies, network prefixes as places);
- :mod:`.ratelimit`: per-client token buckets;
- :mod:`.pages`: the Jinja2 templates and the table 6 rows they show;
- :mod:`.app`: the WSGI application (routes, security headers, errors);
- :mod:`.server`: waitress, signals, the ``resolver:`` line;
- :mod:`.export`: CSV export of query records and complaints for quality staff;
- :mod:`.cli`: the ``saltgw resolver`` command.

Only :mod:`.config` and :mod:`.cli` are imported by the core; the rest needs the ``resolver``
extra (waitress, Jinja2).
"""
