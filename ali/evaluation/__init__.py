"""Measurement: the metrics of a trained model (toy mixture metrics, sample quality, the L2-SVM
protocol, the domain classifier, the pixel checks) and the evaluation grids. Presenting them is
ali.report's part."""
