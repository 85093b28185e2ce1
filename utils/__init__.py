"""Shared helpers below the engine: box geometry, NMS, letterboxing, drawing, AutoAnchor, metrics (matching, AP,
confusion matrix, COCO), plots, checkpoints, output comparison, files and YAML, devices and seeding, distributed
processes, logging and the command-line error convention."""
