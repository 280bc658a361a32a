"""The OCI distribution client: HTTP, auth challenges, credentials, retries."""
