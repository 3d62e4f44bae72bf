"""Everything off the device: Ground Truth manifests, SSD graphs, training, conversion, evaluation, publishing.

Heavy or cloud-only libraries (mxnet, boto3, sagemaker) are imported inside the modules that need them, never here, so
that ``cloud-training --help`` is instant and a missing extra is reported by the command that needs it.
"""

__version__ = "0.1.0"
