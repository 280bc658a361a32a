"""ecr-ocir-sync: keep OCIR regions an exact, digest-for-digest mirror of AWS ECR."""

__all__ = ["__version__"]

__version__ = "0.1.0"
