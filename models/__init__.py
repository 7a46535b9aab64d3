"""Flask-free model serving: manifests, repository, sealed-weight loading, registry, runner."""
