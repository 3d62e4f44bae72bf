"""Events, not frames (``publish.mode events``): a tracker per source and the event messages built from its tracks.

- :mod:`~edge_runtime.events.config`: the ``events`` config section (:class:`EventsConfig`);
- :mod:`~edge_runtime.events.tracker`: :class:`Tracker`, IoU association with a constant-velocity prediction;
- :mod:`~edge_runtime.events.builder`: :class:`EventStream`, frames in, ``new`` / ``update`` / ``end`` out
  (``event.schema.json``);
- :mod:`~edge_runtime.events.cost`: expected messages per day and the AWS IoT Core bill for a config.

Pure and clock-free: the pipeline hands each detected frame to :meth:`EventStream.frame` and publishes what it
returns; on stop it publishes :meth:`EventStream.finish`, which ends every open event. Nothing is imported here,
so the config (which needs only :mod:`~edge_runtime.events.config`) loads no numpy.
"""
