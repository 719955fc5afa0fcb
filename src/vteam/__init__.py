"""vTeam: run AI coding agents as agentic sessions against git repositories."""

__version__ = "0.1.0"
