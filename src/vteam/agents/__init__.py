"""Agent frameworks behind one adapter interface, and the registry of them."""

from vteam.agents import registry
from vteam.agents.base import Adapter, AgentResult, Emit, FrameworkInfo, Resume, TurnContext

__all__ = ["Adapter", "AgentResult", "Emit", "FrameworkInfo", "Resume", "TurnContext", "registry"]
