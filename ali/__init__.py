"""Adversarially Learned Inference (Dumoulin et al., ICLR 2017) in PyTorch.

`ali.load(run_dir)` gives a trained image run's encoder and decoder (ali.api); the `ali`
command trains, evaluates and reports.
"""

from ali.api import TrainedModel, load
from ali.version import __version__

__all__ = ["TrainedModel", "load", "__version__"]
