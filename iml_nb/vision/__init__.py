"""The MNIST experiment with a convnet (notebook 05): digit images (digits), tagged grid cells as definitions (data), and its
stages (experiment)."""
