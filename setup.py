"""pc_kd: cross-modal knowledge distillation into 3D points, voxels and BEV grids."""
from setuptools import find_packages, setup

REQUIRES = [
    "torch>=2.4",
    "mmengine==0.10.7",
    "numpy>=1.24,<2",  # nuscenes-devkit 1.2.0 pins numpy < 2
    "scipy>=1.10",
    "numba>=0.58",
    "plyfile>=1.0",
    "pillow>=9.0",
    "tqdm>=4.60",
    "nuscenes-devkit==1.2.0",
    "opencv-python==4.11.0.86",  # the last opencv that accepts numpy < 2
    "h5py>=3.9,<4",  # PartDistill's preprocess.h5, ModelNet40's and ScanObjectNN's h5 files
    "scikit-learn>=1.3",  # the linear-SVM probe of pretrained point features (LinearSVC)
]

EXTRAS = {
    # Sparse convolution. The CUDA wheels import without a GPU and are exact on CPU with ConvAlgo.Native.
    # Python <= 3.11: spconv-cu120; Python 3.12: spconv-cu126. spconv-triton works too (any CUDA).
    "spconv": [
        "spconv-cu120==2.3.6; python_version < '3.12'",
        "spconv-cu126==2.3.8; python_version >= '3.12'",
    ],
    # open3d renders headless with EGL_PLATFORM=surfaceless; tensorboard receives the training scalars
    "vis": ["open3d==0.19.0", "tensorboard>=2.14"],
    # triton: the kernels' tests run in its interpreter on CPU (CUDA builds of torch bring their own triton).
    "test": ["pytest>=7.4", "triton>=3.2,<3.10"],
    # The ScanNet / S3DIS distillation configs' TimmTeacher. timm needs torchvision: install the torchvision that
    # matches your torch first (torch 2.13.0: torchvision==0.28.0, from the same index), or pip picks the newest
    # torchvision and replaces torch with the build it pins. Not part of "all" for that reason.
    "teachers": ["timm>=0.9"],
}
EXTRAS["all"] = sorted({r for name, reqs in EXTRAS.items() if name != "teachers" for r in reqs})

setup(
    name="pc_kd",
    version="0.1.0",
    description="Cross-modal knowledge distillation into 3D point clouds, voxels and BEV grids",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["pc_kd", "pc_kd.*"]),
    install_requires=REQUIRES,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["pc-kd = pc_kd.cli:main"]},
    license="Apache-2.0",
)
