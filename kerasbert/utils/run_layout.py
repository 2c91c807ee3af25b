"""Names inside a run directory that code below `kerasbert.training` reads.

`kerasbert.training.run_directory` owns a run's directory and each stage
names what it writes there; a name lives here when a lower floor needs it
too, so that no module imports from a floor above its own:
`kerasbert.load_classifier(run_dir)` finds a fine-tuning run's classifier
under `RUN_PRESET_DIR`, which `fine_tune` writes.
"""

# The whole fine-tuned classifier (`save_to_preset`) inside a run directory.
RUN_PRESET_DIR = "preset"
