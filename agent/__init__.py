"""wipe-agent: a secure data-sanitisation agent for wipe stations (NIST SP 800-88, IEEE 2883)."""

# The one place the version is written: pyproject.toml reads it from here (setuptools' attr, parsed,
# not imported). A literal, not importlib.metadata: that lookup alone cost every command start ~20 ms
# (about a third of a bare `import click`), and a source tree now reports its real version.
__version__ = "0.1.0"

TOOL_NAME = "wipe-agent"
