"""The spec format: YAML files describing apps and endpoints (input layer)."""
