"""Property-based fuzz tests (hypothesis): scanner framing, traceability codes, Modbus values,
MQTT commands and the YAML config loader. Each test says which inputs it throws at the code and
what must hold whatever they are; a failing input found once stays as an ``@example``."""
