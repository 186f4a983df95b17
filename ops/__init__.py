"""Operating the dashboard: request ids, JSON logs, Prometheus metrics, health and readiness."""
