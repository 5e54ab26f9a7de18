"""Drawing of procedurally generated street scenes (image, labelIds, instanceIds).

:mod:`fornet.calibration.synth` writes them in the Cityscapes layout. Each scene has a
perspective road with lane markings, sidewalks with curbs, verges of terrain or (ignored)
ground, building facades with windows, walls, sky, trees and hedges, cars, trucks, buses, trains
on (ignored) rail tracks, persons, riders on bicycles and motorcycles, and thin structures
(poles, traffic signs and lights, fences). Textures, shadows, illumination and shared colour
ranges keep colour alone from determining the class; shape, position, context and texture do.
Some pixels carry ignored labelIds (ego vehicle, out of roi, ground, parking, rail track, static
objects) so ignore handling is exercised.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from fornet.calibration.errors import DataError

# labelIds (Cityscapes), including the ignored ones the generator uses.
EGO, OUT_OF_ROI, STATIC, GROUND = 1, 3, 4, 6
ROAD, SIDEWALK, PARKING, RAIL = 7, 8, 9, 10
BUILDING, WALL, FENCE, POLE, LIGHT, SIGN = 11, 12, 13, 17, 19, 20
VEGETATION, TERRAIN, SKY = 21, 22, 23
PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE = 24, 25, 26, 27, 28, 31, 32, 33

#: Classes that scenes would rarely show by chance; each scene is forced to show some of them
#: in rotation so that every split of at least four scenes shows all of them.
RARE = (WALL, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE, RIDER, LIGHT, TERRAIN, FENCE)

#: An RGB colour (0..255 floats) as a tuple or an array.
Color = Sequence[float] | np.ndarray

_SHIFT = 3  # OpenCV drawing with 1/8-pixel coordinate precision
_ONE = 1 << _SHIFT

# Texture noise amplitudes (grey levels) by labelId: fine grain and large blotches.
_GRAIN = np.zeros(256, np.float32)
_BLOTCH = np.zeros(256, np.float32)
for _ids, _g, _b in (((ROAD, PARKING, GROUND), 9, 10), ((SIDEWALK,), 6, 8), ((BUILDING,), 5, 12),
                     ((WALL,), 4, 14), ((VEGETATION,), 22, 18), ((TERRAIN,), 12, 14), ((SKY,), 1.5, 10),
                     ((RAIL,), 16, 6), ((FENCE, POLE, SIGN, LIGHT), 3, 3),
                     ((CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE), 3, 4), ((PERSON, RIDER), 6, 4),
                     ((EGO, OUT_OF_ROI, STATIC), 4, 6)):
    _GRAIN[list(_ids)] = _g
    _BLOTCH[list(_ids)] = _b
del _ids, _g, _b


class SynthError(DataError):
    """The generated data set cannot be written where asked."""


def _fp(points: Sequence[Sequence[float]]) -> np.ndarray:
    """Float points to OpenCV's fixed-point int32 polygon."""
    return np.round(np.asarray(points, dtype=np.float64) * _ONE).astype(np.int32).reshape(-1, 1, 2)


