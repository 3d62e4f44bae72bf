"""The edge runtime: capture frames, run the SSD detector, publish detections (stdout, file, MQTT).

Ships to devices alone with the ``edge`` extra; it never imports ``cloud_training``.
"""

from __future__ import annotations

__version__ = "0.1.0"
