"""ecr-ocir-sync: keep OCIR regions an exact, digest-for-digest mirror of AWS ECR."""

from ecr_ocir_sync import _startup  # noqa: F401 - must run before httpx is imported

__all__ = ["__version__"]

__version__ = "0.1.0"
