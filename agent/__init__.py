"""wipe-agent: a secure data-sanitisation agent for wipe stations (NIST SP 800-88, IEEE 2883)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("wipe-agent")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

TOOL_NAME = "wipe-agent"
