"""Training the SSD: the SageMaker algorithm's hyperparameters, the data pipeline, and the local MXNet trainer."""
