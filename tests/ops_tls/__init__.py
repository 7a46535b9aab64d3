"""TLS tests: gunicorn with client certificates required, on a throw-away PKI (marked slow)."""
