"""The operations surface: Prometheus metrics, HTTP probes, logging and GC tuning.

May import: prometheus-client, asyncio, numpy, orjson and the standard library. Nothing from
aiokafka, and no other ``consumer`` package.
"""
