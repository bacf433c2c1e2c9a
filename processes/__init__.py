"""The processes of a deployment, in production as under `make run`: the Celery workers (one per
queue group), beat and Flower (processes.workers, what start_workers.sh and compose's `workers`
service run), under a supervisor that restarts what dies and stops everything gracefully
(processes.supervisor). Django never imports this package."""
