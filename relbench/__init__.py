"""relbench: does a text-to-image diffusion transformer put objects where the prompt says?"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("relbench")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
