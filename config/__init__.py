"""Project wiring: settings, the root URL conf and the WSGI entry point."""
