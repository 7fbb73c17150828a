"""Lift-splat BEV pooling: sum of depth x context over the frustum points of every BEV cell."""
from .bev_pool import bev_pool
from .function import BEVPoolFunction, IntervalPlan, interval_plan
from .grid import BEVGrid, CellAssignment, assign_cells
from .reference import bev_pool_reference

__all__ = ["bev_pool", "BEVPoolFunction", "IntervalPlan", "interval_plan", "BEVGrid", "CellAssignment",
           "assign_cells", "bev_pool_reference"]
