"""Kafka I/O: the worker's asyncio shell, the client factory, publishing, state restore, topics.

May import: aiokafka, asyncio, ``consumer.core``, ``consumer.ops``, ``consumer.config`` and
``bullflag_model``. Never ``consumer.cli`` or ``consumer.sources``.
"""
