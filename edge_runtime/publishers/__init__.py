"""Publishers: the seam and the local adapters (:mod:`.base`: stdout, JSON-lines file, the recording fake), MQTT
with its on-disk outbox (:mod:`.mqtt`, :mod:`.outbox`) and Greengrass IPC (:mod:`.ipc`)."""
