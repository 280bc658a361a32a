"""The running service: web app, intake, wiring, worker pool, job runner."""
