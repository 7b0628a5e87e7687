"""What semprior keeps on disk: the run directory (:class:`~semprior_core.store.run_dir.RunDir`), its readers,
run identity, checkpoints, label history, per-image output names and the folders of derived files."""
