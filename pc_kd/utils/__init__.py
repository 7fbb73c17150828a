from .io import atomic_write, dump_pickle_atomic, load_pickle, read_bin, read_matrix_txt, require_file
from .checks import check_finite_points, check_transform

__all__ = ["atomic_write", "dump_pickle_atomic", "load_pickle", "read_bin", "read_matrix_txt",
           "require_file", "check_finite_points", "check_transform"]
