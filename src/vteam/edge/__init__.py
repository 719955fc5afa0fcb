"""What both doors (api, web) share at the HTTP edge: authentication and authorization dependencies, the
platform dependency, and the guard every event stream passes. Below api and web, above services."""
