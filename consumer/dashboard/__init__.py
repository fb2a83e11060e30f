"""The live signals page: ``bullflag dashboard`` and the page ``bullflag demo`` starts.

:class:`Dashboard` follows the signals topic (and the worker's state topic, for the bars of each
window), keeps the latest documents in memory and serves a page of static HTML, JS and CSS
(package data in ``static/``, nothing fetched from elsewhere) with a server-sent-events stream
from the worker's own asyncio HTTP stack (:mod:`consumer.ops.http_server`). The browser draws
the table, the candles, the volume and the Grad-CAM strip itself.

May import: ``consumer.ops``, ``consumer.kafka``, ``consumer.core``, ``consumer.config``,
``bullflag_model``, aiokafka, orjson, numpy, prometheus-client and the standard library. Never
``consumer.cli`` (the commands use this package, not the reverse) nor ``consumer.sources``.
"""

from consumer.dashboard.app import Dashboard

__all__ = ["Dashboard"]
