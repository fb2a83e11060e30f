"""The event-time core: decode and validate records, build bars, buffer windows, score them.

Pure computation on numpy arrays, no I/O. May import: the standard library, numpy, orjson,
``bullflag_model``, and other ``consumer.core`` modules. Never asyncio or aiokafka.
"""
