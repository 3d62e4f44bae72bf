"""Photo-like frames of blue and yellow storage boxes, drawn with OpenCV from a seeded random generator.

Why synthetic frames: the sample's camera frames are not public, and tests, the demo model and the edge runtime need
images whose labels are exactly right. The scenes vary what a real camera varies (box size, position, perspective,
lighting, colour cast, blur, noise, background, distractor objects, empty frames) while keeping each storage box
clearly a saturated blue or yellow cuboid, so a small SSD can learn them. Distractors never use those two hues.

Everything takes a ``numpy.random.Generator``: the same generator state gives the same pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

Color = tuple[float, float, float]
"""A BGR colour as OpenCV's drawing functions take it."""

Corners = tuple[int, int, int, int]
"""``(xmin, ymin, xmax, ymax)`` in pixels, covering ``xmin <= x < xmax`` and ``ymin <= y < ymax``."""

# OpenCV HSV (hue 0..180): saturated, bright ranges for the two box colours
BOX_HSV = {
    "blue": ((100, 118), (150, 255), (120, 235)),
    "yellow": ((21, 31), (150, 255), (180, 255)),
}
COLORS_FOR_VIDEO = ("blue", "yellow")
# hue bands that stay clear of blue (~100-125) and yellow (~20-35)
DISTRACTOR_HUES = ((0, 5), (45, 85), (135, 178))


@dataclass(frozen=True)
class PlacedBox:
    """A storage box drawn into a frame: its colour and the tight box around its visible pixels."""

    color: str
    corners: Corners


def _hsv_to_bgr(hue: float, saturation: float, value: float) -> Color:
    pixel = np.array([[[hue, saturation, value]]], dtype=np.uint8)
    blue, green, red = (float(v) for v in cv2.cvtColor(pixel, cv2.COLOR_HSV2BGR)[0, 0])
    return blue, green, red


def tone(color: Color, factor: float) -> Color:
    """The colour lit ``factor`` times as brightly (shaded faces, highlights)."""
    return color[0] * factor, color[1] * factor, color[2] * factor


def _point(xy: np.ndarray) -> tuple[int, int]:
    return int(xy[0]), int(xy[1])


def box_color(rng: np.random.Generator, color: str) -> Color:
    """A BGR colour for a storage box of the named colour."""
    (h0, h1), (s0, s1), (v0, v1) = BOX_HSV[color]
    return _hsv_to_bgr(rng.uniform(h0, h1), rng.uniform(s0, s1), rng.uniform(v0, v1))


