"""SSD graphs with the structure and names of mxnet-ssd, which the SageMaker built-in object detection algorithm uses.

``get_symbol_train`` builds the training graph (outputs ``cls_prob, loc_loss, cls_label, det_out``) and
``get_symbol`` the deploy graph (output ``detection``). Both share the base networks in this package and the heads
in :mod:`.heads`.
"""

from cloud_training.ssd.factory import NETWORKS, get_symbol, get_symbol_train, network_config

__all__ = ["NETWORKS", "get_symbol", "get_symbol_train", "network_config"]
