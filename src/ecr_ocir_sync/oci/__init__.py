"""Pure data of the OCI distribution world: references, digests, manifests. No I/O."""
