"""neuralops: neural operators (MgNO, SineNet, SFNO, FNO, U-Net) and losses in plain PyTorch."""

__version__ = "0.1.0"
