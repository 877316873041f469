"""Records from people and other systems (MES, LIMS): material receipts, lab inspections,
release decisions, non-conforming product handling (QB/T 5279-2018 tables 1-3; docs/records.md).

``models.py`` defines them; ``router.py`` takes them from MQTT (``…/{line}/record/{kind}``) and
journals them as ``record.*`` events; ``file_import.py`` reads them from CSV and XLSX files
(``tables.py``) and ``importer.py`` (``saltgw import``) sends those to the running gateway.
"""