def _smooth_field(rng: np.random.Generator, width: int, height: int, cells: int, low: float, high: float) -> np.ndarray:
    """A smooth random HxW field in [low, high]: uneven lighting, stains, soft shadows."""
    small = rng.uniform(low, high, size=(max(2, cells * height // width), cells)).astype(np.float32)
    field: np.ndarray = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    return field


def background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A wall and a floor (or a table top) in muted colours, with texture, seams and uneven light."""
    horizon = int(height * rng.uniform(0.2, 0.7))
    image = np.empty((height, width, 3), np.float32)
    wall = _hsv_to_bgr(rng.uniform(0, 180), rng.uniform(0, 60), rng.uniform(90, 220))
    floor = _hsv_to_bgr(rng.uniform(0, 180), rng.uniform(0, 70), rng.uniform(50, 190))
    image[:horizon] = wall
    image[horizon:] = floor
    texture = _smooth_field(rng, width, height, int(rng.integers(12, 40)), -18, 18)
    image += texture[:, :, None]
    if rng.random() < 0.6:  # floor tiles or planks
        step = int(rng.integers(max(8, width // 14), max(9, width // 4)))
        shade = rng.uniform(0.75, 0.92)
        for x in range(int(rng.integers(0, step)), width, step):
            cv2.line(
                image, (x, horizon), (int(x + (x - width / 2) * 0.4), height), tone(floor, shade), 1 + width // 400
            )
    if rng.random() < 0.5:  # a shelf, a skirting board or a door frame
        y = int(rng.uniform(0.05, 0.95) * max(horizon, 1))
        shelf = _hsv_to_bgr(rng.uniform(0, 180), rng.uniform(0, 50), rng.uniform(40, 230))
        cv2.rectangle(image, (0, y), (width, y + int(rng.integers(3, 12))), shelf, -1)
    cv2.line(image, (0, horizon), (width, horizon), tone(wall, 0.7), 2)
    return image


def _distractor_color(rng: np.random.Generator) -> Color:
    if rng.random() < 0.35:  # grey, black, white things
        return _hsv_to_bgr(0, rng.uniform(0, 25), rng.uniform(20, 240))
    low, high = DISTRACTOR_HUES[int(rng.integers(0, len(DISTRACTOR_HUES)))]
    return _hsv_to_bgr(rng.uniform(low, high), rng.uniform(90, 255), rng.uniform(60, 230))


def distractors(rng: np.random.Generator, image: np.ndarray, count: int) -> None:
    """Balls, cylinders (bins, cans), flat rectangles (papers, mats) and bars, in non-box colours."""
    height, width = image.shape[:2]
    for _ in range(count):
        color = _distractor_color(rng)
        x, y = int(rng.uniform(0, width)), int(rng.uniform(0.1, 1.0) * height)
        size = int(rng.uniform(0.04, 0.22) * width)
        kind = int(rng.integers(0, 4))
        if kind == 0:
            cv2.circle(image, (x, y), size // 2, color, -1, cv2.LINE_AA)
            cv2.circle(image, (x - size // 8, y - size // 8), max(1, size // 8), tone(color, 1.3), -1, cv2.LINE_AA)
        elif kind == 1:
            top, bottom = y - size, y
            cv2.rectangle(image, (x - size // 3, top), (x + size // 3, bottom), color, -1)
            cv2.ellipse(image, (x, top), (size // 3, max(1, size // 10)), 0, 0, 360, tone(color, 1.25), -1, cv2.LINE_AA)
            cv2.ellipse(image, (x, bottom), (size // 3, max(1, size // 10)), 0, 0, 180, color, -1, cv2.LINE_AA)
        elif kind == 2:
            angle = rng.uniform(0, 180)
            rect = ((x, y), (size * rng.uniform(0.6, 1.6), size * rng.uniform(0.3, 1.0)), angle)
            points = cv2.boxPoints(rect).astype(np.int32)
            cv2.fillPoly(image, [points], color, cv2.LINE_AA)
        else:
            end = (int(x + rng.uniform(-1, 1) * size * 2), int(y + rng.uniform(-1, 1) * size))
            cv2.line(image, (x, y), end, color, max(2, size // 8), cv2.LINE_AA)


def _rotate(points: np.ndarray, center: tuple[float, float], degrees: float) -> np.ndarray:
    angle = np.deg2rad(degrees)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return (points - center) @ rotation.T + center


def box_outline(rng: np.random.Generator, left: float, bottom: float, front_width: float) -> dict[str, np.ndarray]:
    """The visible faces of a cuboid seen from slightly above: front, lid (top) and one side, as float polygons."""
    front_height = front_width * rng.uniform(0.45, 0.8)
    depth = front_width * rng.uniform(0.12, 0.32)
    skew = depth * rng.uniform(-1.1, 1.1)  # where the back edge sits: which side face shows
    narrow = front_width * rng.uniform(0.0, 0.07)  # perspective: far edges are shorter
    x0, x1, y1 = left, left + front_width, bottom
    y0 = y1 - front_height
    front = np.array([[x0, y1], [x1, y1], [x1 - narrow, y0], [x0 + narrow, y0]])
    back_left = [x0 + 2 * narrow + skew, y0 - depth]
    back_right = [x1 - 2 * narrow + skew, y0 - depth]
    top = np.array([[x0 + narrow, y0], [x1 - narrow, y0], back_right, back_left])
    if skew >= 0:
        side = np.array([[x1, y1], [x1 - narrow, y0], back_right, [x1 - narrow + skew, y1 - depth]])
    else:
        side = np.array([[x0, y1], [x0 + narrow, y0], back_left, [x0 + narrow + skew, y1 - depth]])
    center = (float(front[:, 0].mean()), float(front[:, 1].mean()))
    tilt = rng.uniform(-7, 7)
    return {name: _rotate(face, center, tilt) for name, face in (("side", side), ("front", front), ("top", top))}


def corners_of(faces: dict[str, np.ndarray], width: int, height: int) -> Corners | None:
    """The tight pixel box around the faces, clipped to the image; ``None`` when too little is visible."""
    points = np.concatenate(list(faces.values()))
    xmin, ymin = np.floor(points.min(axis=0)).astype(int)
    xmax, ymax = np.ceil(points.max(axis=0)).astype(int)
    clipped = (max(0, int(xmin)), max(0, int(ymin)), min(width, int(xmax)), min(height, int(ymax)))
    full_area = (xmax - xmin) * (ymax - ymin)
    area = (clipped[2] - clipped[0]) * (clipped[3] - clipped[1])
    if clipped[2] <= clipped[0] or clipped[3] <= clipped[1] or area < 0.7 * full_area:
        return None
    return clipped


def draw_box(rng: np.random.Generator, image: np.ndarray, faces: dict[str, np.ndarray], color: str) -> None:
    """Paint the cuboid: shaded faces, a lid rim, a handle recess, ribs, a highlight and a soft floor shadow."""
    base = box_color(rng, color)
    front = faces["front"]
    shadow = np.zeros(image.shape[:2], np.float32)
    bottom = front[:2]
    center = _point(bottom.mean(axis=0))
    axes = (int(np.linalg.norm(bottom[1] - bottom[0]) * 0.62), max(2, int(np.linalg.norm(bottom[1] - bottom[0]) * 0.1)))
    cv2.ellipse(shadow, center, axes, 0, 0, 360, (1.0,), -1, cv2.LINE_AA)
    shadow = np.asarray(cv2.GaussianBlur(shadow, (0, 0), max(1.0, axes[1] / 2)))
    image *= (1.0 - 0.45 * shadow)[:, :, None]

    shades = {"side": rng.uniform(0.55, 0.72), "front": rng.uniform(0.85, 1.0), "top": rng.uniform(1.08, 1.22)}
    for name in ("side", "front", "top"):
        cv2.fillPoly(
            image, [np.round(faces[name] * 16).astype(np.int32)], tone(base, shades[name]), cv2.LINE_AA, shift=4
        )
    # lid rim: a darker band along the top of the front face
    top_edge = front[[3, 2]]
    down = (front[0] - front[3]) * rng.uniform(0.08, 0.16)
    rim = np.array([top_edge[0], top_edge[1], top_edge[1] + down, top_edge[0] + down])
    cv2.fillPoly(image, [np.round(rim * 16).astype(np.int32)], tone(base, 0.7), cv2.LINE_AA, shift=4)
    # ribs: faint vertical lines on the front
    for t in np.linspace(0.15, 0.85, int(rng.integers(0, 5))):
        a = front[0] + (front[1] - front[0]) * t
        b = front[3] + (front[2] - front[3]) * t + down
        cv2.line(image, _point(a), _point(b), tone(base, 0.8), 1, cv2.LINE_AA)
    # handle recess on the front face, just under the rim
    if rng.random() < 0.7:
        middle = (front[3] + front[2]) / 2 + down * 1.8
        half = np.linalg.norm(front[1] - front[0]) * rng.uniform(0.08, 0.15)
        cv2.ellipse(image, _point(middle), (int(half), max(2, int(half / 3))), 0, 0, 360, tone(base, 0.45), -1)
    # a specular streak on the lid
    if rng.random() < 0.6:
        glow = np.zeros(image.shape[:2], np.float32)
        lid = faces["top"]
        cv2.line(glow, _point(lid[0]), _point(lid[2]), (1.0,), 3, cv2.LINE_AA)
        glow = np.asarray(cv2.GaussianBlur(glow, (0, 0), 4.0))
        image += (glow * rng.uniform(20, 60))[:, :, None]


def finish(rng: np.random.Generator, image: np.ndarray, blur: bool = True) -> np.ndarray:
    """Camera effects over the whole frame: exposure, colour cast, uneven light, vignette, blur, noise → uint8."""
    height, width = image.shape[:2]
    image *= rng.uniform(0.72, 1.2)
    image *= rng.uniform(0.92, 1.08, size=3)
    image *= _smooth_field(rng, width, height, 4, 0.78, 1.18)[:, :, None]
    if rng.random() < 0.5:
        ys, xs = np.ogrid[:height, :width]
        radius = ((xs - width / 2) / (width / 2)) ** 2 + ((ys - height / 2) / (height / 2)) ** 2
        image *= (1.0 - rng.uniform(0.1, 0.35) * radius / 2)[:, :, None]
    if blur and rng.random() < 0.6:
        sigma = rng.uniform(0.4, 1.8)
        if rng.random() < 0.3:  # motion blur
            length = int(rng.integers(3, 9))
            kernel = np.zeros((length, length), np.float32)
            kernel[length // 2, :] = 1.0 / length
            rotation = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), rng.uniform(0, 180), 1.0)
            kernel = np.asarray(cv2.warpAffine(kernel, rotation, (length, length)))
            image = np.asarray(cv2.filter2D(image, -1, kernel / max(float(kernel.sum()), 1e-6)))
        else:
            image = np.asarray(cv2.GaussianBlur(image, (0, 0), sigma))
    image += rng.normal(0.0, rng.uniform(1.5, 6.0), size=image.shape).astype(np.float32)
    result: np.ndarray = np.clip(image, 0, 255).astype(np.uint8)
    return result


def _overlap(a: Corners, b: Corners) -> float:
    """Intersection over the smaller box: two boxes may touch but not hide each other."""
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return ix * iy / smaller if smaller else 1.0


def place_faces(
    rng: np.random.Generator, width: int, height: int, taken: list[Corners]
) -> tuple[dict[str, np.ndarray], Corners] | None:
    """A random cuboid that fits the frame (mostly visible) and does not overlap the boxes already placed."""
    for _ in range(30):
        front_width = rng.uniform(0.12, 0.42) * width
        left = rng.uniform(-0.08 * front_width, width - 0.92 * front_width)
        bottom = rng.uniform(0.35, 1.04) * height
        faces = box_outline(rng, left, bottom, front_width)
        corners = corners_of(faces, width, height)
        if corners is None or (corners[3] - corners[1]) > 0.85 * height:
            continue
        if all(_overlap(corners, other) < 0.08 for other in taken):
            return faces, corners
    return None


def render(
    rng: np.random.Generator, width: int, height: int, color: str, boxes: int
) -> tuple[np.ndarray, list[Corners]]:
    """One frame with up to ``boxes`` storage boxes of ``color`` (0 for an empty frame), and their tight boxes."""
    image = background(rng, width, height)
    distractors(rng, image, int(rng.integers(0, 5)))
    placed: list[tuple[dict[str, np.ndarray], Corners]] = []
    for _ in range(boxes):
        found = place_faces(rng, width, height, [corners for _, corners in placed])
        if found is not None:
            placed.append(found)
    placed.sort(key=lambda item: item[1][3])  # far (higher up) boxes first, so nearer ones are drawn over them
    for faces, _ in placed:
        draw_box(rng, image, faces, color)
    return finish(rng, image), [corners for _, corners in placed]
