"""Sources of market data: OHLCV and trade tables, tick simulation, the generated market, the producer.

May import: ``consumer.core``, ``consumer.kafka`` (the client factory and topics),
``bullflag_model`` and the readers' libraries. Never ``consumer.cli``.
"""
