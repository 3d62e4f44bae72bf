"""Frame sources: the seam and its adapters (:mod:`.base`: files, folders, cameras, streams, GStreamer, the fake),
and the capture loop that reads one into the frame queue with reconnects and pacing (:mod:`.capture`)."""
