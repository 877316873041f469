"""Test support: real mosquitto brokers, free ports, MQTT subscribers."""
