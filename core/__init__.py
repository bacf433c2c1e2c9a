"""The shared ground below the apps: the domain error base and its codes, the transient/permanent
signals, the API helpers, error shape and schema, the health registry, logging and request plumbing.
Imports no app."""
