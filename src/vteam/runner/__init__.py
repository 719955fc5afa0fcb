"""The runner: workspace and git, the event stream client, and the `vteam runner` entry point."""
