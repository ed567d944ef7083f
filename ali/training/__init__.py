"""Training a run: building its model and step (build), the loop with its checkpoints, guard and
final evaluation (loop), and the hardware, data-parallel, dry-run and TensorBoard pieces."""
