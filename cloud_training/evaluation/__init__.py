"""Evaluation of a deploy model on a Ground Truth manifest: the VOC07 metric, the loop over images, the PDF report."""
