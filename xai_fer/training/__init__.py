"""Training of registered model architectures (`xai-fer train`)."""
