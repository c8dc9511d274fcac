"""Data modules, windows, splits and normalisation over data-contract (HDF5) files."""

from .datamodule import SteadyDataModule, TrajectoryDataModule  # noqa: F401
from .normalization import ChannelNormalizer, RunningChannelStats  # noqa: F401
from .splits import Split, parse_split  # noqa: F401
from .windows import SteadyPairs, TrajectoryWindows, all_windows, protocol_windows  # noqa: F401
