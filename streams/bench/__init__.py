"""The benchmark suite (`streams bench`): each scenario drives real edits through the running stack."""
