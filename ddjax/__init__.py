"""ddjax: DeepDrummer's generator, critic and sampler as jit-compiled, vmapped JAX."""

from ddjax.errors import DdjaxError

__all__ = ["DdjaxError"]
__version__ = "0.1.0"
