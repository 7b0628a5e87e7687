"""semprior core: data, models, SCAM, losses, label evolution, the bilevel loop and metrics."""

# The config tree is built from the pure packages' configs (labels, method), which validate with
# config.check; importing it first lets any submodule be imported first without a circular import.
from . import config  # noqa: F401
