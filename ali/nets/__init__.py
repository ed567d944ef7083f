"""The networks: layer tables (the paper's Tables 3-6), the modules built from them, and `Model`,
a run's named networks."""
