"""The HTTP face: FastAPI app, served by ``serve`` (with the dispatcher) and ``api``."""
