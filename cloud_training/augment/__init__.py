"""Offline augmentation of the train split, as the AWS sample did it: x-flip, y-flip, 90° cw and 90° ccw.

``transforms`` holds the pure (image, boxes) → (image, boxes) functions; ``pipeline`` applies them to a manifest,
writes the new images and the manifest that lists originals and copies (5× the lines with all four transforms).
"""
