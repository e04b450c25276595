"""The benchmarks behind `stridecue bench`: the engine, MQTT, BLE and the whole chain (e2e)."""
