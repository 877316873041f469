"""The wholesaler's side (QB/T 5279-2018 5.2; docs/wholesale.md): producers' EPCIS 2.0
documents imported into the line's trace store (``epcis_read.py`` reads and checks one,
``aggregation_import.py`` applies them, ``import_cmd.py`` is ``saltgw import CONFIG epcis``), so
that the inbound and outbound scanners expand a case or pallet of any producer to its bags."""
