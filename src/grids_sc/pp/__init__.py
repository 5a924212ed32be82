"""Preprocessing: validate, parse peak coordinates, annotate genes, binarise, select features."""

__all__: list[str] = []
