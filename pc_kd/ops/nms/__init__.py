from .circle_nms import circle_nms, circle_nms_loop

__all__ = ["circle_nms", "circle_nms_loop"]
