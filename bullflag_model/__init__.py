"""bullflag_model: the bull-flag CNN, its features, Grad-CAM, inference and output document."""
