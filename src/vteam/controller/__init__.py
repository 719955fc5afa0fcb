"""Session life: reconcile decisions, phase transitions, executors and the embedded controller."""

from vteam.controller.controller import Controller
from vteam.controller.executor import Executor, Key, RunnerState
from vteam.controller.job import render_job, render_secret
from vteam.controller.job_state import runner_state
from vteam.controller.local import LocalExecutor
from vteam.controller.reconcile import Action, Decision, decide
from vteam.controller.transitions import set_phase, update_status, utcnow

__all__ = [
    "Action",
    "Controller",
    "Decision",
    "Executor",
    "Key",
    "LocalExecutor",
    "RunnerState",
    "decide",
    "render_job",
    "render_secret",
    "runner_state",
    "set_phase",
    "update_status",
    "utcnow",
]
