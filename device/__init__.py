"""Bluetooth LE devices: the packet codecs of every supported profile and the client side.

``device.profiles`` holds one codec per characteristic (shared with the simulated footpod in
``firmware_sim``) and the stream decoders that turn notifications into the engine's input;
``device.link`` keeps one device streaming through bleak. Imports flow one way: ``dsp`` ←
``device`` ← ``firmware_sim`` ← ``recordings`` ← ``server`` ← ``stridecue``.
"""
