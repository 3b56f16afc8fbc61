"""Energy Atlas code location: merges each domain's definitions with the resources of the environment.

Resources are chosen by ATLAS_ENV (`local` default, `s3`), like dagster's project_fully_featured.
"""
from __future__ import annotations

import dagster as dg

from atlas_resources import resources_for_env

from . import atlas, floor, gcode, video
from .executors import executor_from_env

defs = dg.Definitions.merge(gcode.defs, video.defs, floor.defs, atlas.defs,
                            dg.Definitions(resources=resources_for_env(), executor=executor_from_env()))
