"""``python -m cloud_training`` is the same as the ``cloud-training`` console script."""

from cloud_training.cli import main

raise SystemExit(main())
