"""Pictures and widgets: error heatmaps, histograms, calibration curves, graph views, explorers."""
