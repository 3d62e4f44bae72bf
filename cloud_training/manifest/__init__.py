"""SageMaker Ground Truth bounding-box manifests: parse and check lines, join jobs, discard, relabel, split, write.

``records`` parses one line, ``prepare`` holds the pure steps, ``io`` reads and writes local or S3 locations, and
``pipeline`` runs ``manifest prepare`` end to end. ``table`` formats the summaries the commands print.
"""
