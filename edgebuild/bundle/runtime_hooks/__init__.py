"""The runtime hooks (runtime_load, runtime_predict) of the built-in runtimes' loaders, one module
per runtime, copied verbatim into loader.py by its template (never imported by the loader)."""
