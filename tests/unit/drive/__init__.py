"""Unit tests of agent.drive: capability parsers and the inspect command."""
