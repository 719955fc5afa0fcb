"""The runner: workspace and git, the event stream client, and the `vteam runner` entry point."""

import sys

# httpx imports its own command line (click, rich, pygments: ~6 MiB in the zygote and in every runner that is not
# forked from it) unless it cannot; a runner never runs it.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
