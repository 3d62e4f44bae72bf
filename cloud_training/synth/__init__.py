"""Synthetic training data: photo-like frames of blue and yellow storage boxes, their Ground Truth manifests, a video.

``scene`` draws one frame, ``dataset`` plans frames and writes the labelling jobs' manifests, ``video`` renders a
clip for the edge runtime, ``pipeline`` runs ``synth`` and publishes the results whole.
"""
