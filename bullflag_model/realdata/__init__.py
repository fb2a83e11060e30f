"""Real OHLCV shipped inside registry packages: loading, labels, and a model's judgement of it.

May import numpy and the rest of ``bullflag_model``; matplotlib only through ``gallery``. The
series come from files that the ``backtesting`` and ``arch`` packages ship (the ``real`` extra),
read from the installed package, never downloaded. ``series`` loads them, ``shift`` measures how
far real windows sit from generated ones, ``labels`` reads the frozen chart-read labels,
``candidates`` finds pole-then-pullback windows and applies the generator's rule labeller to them,
``market_stats`` measures the gap, wick and volume traits a generator must match,
``report`` assembles the per-series report and ``gallery`` draws its pictures.
"""
