"""Session life: reconcile decisions, phase transitions, executors and the one reconcile loop of both modes."""

from vteam.controller.controller import Controller
from vteam.controller.executor import Executor, Key, RunnerState
from vteam.controller.job import render_job, render_secret
from vteam.controller.job_state import runner_state
from vteam.controller.local import LocalExecutor
from vteam.controller.reconcile import Action, Decision, decide
from vteam.controller.reconciler import Reconciler
from vteam.controller.transitions import Announced, PhaseWriter, StatusOnly, update_status, utcnow

__all__ = [
    "Action",
    "Announced",
    "Controller",
    "Decision",
    "Executor",
    "Key",
    "LocalExecutor",
    "PhaseWriter",
    "Reconciler",
    "RunnerState",
    "StatusOnly",
    "decide",
    "render_job",
    "render_secret",
    "runner_state",
    "update_status",
    "utcnow",
]
