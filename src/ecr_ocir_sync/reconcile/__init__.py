"""Reconciliation: compare ECR with every region and enqueue repairs."""
