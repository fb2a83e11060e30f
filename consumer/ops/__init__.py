"""The operations surface: Prometheus metrics, the HTTP server and router (probes, pages), logging, GC tuning.

May import: prometheus-client, asyncio, numpy, orjson and the standard library. Nothing from
aiokafka, and no other ``consumer`` package.
"""
