"""Neural-operator models, each registered by name and following one constructor contract
(:mod:`.contract`: the data layouts a model serves and :meth:`~.contract.ModelContract.build`).

Every model module is imported here so that its ``@register`` decorator runs.
"""

from . import fno, mgno, sfno, sinenet, unet  # noqa: F401  (registration)
from .contract import AUTOREGRESSIVE, DIRECT, KINDS, STEADY, ModelContract  # noqa: F401
from .registry import available, constructor, get, register  # noqa: F401
