"""Adversarially Learned Inference (Dumoulin et al., ICLR 2017) in PyTorch."""

__version__ = "0.1.0"
