"""Sources of market data: OHLCV and trade tables, tick simulation, the generated market, the producer.

``tables`` (table types, column layouts, errors), ``readers`` (CSV and Parquet files), ``trades``
(ticks drawn inside bars), ``market`` (the generated market), ``producer`` (records and sending).
May import: ``consumer.core``, ``consumer.kafka`` (the client factory and topics),
``bullflag_model`` and the readers' libraries. Never ``consumer.cli``.
"""
