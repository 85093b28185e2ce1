"""Model building: registry, layers, heads, backbones, the YAML builder and DetectionModel."""
