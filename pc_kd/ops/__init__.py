"""Kernels and backend shims. Importing pc_kd.ops needs no GPU and no sparse-conv backend."""
