"""Experiments the demos run, importable and reusable: seeded, resumable Runner runs per seed, baseline rows
scored the same way as the method, mean +- std and paired tables, targets and result JSON
(:mod:`pc_kd.experiments.common`, :mod:`~pc_kd.experiments.bev`, :mod:`~pc_kd.experiments.indoor`). This
layer sits on top: it may import every other part of pc_kd, and nothing in pc_kd imports it."""
