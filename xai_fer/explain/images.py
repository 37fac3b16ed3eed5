"""Image operations the attribution methods and their faithfulness checks share, on data-space batches
(N, H, W, C), 0-255."""

from __future__ import annotations

from xai_fer.lazy import np

# Insertion and blurred baselines blur with sigma = 5 pixels at FER2013's 48x48, scaled with the image size, so
# that the same amount of detail is removed at any resolution.
BLUR_SIGMA_AT_48 = 5.0


def blur_sigma(height: int, width: int) -> float:
    return BLUR_SIGMA_AT_48 * max(height, width) / 48.0


def gaussian_blur(images, sigma: float | None = None) -> np.ndarray:
    """Each image blurred in space (not across channels or images), borders reflected; ``sigma`` in pixels,
    default :func:`blur_sigma` of the images' size."""
    from scipy.ndimage import gaussian_filter

    images = np.asarray(images, dtype=np.float32)
    if sigma is None:
        sigma = blur_sigma(*images.shape[1:3])
    return gaussian_filter(images, sigma=(0, sigma, sigma, 0), mode="reflect").astype(np.float32)


def upsample(maps, height: int, width: int) -> np.ndarray:
    """(N, h, w) maps resized to (N, height, width), bilinear with half-pixel centres (as images are)."""
    from PIL import Image

    maps = np.asarray(maps, dtype=np.float32)
    if maps.shape[1:] == (height, width):
        return maps.copy()
    return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(m)).resize((width, height), Image.BILINEAR))
                     for m in maps]).astype(np.float32) if len(maps) else np.zeros((0, height, width), np.float32)
