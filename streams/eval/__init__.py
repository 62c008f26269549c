"""Retrieval quality: golden sets in the BEIR layout, loaded through the pipeline and measured."""
