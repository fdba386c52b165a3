"""The evaluation benchmark: metrics (``metrics``), methods behind one interface (``methods``), the
synthetic-set harness (``harness``) and the real-photo check (``realphotos``). Entry point:
``python -m training.evaluate`` (and ``python -m training.bench``)."""
