"""mlatrain in Python: read checkpoints and run trained models.

    mlatrain.open_checkpoint(path)          config, step, NumPy tensors, metadata
    mlatrain.torch.GPT.from_checkpoint(p)   the model as a torch nn.Module
    mlatrain.metrics.read(run_dir)          a run's metrics.jsonl as rows

mlatrain.torch needs torch; tokenizing needs sentencepiece. docs/python.md.
"""
from .checkpoint import Checkpoint, CheckpointError, open_checkpoint
from .config import ConfigError, ModelConfig, parameter_layout

__all__ = ["Checkpoint", "CheckpointError", "ConfigError", "ModelConfig", "open_checkpoint",
           "parameter_layout"]
__version__ = "0.1.0"
