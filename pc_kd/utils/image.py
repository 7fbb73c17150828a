"""Image constants shared by the 2D teachers, the detectors' data preprocessor and teacher training."""

# ImageNet's per-channel mean and standard deviation of RGB in [0, 1] (torchvision's, timm's)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
