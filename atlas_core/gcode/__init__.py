"""Planned-energy layer: G-code reading, motion planning, energy model and voxel grid."""
