"""The event bus: Stridecue's events over MQTT (contract in ``docs/mqtt.md``)."""
