"""Network builders: one module per net, all registered in `posenet.models.registry`."""
