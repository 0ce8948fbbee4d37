"""Training: data loading, augmentation, the FOMM objective, and the training loop (``animate train``)."""

from animate_cli.training.trainer import RunInfo, StepReport, Trainer, TrainResult, train

__all__ = ["RunInfo", "StepReport", "TrainResult", "Trainer", "train"]
