"""Training engine: optimizer/schedule/loss, callbacks, checkpoints and the train/evaluate entry points."""
from .callbacks import NonFiniteLoss, TrainingMonitor
from .checkpoint import save_checkpoint
from .checkpoint_saver import CheckpointSaver, read_latest
from .optim import build_loss, build_lr, build_optimizer, split_decay
from .process import convert_sync_bn
from .run_folder import load_run_config, resolve_resume
from .run_state import RunState
from .trainer import evaluate, train

__all__ = ["CheckpointSaver", "NonFiniteLoss", "RunState", "TrainingMonitor", "read_latest", "save_checkpoint",
           "build_loss", "build_lr", "build_optimizer", "split_decay", "convert_sync_bn", "evaluate",
           "load_run_config", "resolve_resume", "train"]
