"""Pure rules shared by the API, the web pages and the runner: which repository paths and URLs a project
may use, and which links may reach an `href`. No server library is imported here, so every door and the
runner apply the same code."""