class _Canvas:
    """Label, instance and colour layers drawn together with the same OpenCV rasterisation."""

    def __init__(self, h: int, w: int) -> None:
        self.h, self.w = h, w
        self.lab = np.zeros((h, w), np.uint8)
        self.inst = np.zeros((h, w), np.uint16)
        self.img = np.zeros((h, w, 3), np.float32)
        self._counts: dict[int, int] = {}

    def new_instance(self, label: int) -> int:
        """A fresh ``labelId * 1000 + k`` instance id."""
        k = self._counts.get(label, 0)
        self._counts[label] = k + 1
        return label * 1000 + k

    def _layers(self, label: int | None, color: Color,
                inst: int) -> Iterator[tuple[np.ndarray, float | tuple[float, ...]]]:
        if label is not None:
            yield self.lab, label
            yield self.inst, inst
        yield self.img, tuple(float(c) for c in color)

    def poly(self, pts: Sequence[Sequence[float]], label: int | None, color: Color,
             inst: int = 0) -> None:
        """Fill a polygon; ``label=None`` paints the colour only (a detail of the region below)."""
        import cv2

        p = _fp(pts)
        for layer, value in self._layers(label, color, inst):
            cv2.fillPoly(layer, [p], value, cv2.LINE_8, _SHIFT)

    def rect(self, x0: float, y0: float, x1: float, y1: float, label: int | None,
             color: Color, inst: int = 0) -> None:
        """Fill an axis-aligned rectangle given by two corners."""
        self.poly([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], label, color, inst)

    def line(self, p0: Sequence[float], p1: Sequence[float], thickness: float, label: int | None,
             color: Color, inst: int = 0) -> None:
        """Draw a straight line of at least one pixel."""
        import cv2

        a, b = _fp([p0, p1]).reshape(2, 2)
        t = max(1, round(thickness))
        for layer, value in self._layers(label, color, inst):
            cv2.line(layer, tuple(map(int, a)), tuple(map(int, b)), value, t, cv2.LINE_8, _SHIFT)

    def ellipse(self, center: Sequence[float], axes: Sequence[float], label: int | None,
                color: Color, inst: int = 0, thickness: float = -1) -> None:
        """Fill (or outline, ``thickness > 0``) an axis-aligned ellipse."""
        import cv2

        c = tuple(int(v) for v in _fp([center]).reshape(2))
        ax = tuple(max(_ONE // 2, round(v * _ONE)) for v in axes)
        t = -1 if thickness < 0 else max(1, round(thickness))
        for layer, value in self._layers(label, color, inst):
            cv2.ellipse(layer, c, ax, 0, 0, 360, value, t, cv2.LINE_8, _SHIFT)


class _Scene:
    """One street scene: geometry of the camera and the ground plane, and the drawing of objects.

    Ground-plane geometry: a point at lateral offset ``X`` metres and scale ``s`` (pixels per
    metre at its depth) projects to ``x = vx + X * s`` and, for height ``Z`` above the ground,
    ``y = yh + (cam_h - Z) * s``.
    """

    def __init__(self, h: int, w: int, rng: np.random.Generator, forced: set[int]) -> None:
        self.h, self.w, self.rng, self.forced = h, w, rng, forced
        self.c = _Canvas(h, w)
        self.yh = h * rng.uniform(0.36, 0.48)
        self.vx = w * rng.uniform(0.38, 0.62)
        self.cam_h = 1.5
        self.s_max = (h - self.yh) / self.cam_h  # scale of the bottom image row
        self.s_min = self.s_max / 60.0
        self.road_l = rng.uniform(3.5, 7.5)
        self.road_r = rng.uniform(3.5, 7.5)
        self.walk_l = rng.uniform(2.0, 4.5)
        self.walk_r = rng.uniform(2.0, 4.5)
        self.verge_l = rng.uniform(0.0, 5.0)
        self.verge_r = rng.uniform(0.0, 5.0)
        self.objects: list[tuple[float, int, str, float]] = []  # (scale, order, kind, x), far to near

    # --- geometry -------------------------------------------------------------------------
    def pt(self, x_m: float, z_m: float, s: float) -> tuple[float, float]:
        """Screen point of lateral offset ``x_m`` and height ``z_m`` at scale ``s``."""
        return self.vx + x_m * s, self.yh + (self.cam_h - z_m) * s

    def side_x(self, side: int, offset: float) -> float:
        """Lateral position ``offset`` metres beyond the road edge on ``side`` (-1 left, +1 right)."""
        return side * ((self.road_l if side < 0 else self.road_r) + offset)

    def walk(self, side: int) -> float:
        return self.walk_l if side < 0 else self.walk_r

    def facade_x(self, side: int) -> float:
        return self.side_x(side, self.walk(side) + (self.verge_l if side < 0 else self.verge_r))

    def rand_scale(self, near: float = 1.0, far: float = 25.0) -> float:
        """A scale for a random depth between ``near`` and ``far`` times the nearest ground row."""
        return self.s_max / np.exp(self.rng.uniform(np.log(near), np.log(far)))

    def visible_scale(self, x_m: float, near: float = 1.0, far: float = 25.0, margin: float = 0.5) -> float:
        """:meth:`rand_scale`, brought farther if needed so that lateral ``x_m`` (± ``margin``) is on screen."""
        s = self.rand_scale(near, far)
        room = (self.w - self.vx) if x_m > 0 else self.vx
        reach = abs(x_m) + margin
        return min(s, 0.97 * room / reach)

    def strip(self, x0: float, x1: float, label: int, color: Color) -> None:
        """Fill the ground strip between lateral positions ``x0`` and ``x1`` (to the horizon)."""
        s0, s1 = self.s_min, self.s_max * 1.5
        self.c.poly([self.pt(x0, 0, s0), self.pt(x1, 0, s0), self.pt(x1, 0, s1), self.pt(x0, 0, s1)],
                    label, color)

    def vertical_quad(self, x_m: float, s0: float, s1: float, z0: float, z1: float, label: int | None,
                      color: Color, inst: int = 0) -> None:
        """A vertical surface parallel to the road at lateral ``x_m`` between scales and heights."""
        self.c.poly([self.pt(x_m, z0, s0), self.pt(x_m, z0, s1), self.pt(x_m, z1, s1), self.pt(x_m, z1, s0)],
                    label, color, inst)

    # --- colours --------------------------------------------------------------------------
    def jitter(self, rgb: Sequence[float], amount: float = 12.0) -> np.ndarray:
        return np.clip(np.asarray(rgb, np.float32) + self.rng.normal(0, amount, 3), 0, 255)

    def grey(self, lo: float, hi: float, tint: float = 8.0) -> np.ndarray:
        return self.jitter([self.rng.uniform(lo, hi)] * 3, tint)

    def vehicle_color(self) -> np.ndarray:
        palette = ((235, 235, 235), (30, 30, 35), (150, 150, 155), (110, 110, 115), (160, 30, 30),
                   (30, 50, 130), (40, 90, 60), (200, 180, 60), (90, 60, 40), (70, 120, 170))
        return self.jitter(palette[self.rng.integers(len(palette))], 15)

    def cloth_color(self) -> np.ndarray:
        return self.rng.uniform(15, 230, 3).astype(np.float32)

    # --- background -----------------------------------------------------------------------
    def draw_background(self) -> None:
        rng, c = self.rng, self.c
        overcast = rng.random() < 0.35
        top = self.grey(150, 215, 5) if overcast else self.jitter((80, 130, 200), 20)
        bottom = self.grey(190, 240, 5) if overcast else self.jitter((170, 200, 230), 15)
        rows = np.linspace(0.0, 1.0, self.h, dtype=np.float32)[:, None, None]
        c.img[:] = top + (bottom - top) * np.minimum(rows * self.h / max(self.yh, 1.0), 1.0)
        c.lab[:] = SKY
        c.inst[:] = SKY
        # Ground beyond the verges, then the strips from the outside in.
        c.rect(0, self.yh, self.w, self.h, GROUND, self.jitter((110, 100, 85), 15))
        for side in (-1, 1):
            verge = TERRAIN if TERRAIN in self.forced or rng.random() < 0.5 else (
                GROUND if rng.random() < 0.5 else SIDEWALK)
            color = {TERRAIN: self.jitter((120, 150, 70), 20), GROUND: self.jitter((115, 100, 80), 15),
                     SIDEWALK: self.grey(130, 185)}[verge]
            self.strip(self.facade_x(side) + side * 30, self.side_x(side, self.walk(side)), verge, color)
            self.strip(self.side_x(side, self.walk(side)), self.side_x(side, 0), SIDEWALK, self.grey(125, 190))
            self.strip(self.side_x(side, 0.0), self.side_x(side, 0.18), SIDEWALK, self.grey(170, 215))
        road = self.grey(70, 125, 5)
        self.strip(-self.road_l, self.road_r, ROAD, road)
        if rng.random() < 0.4:
            side = -1 if rng.random() < 0.5 else 1
            self.strip(self.side_x(side, -2.2), self.side_x(side, 0), PARKING, road * 1.08 + 6)
        self.draw_ground_details()

    def draw_ground_details(self) -> None:
        """Lane markings, sidewalk joints and crosswalks (colour only)."""
        rng, c = self.rng, self.c
        paint = self.grey(200, 245, 4) if rng.random() < 0.8 else self.jitter((220, 190, 60), 10)
        lanes = [0.0] if rng.random() < 0.7 else [-self.road_l / 2, self.road_r / 2]
        z = 1.0
        while z < 60:
            s0, s1 = self.s_max / z, self.s_max / (z + 3.0)
            for lx in lanes:
                c.poly([self.pt(lx - 0.08, 0, s0), self.pt(lx + 0.08, 0, s0),
                        self.pt(lx + 0.08, 0, s1), self.pt(lx - 0.08, 0, s1)], None, paint)
            z += 6.0
        for side in (-1, 1):  # sidewalk tile joints across the walk
            joint = self.grey(80, 120, 3)
            z = 1.0
            while z < 40:
                s = self.s_max / z
                c.line(self.pt(self.side_x(side, 0.2), 0, s), self.pt(self.side_x(side, self.walk(side)), 0, s),
                       s * 0.04, None, joint)
                z *= 1.0 + 0.6 / max(z, 1.0) + 0.05
        if rng.random() < 0.5:  # crosswalk
            s0 = self.rand_scale(1.5, 6.0)
            s1 = s0 * 0.8
            xs = np.arange(-self.road_l + 0.5, self.road_r - 0.5, 1.0)
            for x in xs:
                c.poly([self.pt(x, 0, s0), self.pt(x + 0.5, 0, s0), self.pt(x + 0.5, 0, s1),
                        self.pt(x, 0, s1)], None, paint)

    def draw_buildings(self) -> None:
        rng, c = self.rng, self.c
        # A far block closing the street, then the facades on both sides from far to near.
        far = self.s_max / 70.0
        c.rect(self.pt(-60, 0, far)[0], self.pt(0, rng.uniform(12, 35), far)[1], self.pt(60, 0, far)[0],
               self.pt(0, 0, far)[1] + 1, BUILDING, self.grey(90, 200, 15))
        for side in (-1, 1):
            x = self.facade_x(side)
            z = 70.0
            while z > 0.3:
                length = rng.uniform(6.0, 22.0)
                z0, z1 = max(z - length, 0.3), z
                s_far, s_near = self.s_max / z1, self.s_max / z0
                kind = rng.random()
                if kind < 0.12:  # gap: trees behind
                    self.vertical_quad(x - side * 2, s_far, s_near, 0, rng.uniform(6, 12), VEGETATION,
                                       self.jitter((60, 100, 40), 20))
                else:
                    height = rng.uniform(7.0, 28.0)
                    color = (self.jitter((200, 185, 150), 25) if rng.random() < 0.4 else self.grey(60, 210, 12))
                    self.vertical_quad(x, s_far, s_near, 0, height, BUILDING, color)
                    self.draw_windows(x, z0, z1, height, color)
                if rng.random() < 0.12:
                    self.draw_wall(side, z0, z1)
                elif rng.random() < 0.2:  # hedge
                    self.vertical_quad(x - side * 0.5, s_far, s_near, 0, rng.uniform(0.8, 1.8), VEGETATION,
                                       self.jitter((55, 95, 35), 15))
                z = z0 - (rng.uniform(1.0, 5.0) if rng.random() < 0.3 else 0.0)
        if WALL in self.forced:
            z0 = rng.uniform(1.0, 4.0)
            self.draw_wall(-1 if rng.random() < 0.5 else 1, z0, z0 + rng.uniform(10.0, 30.0))

    def draw_wall(self, side: int, z0: float, z1: float) -> None:
        """A free-standing wall with panel joints in front of the facade, between depths ``z0 < z1``."""
        rng = self.rng
        x = self.facade_x(side) - side * rng.uniform(0.2, 1.0)
        height = rng.uniform(1.0, 2.6)
        color = self.grey(115, 195, 10) if rng.random() < 0.7 else self.jitter((185, 160, 130), 15)
        self.vertical_quad(x, self.s_max / z1, self.s_max / z0, 0, height, WALL, color)
        joint = color * 0.7
        for zz in np.arange(z0 + 1.0, z1, rng.uniform(1.5, 3.0)):
            s = self.s_max / zz
            self.c.line(self.pt(x, 0, s), self.pt(x, height, s), 0.05 * s, None, joint)

    def draw_windows(self, x: float, z0: float, z1: float, height: float, color: np.ndarray) -> None:
        """Grid of windows on a facade (colour only)."""
        rng = self.rng
        glass = self.jitter((45, 55, 65), 18) if rng.random() < 0.7 else color * 0.6 + 80
        ww, wh, dz, dh = rng.uniform(0.8, 1.6), rng.uniform(1.0, 1.8), rng.uniform(2.5, 4.0), rng.uniform(2.8, 3.6)
        for zz in np.arange(z0 + 0.8, z1 - ww, dz):
            s_a, s_b = self.s_max / (zz + ww), self.s_max / zz
            if abs(x) * (s_b - s_a) < 0.8:  # narrower than a pixel
                continue
            for hh in np.arange(rng.uniform(0.8, 2.0), height - wh - 0.3, dh):
                self.vertical_quad(x, s_a, s_b, hh, hh + wh, None, glass)

    def draw_fences_and_train(self) -> None:
        rng = self.rng
        for side in (-1, 1):
            if (FENCE in self.forced and side < 0) or rng.random() < 0.3:
                x = self.side_x(side, self.walk(side) - 0.1)
                z0 = rng.uniform(0.5, 6.0)
                self.draw_fence(x, z0, z0 + rng.uniform(10.0, 40.0), rng.uniform(0.9, 1.6))
        if TRAIN in self.forced or rng.random() < 0.1:
            side = -1 if rng.random() < 0.5 else 1
            x = self.side_x(side, self.walk(side) + 1.0)
            z0 = rng.uniform(3.0, 10.0)
            self.draw_train(x, z0, z0 + rng.uniform(25.0, 60.0), side)

    def draw_fence(self, x: float, z0: float, z1: float, height: float) -> None:
        c = self.c
        color = self.grey(70, 180, 10) if self.rng.random() < 0.6 else self.jitter((120, 90, 60), 12)
        s0, s1 = self.s_max / z1, self.s_max / z0
        for frac in (0.35, 0.95):
            c.line(self.pt(x, height * frac, s0), self.pt(x, height * frac, s1), max(1.0, s1 * 0.05),
                   FENCE, color)
        z = z0
        step = self.rng.uniform(0.25, 0.6)
        while z < z1:
            s = self.s_max / z
            c.line(self.pt(x, 0, s), self.pt(x, height, s), s * 0.05, FENCE, color)
            z += step * max(1.0, z / 6.0)

    def draw_train(self, x: float, z0: float, z1: float, side: int) -> None:
        c = self.c
        s_far, s_near = self.s_max / z1, self.s_max / z0
        self.vertical_quad(x - side * 0.5, s_far, s_near * 1.3, -0.2, 0.25, RAIL, self.jitter((95, 85, 75), 10))
        self.strip(x - side * 1.4, x + side * 1.4, RAIL, self.jitter((100, 90, 80), 10))
        inst = c.new_instance(TRAIN)
        body = self.jitter(((200, 40, 40), (225, 225, 225), (40, 80, 160))[self.rng.integers(3)], 15)
        self.vertical_quad(x, s_far, s_near, 0.5, 4.0, TRAIN, body, inst)
        self.vertical_quad(x, s_far, s_near, 0.5, 0.9, None, body * 0.5)
        glass = self.jitter((40, 50, 60), 10)
        for zz in np.arange(z0 + 0.5, z1 - 1.2, 2.2):
            self.vertical_quad(x, self.s_max / (zz + 1.2), self.s_max / zz, 2.0, 3.2, None, glass)

    # --- objects --------------------------------------------------------------------------
    def lane_x(self) -> float:
        return self.rng.uniform(-self.road_l + 1.2, self.road_r - 1.2)

    def curb_x(self, inset: float) -> float:
        return self.side_x(-1 if self.rng.random() < 0.5 else 1, -inset)

    def walk_x(self) -> float:
        side = -1 if self.rng.random() < 0.5 else 1
        return self.side_x(side, self.rng.uniform(0.4, max(0.5, self.walk(side) - 0.4)))

    def place(self, kind: str, far: float | None = None) -> tuple[float, float]:
        """Lateral position and a scale that keeps the object on screen, for an object ``kind``.

        ``far`` (in units of the nearest ground row's depth) caps the distance.
        """
        rng = self.rng
        if kind in ("car", "truck", "bus"):
            x = self.lane_x() if rng.random() < 0.6 else self.curb_x(1.2)
            near, farthest, margin = (1.3 if kind == "car" else 2.5), 30.0, (2.5 if kind == "car" else 5.0)
        elif kind in ("bicycle", "motorcycle"):
            x = self.lane_x() if rng.random() < 0.6 else self.walk_x()
            near, farthest, margin = 1.3, 20.0, 1.0
        elif kind in ("pole", "light-pole", "tree"):
            side = -1 if rng.random() < 0.5 else 1
            x = self.side_x(side, rng.uniform(0.3, 0.6) if kind != "tree" else rng.uniform(0.5, self.walk(side)))
            near, farthest, margin = (2.0, 8.0, 0.5) if kind == "light-pole" else (1.3, 30.0, 0.5)
        else:
            x = self.walk_x() if kind == "static" or rng.random() < 0.8 else self.lane_x()
            near, farthest, margin = 1.3, 25.0, 0.6
        return x, self.visible_scale(x, near, farthest if far is None else max(near, far), margin)

    def plan_objects(self) -> None:
        rng = self.rng
        counts: dict[str, int] = {
            "car": int(rng.integers(1, 6)), "person": int(rng.integers(1, 6)),
            "pole": int(rng.integers(2, 7)), "tree": int(rng.integers(0, 5)),
            "static": int(rng.integers(0, 3)),
            "truck": int(TRUCK in self.forced) + int(rng.random() < 0.2),
            "bus": int(BUS in self.forced) + int(rng.random() < 0.15),
            "bicycle": int(BICYCLE in self.forced or RIDER in self.forced) + int(rng.random() < 0.3),
            "motorcycle": int(MOTORCYCLE in self.forced) + int(rng.random() < 0.15),
            "light-pole": int(LIGHT in self.forced) + int(rng.random() < 0.3)
        }
        for kind, n in counts.items():
            for _ in range(n):
                x, s = self.place(kind)
                self.objects.append((s, len(self.objects), kind, x))

    def draw_object(self, kind: str, s: float, x: float) -> None:
        getattr(self, "draw_" + kind.replace("-", "_"))(s, x)

    def draw_objects(self) -> None:
        for s, _, kind, x in sorted(self.objects):
            self.draw_object(kind, s, x)

    def ensure_forced(self) -> None:
        """Redraw forced classes that nearer objects hid, in front of them; a few tries each."""
        min_pixels = max(4, self.h * self.w // 4000)
        for label in sorted(self.forced):
            for _ in range(4):
                if np.count_nonzero(self.c.lab == label) >= min_pixels:
                    break
                self.draw_near(label)

    def draw_near(self, label: int) -> None:
        """Draw one near, visible thing of class ``label`` (one of :data:`RARE`)."""
        rng = self.rng
        side = -1 if rng.random() < 0.5 else 1
        z0 = rng.uniform(1.2, 3.0)
        z1 = z0 + rng.uniform(6.0, 20.0)
        if label == WALL:
            self.draw_wall(side, z0, z1)
        elif label == FENCE:
            self.draw_fence(self.side_x(side, self.walk(side) - 0.1), z0, z1, rng.uniform(0.9, 1.6))
        elif label == TRAIN:
            self.draw_train(self.side_x(side, self.walk(side) + 1.0), z0 + 1.0, z1 + 20.0, side)
        elif label == TERRAIN:  # a grass planter on the sidewalk
            x0, x1 = self.side_x(side, 0.5), self.side_x(side, max(0.8, self.walk(side) - 0.3))
            s0, s1 = self.s_max / z1, self.s_max / z0
            self.c.poly([self.pt(x0, 0, s0), self.pt(x1, 0, s0), self.pt(x1, 0, s1), self.pt(x0, 0, s1)],
                        TERRAIN, self.jitter((120, 150, 70), 20))
        else:
            kind = {TRUCK: "truck", BUS: "bus", MOTORCYCLE: "motorcycle", BICYCLE: "bicycle",
                    RIDER: "bicycle", LIGHT: "light-pole"}[label]
            x, s = self.place(kind, far=6.0)
            self.draw_object(kind, s, x)

    def draw_car(self, s: float, x: float) -> None:
        rng, c = self.rng, self.c
        inst = c.new_instance(CAR)
        color = self.vehicle_color()
        glass = self.jitter((40, 45, 55), 10)
        if rng.random() < 0.55:  # rear view
            w = rng.uniform(1.6, 1.9)
            x0, _ = self.pt(x - w / 2, 0, s)
            x1, yb = self.pt(x + w / 2, 0, s)
            _, ym = self.pt(x, 0.95, s)
            _, yt = self.pt(x, rng.uniform(1.35, 1.6), s)
            c.rect(x0 + 0.12 * s, yb, x0 + 0.35 * s, yb - 0.35 * s, CAR, self.grey(15, 35, 3), inst)
            c.rect(x1 - 0.35 * s, yb, x1 - 0.12 * s, yb - 0.35 * s, CAR, self.grey(15, 35, 3), inst)
            c.rect(x0, yb - 0.25 * s, x1, ym, CAR, color, inst)
            c.poly([(x0 + 0.1 * s, ym), (x1 - 0.1 * s, ym), (x1 - 0.25 * s, yt), (x0 + 0.25 * s, yt)],
                   CAR, color, inst)
            c.poly([(x0 + 0.2 * s, ym - 0.05 * s), (x1 - 0.2 * s, ym - 0.05 * s), (x1 - 0.3 * s, yt + 0.07 * s),
                    (x0 + 0.3 * s, yt + 0.07 * s)], None, glass)
            for xa in (x0 + 0.05 * s, x1 - 0.3 * s):
                c.rect(xa, ym + 0.1 * s, xa + 0.25 * s, ym + 0.25 * s, None, (190, 20, 20))
            c.rect((x0 + x1) / 2 - 0.25 * s, yb - 0.45 * s, (x0 + x1) / 2 + 0.25 * s, yb - 0.33 * s, None,
                   (235, 235, 235))
            return
        length = rng.uniform(3.8, 4.8) * s  # side view
        xc, yb = self.pt(x, 0, s)
        x0, x1 = xc - length / 2, xc + length / 2
        r = 0.33 * s
        c.rect(x0, yb - 0.25 * s, x1, yb - 1.0 * s, CAR, color, inst)
        front, back = (0.22, 0.3) if rng.random() < 0.5 else (0.3, 0.22)
        roof = (x0 + length * front, x1 - length * back)
        c.poly([(x0 + length * 0.12, yb - s), (x1 - length * 0.12, yb - s), (roof[1], yb - 1.45 * s),
                (roof[0], yb - 1.45 * s)], CAR, color, inst)
        c.poly([(x0 + length * 0.17, yb - 1.02 * s), (x1 - length * 0.17, yb - 1.02 * s),
                (roof[1] - 0.05 * s, yb - 1.38 * s), (roof[0] + 0.05 * s, yb - 1.38 * s)], None, glass)
        c.line((xc, yb - 1.02 * s), (xc, yb - 1.4 * s), 0.06 * s, None, color)
        for wx in (x0 + length * 0.2, x1 - length * 0.2):
            c.ellipse((wx, yb - r), (r, r), CAR, self.grey(15, 35, 3), inst)
            c.ellipse((wx, yb - r), (r * 0.5, r * 0.5), None, self.grey(120, 170, 5))

    def draw_big_vehicle(self, s: float, x: float, label: int) -> None:
        """Trucks (cabin + cargo box) and buses (long body with a window band)."""
        rng, c = self.rng, self.c
        inst = c.new_instance(label)
        color = self.vehicle_color() if label == TRUCK or rng.random() < 0.5 else self.jitter(
            ((230, 190, 40), (200, 40, 40), (235, 235, 235))[rng.integers(3)], 12)
        glass = self.jitter((40, 48, 58), 10)
        height = rng.uniform(3.0, 3.8)
        xc, yb = self.pt(x, 0, s)
        if rng.random() < 0.4:  # rear view
            x0, x1 = xc - 1.25 * s, xc + 1.25 * s
            c.rect(x0, yb - 0.3 * s, x1, yb - height * s, label, color, inst)
            for xa in (x0 + 0.1 * s, x1 - 0.5 * s):
                c.rect(xa, yb, xa + 0.4 * s, yb - 0.4 * s, label, self.grey(15, 35, 3), inst)
            if label == BUS:
                c.rect(x0 + 0.2 * s, yb - (height - 0.3) * s, x1 - 0.2 * s, yb - (height - 1.3) * s, None, glass)
            else:
                c.line((xc, yb - 0.4 * s), (xc, yb - (height - 0.1) * s), 0.05 * s, None, color * 0.7)
            return
        length = rng.uniform(8.0, 12.5) * s
        x0, x1 = xc - length / 2, xc + length / 2
        forward = rng.random() < 0.5
        if label == BUS:
            c.rect(x0, yb - 0.35 * s, x1, yb - height * s, BUS, color, inst)
            c.rect(x0 + 0.3 * s, yb - (height - 0.35) * s, x1 - 0.3 * s, yb - 1.6 * s, None, glass)
            for k in np.arange(x0 + 1.5 * s, x1 - 0.5 * s, 1.6 * s):
                c.line((k, yb - (height - 0.35) * s), (k, yb - 1.6 * s), 0.12 * s, None, color)
            door = x0 + length * (0.2 if forward else 0.7)
            c.rect(door, yb - 0.4 * s, door + 1.1 * s, yb - (height - 0.5) * s, None, glass * 1.3)
            wheels: tuple[float, ...] = (x0 + length * 0.15, x1 - length * 0.2)
        else:
            cab = 2.2 * s
            cab_x0, box_x0 = (x1 - cab, x0) if forward else (x0, x0 + cab + 0.2 * s)
            box_x1 = cab_x0 - 0.2 * s if forward else x1
            c.rect(box_x0, yb - 0.8 * s, box_x1, yb - (height + 0.2) * s, TRUCK, color, inst)
            c.rect(cab_x0, yb - 0.4 * s, cab_x0 + cab, yb - 2.8 * s, TRUCK, self.vehicle_color(), inst)
            gx = cab_x0 + (0.9 * s if forward else 0.2 * s)
            c.rect(gx, yb - 1.7 * s, gx + 1.1 * s, yb - 2.6 * s, None, glass)
            c.rect(box_x0, yb - 0.8 * s, box_x1, yb - 0.5 * s, TRUCK, self.grey(30, 60, 3), inst)
            wheels = (x0 + length * 0.12, x0 + length * 0.3, x1 - length * 0.15)
        for wx in wheels:
            c.ellipse((wx, yb - 0.5 * s), (0.5 * s, 0.5 * s), label, self.grey(15, 35, 3), inst)
            c.ellipse((wx, yb - 0.5 * s), (0.22 * s, 0.22 * s), None, self.grey(110, 160, 5))

    def draw_truck(self, s: float, x: float) -> None:
        self.draw_big_vehicle(s, x, TRUCK)

    def draw_bus(self, s: float, x: float) -> None:
        self.draw_big_vehicle(s, x, BUS)

    def draw_human(self, xc: float, yb: float, s: float, label: int, riding: bool = False) -> None:
        """A person (or a seated rider) with feet at screen point ``(xc, yb)``."""
        rng, c = self.rng, self.c
        inst = c.new_instance(label)
        height = rng.uniform(1.55, 1.95) * s
        top, legs = self.cloth_color(), self.cloth_color()
        skin = self.jitter(((225, 190, 160), (170, 120, 90), (110, 75, 55))[rng.integers(3)], 10)
        hip = yb - height * (0.47 if not riding else 0.3)
        shoulder = yb - height * 0.82
        half = height * rng.uniform(0.11, 0.14)
        if riding:
            c.line((xc, hip), (xc + half * 1.6, yb - height * 0.1), half * 0.7, label, legs, inst)
        else:
            stride = half * rng.uniform(0.1, 0.9)
            for d in (-1, 1):
                c.poly([(xc + d * 0.15 * half, hip), (xc + d * half * 0.95, hip),
                        (xc + d * (stride + 0.5 * half), yb), (xc + d * stride, yb)], label, legs, inst)
        c.poly([(xc - half, hip), (xc + half, hip), (xc + half * 1.1, shoulder), (xc - half * 1.1, shoulder)],
               label, top, inst)
        for d in (-1, 1):
            c.line((xc + d * half * 1.05, shoulder), (xc + d * half * 1.35, hip + 0.05 * height), half * 0.45,
                   label, top, inst)
        head = height * 0.075
        c.ellipse((xc, shoulder - head * 1.1), (head * 0.85, head), label, skin, inst)
        if rng.random() < 0.4:  # hat or helmet
            c.ellipse((xc, shoulder - head * 1.5), (head * 0.9, head * 0.6), label, self.cloth_color(), inst)

    def draw_person(self, s: float, x: float) -> None:
        self.draw_human(*self.pt(x, 0, s), s, PERSON)

    def draw_bicycle(self, s: float, x: float) -> None:
        rng, c = self.rng, self.c
        xc, yb = self.pt(x, 0, s)
        inst = c.new_instance(BICYCLE)
        color = self.vehicle_color()
        r, half = 0.34 * s, 0.55 * s
        t = max(1.0, 0.05 * s)
        for d in (-1, 1):
            c.ellipse((xc + d * half, yb - r), (r, r), BICYCLE, self.grey(20, 50, 3), inst, thickness=t)
        seat, bar = (xc - 0.1 * s, yb - 0.95 * s), (xc + 0.45 * s, yb - 1.0 * s)
        crank = (xc, yb - r)
        for p0, p1 in (((xc - half, yb - r), crank), (crank, seat), (seat, (xc - half, yb - r)),
                       (crank, (xc + 0.4 * s, yb - 0.85 * s)), (seat, bar), (bar, (xc + half, yb - r))):
            c.line(p0, p1, t, BICYCLE, color, inst)
        if RIDER in self.forced or rng.random() < 0.6:
            self.draw_human(xc - 0.15 * s, yb + 0.1 * s, s, RIDER, riding=True)

    def draw_motorcycle(self, s: float, x: float) -> None:
        rng, c = self.rng, self.c
        xc, yb = self.pt(x, 0, s)
        inst = c.new_instance(MOTORCYCLE)
        r, half = 0.32 * s, 0.72 * s
        c.ellipse((xc, yb - 0.65 * s), (0.62 * s, 0.25 * s), MOTORCYCLE, self.vehicle_color(), inst)
        c.rect(xc - 0.2 * s, yb - 0.55 * s, xc + 0.35 * s, yb - 0.3 * s, MOTORCYCLE, self.grey(60, 110, 5), inst)
        for d in (-1, 1):
            c.ellipse((xc + d * half, yb - r), (r, r), MOTORCYCLE, self.grey(15, 35, 3), inst)
            c.ellipse((xc + d * half, yb - r), (r * 0.45, r * 0.45), None, self.grey(140, 190, 5))
        c.line((xc + 0.45 * s, yb - 0.8 * s), (xc + 0.6 * s, yb - 1.1 * s), max(1.0, 0.06 * s), MOTORCYCLE,
               self.grey(30, 60, 3), inst)
        if rng.random() < 0.75:
            self.draw_human(xc - 0.1 * s, yb + 0.05 * s, s, RIDER, riding=True)

    def draw_traffic_light(self, xb: float, top: float, s: float) -> None:
        rng, c = self.rng, self.c
        housing = self.grey(20, 50, 4) if rng.random() < 0.7 else self.jitter((200, 170, 40), 10)
        c.rect(xb - 0.18 * s, top, xb + 0.18 * s, top + 0.95 * s, LIGHT, housing)
        lit = rng.integers(3)
        for k, rgb in enumerate(((230, 40, 30), (240, 170, 30), (40, 220, 90))):
            on = np.asarray(rgb, np.float32) * (1.0 if k == lit else 0.3)
            c.ellipse((xb, top + (0.17 + 0.3 * k) * s), (0.1 * s, 0.1 * s), None, on)

    def draw_sign(self, xb: float, yc: float, s: float) -> None:
        rng, c = self.rng, self.c
        size = rng.uniform(0.5, 0.8) * s
        kind = rng.integers(3)
        if kind == 0:  # round prohibition sign
            c.ellipse((xb, yc), (size / 2, size / 2), SIGN, (200, 30, 30))
            c.ellipse((xb, yc), (size * 0.38, size * 0.38), None, self.jitter((235, 235, 235), 6))
        elif kind == 1:  # triangular warning sign
            c.poly([(xb - size / 2, yc - size * 0.4), (xb + size / 2, yc - size * 0.4), (xb, yc + size * 0.45)],
                   SIGN, (210, 40, 30))
            c.poly([(xb - size * 0.33, yc - size * 0.3), (xb + size * 0.33, yc - size * 0.3),
                    (xb, yc + size * 0.28)], None, self.jitter((235, 235, 225), 6))
        else:  # rectangular information sign
            c.rect(xb - size / 2, yc - size / 2, xb + size / 2, yc + size / 2, SIGN,
                   self.jitter(((30, 70, 170), (230, 200, 40), (235, 235, 235))[rng.integers(3)], 10))

    def draw_pole(self, s: float, x: float, light: bool = False) -> None:
        rng, c = self.rng, self.c
        xb, yb = self.pt(x, 0, s)
        height = rng.uniform(3.5, 8.0)
        width = rng.uniform(0.1, 0.22) * s
        color = self.grey(60, 170, 6)
        yt = yb - height * s
        c.rect(xb - width / 2, yb, xb + width / 2, yt, POLE, color)
        if light or rng.random() < 0.15:
            self.draw_traffic_light(xb, min(yt, yb - 2.8 * s), s)
        elif rng.random() < 0.3:  # street lamp arm
            c.line((xb, yt), (xb + np.sign(x) * -1.5 * s, yt + 0.2 * s), width * 0.7, POLE, color)
        if rng.random() < 0.6:
            self.draw_sign(xb, yb - min(height - 0.5, rng.uniform(2.0, 2.6)) * s, s)

    def draw_light_pole(self, s: float, x: float) -> None:
        self.draw_pole(s, x, light=True)

    def draw_tree(self, s: float, x: float) -> None:
        rng, c = self.rng, self.c
        xb, yb = self.pt(x, 0, s)
        trunk_h = rng.uniform(1.8, 3.5) * s
        c.rect(xb - 0.12 * s, yb, xb + 0.12 * s, yb - trunk_h, VEGETATION, self.jitter((90, 70, 50), 12))
        crown = rng.uniform(1.5, 3.0) * s
        green = self.jitter((70, 110, 45), 20)
        for _ in range(int(rng.integers(3, 7))):
            cx = xb + rng.normal(0, crown * 0.4)
            cy = yb - trunk_h - crown * rng.uniform(0.3, 1.1)
            c.ellipse((cx, cy), (crown * rng.uniform(0.5, 0.9), crown * rng.uniform(0.4, 0.8)), VEGETATION,
                      green * rng.uniform(0.8, 1.15))

    def draw_static(self, s: float, x: float) -> None:
        xb, yb = self.pt(x, 0, s)
        w, h = self.rng.uniform(0.4, 0.8) * s, self.rng.uniform(0.6, 1.1) * s
        self.c.rect(xb - w / 2, yb, xb + w / 2, yb - h, STATIC, self.grey(40, 160, 20))

    def draw_ignored_border(self) -> None:
        rng, c = self.rng, self.c
        if rng.random() < 0.6:  # ego vehicle bonnet
            depth = self.h * rng.uniform(0.05, 0.11)
            c.ellipse((self.w / 2, self.h + self.h * 0.25 - depth), (self.w * 0.75, self.h * 0.25), EGO,
                      self.grey(20, 80, 10))
        if rng.random() < 0.3:
            d = self.h * 0.12
            for x0 in (0.0, self.w):
                c.poly([(x0, self.h), (x0, self.h - d), (abs(x0 - 2 * d), self.h)], OUT_OF_ROI, (0, 0, 0))

    # --- appearance -----------------------------------------------------------------------
    def finish(self) -> np.ndarray:
        """Textures, shadows, illumination, blur and sensor noise; returns the uint8 RGB image."""
        import cv2

        rng, c, h, w = self.rng, self.c, self.h, self.w

        def smooth_noise(cells: int) -> np.ndarray:
            small = rng.standard_normal((max(2, h // cells), max(2, w // cells))).astype(np.float32)
            return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)

        grain = rng.standard_normal((h, w)).astype(np.float32)
        img = c.img
        img += (_GRAIN[c.lab] * grain + _BLOTCH[c.lab] * smooth_noise(12))[..., None]
        veg = (c.lab == VEGETATION) | (c.lab == TERRAIN)
        img[veg] += (rng.standard_normal((int(veg.sum()), 1)) * np.float32(14)) * np.array([0.5, 1.0, 0.3], np.float32)
        for _ in range(int(rng.integers(0, 4))):  # shadows cast across the ground and objects
            x0 = rng.uniform(-0.2, 1.0) * w
            y0 = rng.uniform(self.yh / h, 1.0) * h
            pts = _fp([(x0, y0), (x0 + rng.uniform(0.1, 0.5) * w, y0 + rng.uniform(-0.1, 0.1) * h),
                       (x0 + rng.uniform(0.2, 0.6) * w, h), (x0 - rng.uniform(0, 0.2) * w, h)])
            shade = np.zeros((h, w), np.uint8)
            cv2.fillPoly(shade, [pts], 1, cv2.LINE_8, _SHIFT)
            img[shade > 0] *= np.float32(rng.uniform(0.45, 0.75))
        gx, gy = rng.uniform(-0.35, 0.35), rng.uniform(-0.25, 0.25)
        xs = np.linspace(-0.5, 0.5, w, dtype=np.float32)
        ys = np.linspace(-0.5, 0.5, h, dtype=np.float32)
        light = rng.uniform(0.65, 1.25) * (1.0 + gx * xs[None, :] + gy * ys[:, None])
        img *= light[..., None] * rng.uniform(0.9, 1.1, 3).astype(np.float32)
        img[:] = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 0.9))
        img += rng.standard_normal(img.shape).astype(np.float32) * np.float32(rng.uniform(1.0, 4.0))
        return np.clip(np.rint(img), 0, 255).astype(np.uint8)

    def render(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Draw the scene; returns ``(rgb uint8, labelIds uint8, instanceIds uint16)``."""
        self.draw_background()
        self.draw_buildings()
        self.draw_fences_and_train()
        self.plan_objects()
        self.draw_objects()
        self.ensure_forced()
        self.draw_ignored_border()
        image = self.finish()
        inst = np.where(self.c.inst >= 1000, self.c.inst, self.c.lab).astype(np.uint16)
        return image, self.c.lab, inst


#: Smallest scene side that can be drawn.
MIN_SCENE_SIDE = 32


def check_size(size: tuple[int, int]) -> tuple[int, int]:
    """``size`` as ints; refuse sizes too small to draw a scene."""
    h, w = (int(v) for v in size)
    if h < MIN_SCENE_SIDE or w < MIN_SCENE_SIDE:
        raise SynthError(f"size {h}x{w} is too small to draw a street scene; use at least "
                         f"{MIN_SCENE_SIDE}x{MIN_SCENE_SIDE}")
    return h, w


def render_scene(size: tuple[int, int], seed: int | Sequence[int],
                 forced: Sequence[int] = ()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render one scene of ``size=(H, W)``.

    Args:
        size: image height and width.
        seed: integer (or sequence of integers) seeding the scene's random stream.
        forced: labelIds from :data:`RARE` the scene must contain.

    Returns:
        ``(image HxWx3 uint8 RGB, labelIds HxW uint8, instanceIds HxW uint16)``.
    """
    h, w = check_size(size)
    rng = np.random.default_rng(seed)
    return _Scene(h, w, rng, set(forced)).render()
