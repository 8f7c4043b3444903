"""The MNIST experiment with a convnet (notebook 05): digit images (digits), tagged grid cells as definitions (data), the networks
and their losses (model), and its stages (experiment)."""
