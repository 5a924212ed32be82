"""Plots of surrogate fidelity, search traces and selected CREs (matplotlib, scanpy conventions)."""

__all__: list[str] = []
