"""Energy Atlas domain code: pure numpy in, numpy out. Never imports dagster."""
__version__ = "0.1.0"
