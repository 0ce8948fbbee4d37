"""Procedural articulated puppets with exact ground truth.

A puppet is ten rigid 2D parts (torso, head, two-segment arms and legs) on a kinematic tree, each a shape
(ellipse, rounded rectangle or capsule) carrying a texture (stripes, checks or smooth noise) in its own
part-local coordinates, over a static textured background. Because every part moves by a known 2D
similarity transform, the renderer knows for each pixel which part it shows and where that surface point
is in any other frame: optical flow, keypoints and part labels are exact, not estimated.

Coordinates
-----------
* Image pixels: ``(x, y)`` with ``x`` to the right and ``y`` down; integer coordinates are pixel
  *centres*, so pixel ``[row, col]`` is the point ``(x=col, y=row)``.
* Canonical (part-local) units: a puppet is about 2.7 units tall. The torso frame has its origin at the
  torso centre, ``x`` right and ``y`` down at rest. Every other part has its origin at the joint with its
  parent; limbs extend along local ``+y`` (from the proximal joint to the distal one), the head along ``-y``.
* A part's affine (2x3) maps part-local ``(u, v, 1)`` to image pixels. All transforms are similarities
  (rotation, uniform scale, translation).
* ``_l`` / ``_r`` name the limbs on the image-left / image-right side of the torso at rest.

Parts (label = part index + 1; label 0 is the background)::

    0 torso  1 head  2 upper_arm_l  3 lower_arm_l  4 upper_arm_r  5 lower_arm_r
    6 upper_leg_l  7 lower_leg_l  8 upper_leg_r  9 lower_leg_r

Depth order, back to front: right leg, right arm, torso, head, left leg, left arm (upper before lower).

Joints (15 points, see :data:`JOINT_NAMES`): head_top, neck, shoulder/elbow/hand for each arm, pelvis,
hip/knee/foot for each leg.

Joint angles (9, see :data:`ANGLE_NAMES`): angle ``i`` is the rotation of part ``i + 1`` relative to its
parent, in radians, 0 = hanging straight along the parent's ``+y`` axis (the head: upright).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

PART_NAMES: tuple[str, ...] = (
    "torso",
    "head",
    "upper_arm_l",
    "lower_arm_l",
    "upper_arm_r",
    "lower_arm_r",
    "upper_leg_l",
    "lower_leg_l",
    "upper_leg_r",
    "lower_leg_r",
)
NUM_PARTS = len(PART_NAMES)
TORSO, HEAD = 0, 1
# Each part's parent; parents precede their children, so one forward pass computes the transforms.
PARENTS: tuple[int, ...] = (-1, 0, 0, 2, 0, 4, 0, 6, 0, 8)
DEPTH_ORDER: tuple[int, ...] = (8, 9, 4, 5, 0, 1, 6, 7, 2, 3)

ANGLE_NAMES: tuple[str, ...] = (
    "neck",
    "shoulder_l",
    "elbow_l",
    "shoulder_r",
    "elbow_r",
    "hip_l",
    "knee_l",
    "hip_r",
    "knee_r",
)
NUM_ANGLES = len(ANGLE_NAMES)
# (low, high) radians per angle. A positive angle turns a limb's +y axis towards image-left (-x), so the
# image-left limbs raise with positive angles and the image-right ones with negative: mirrored ranges.
ANGLE_LIMITS = np.array(
    [
        (-0.35, 0.35),  # neck
        (0.15, 2.6),  # shoulder_l
        (-0.1, 2.0),  # elbow_l
        (-2.6, -0.15),  # shoulder_r
        (-2.0, 0.1),  # elbow_r
        (-0.3, 0.8),  # hip_l
        (-1.4, 0.0),  # knee_l
        (-0.8, 0.3),  # hip_r
        (0.0, 1.4),  # knee_r
    ]
)

JOINT_NAMES: tuple[str, ...] = (
    "head_top",
    "neck",
    "shoulder_l",
    "elbow_l",
    "hand_l",
    "shoulder_r",
    "elbow_r",
    "hand_r",
    "pelvis",
    "hip_l",
    "knee_l",
    "foot_l",
    "hip_r",
    "knee_r",
    "foot_r",
)
NUM_JOINTS = len(JOINT_NAMES)

SHAPES: tuple[str, ...] = ("ellipse", "rounded_rect", "capsule")
TEXTURES: tuple[str, ...] = ("stripes", "checks", "noise", "tiles")

# The head's centre sits a little below the top of its box so it overlaps the torso at the neck.
_HEAD_CENTRE = -0.42
_HEAD_TOP = -0.92
_CORNER = 0.45  # rounded-rectangle corner radius, as a fraction of the shorter half side
# tanh sharpness of checks (on parts: soft enough for bilinear warping) and tiles (background only)
_SHARPNESS = {"checks": 2.5, "tiles": 5.0}
# Puppet height over its torso centre, in canonical units: keeps the whole body centred in the frame.
_BODY_CENTRE_OFFSET = 0.35


@dataclass(frozen=True)
class Texture:
    """A smooth two-colour pattern defined in some 2D coordinate frame.

    Attributes:
        kind: one of :data:`TEXTURES`.
        colours: (2, 3) RGB in [0, 1]; the pattern value blends ``colours[0]`` (0) to ``colours[1]`` (1).
        waves: (K, 4) rows ``(kx, ky, phase, amplitude)``; wave ``k`` is ``sin(kx*u + ky*v + phase)``.
            stripes: K=1; checks and tiles: K=2 (their product); noise: K>=1 (amplitude-weighted sum).
    """

    kind: str
    colours: np.ndarray
    waves: np.ndarray

    def to_dict(self) -> dict:
        return {"kind": self.kind, "colours": self.colours.tolist(), "waves": self.waves.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping) -> Texture:
        return cls(
            kind=str(data["kind"]),
            colours=np.asarray(data["colours"], dtype=np.float64),
            waves=np.asarray(data["waves"], dtype=np.float64),
        )


@dataclass(frozen=True)
class Identity:
    """Everything about a puppet that does not change over time.

    Attributes:
        shapes: (P,) one of :data:`SHAPES` per part.
        lengths: (P,) canonical units: limb length joint to joint, torso and head height.
        widths: (P,) canonical units: limb thickness, torso and head width.
        textures: (P,) one :class:`Texture` per part, in part-local canonical units.
        background: a :class:`Texture` in image coordinates divided by the image size (so the background
            looks the same at every resolution).
    """

    shapes: tuple[str, ...]
    lengths: np.ndarray
    widths: np.ndarray
    textures: tuple[Texture, ...]
    background: Texture

    def to_json(self) -> str:
        """Serialise exactly (floats round-trip), so a clip can be re-rendered from its ``.npz``."""
        return json.dumps(
            {
                "shapes": list(self.shapes),
                "lengths": self.lengths.tolist(),
                "widths": self.widths.tolist(),
                "textures": [texture.to_dict() for texture in self.textures],
                "background": self.background.to_dict(),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Identity:
        data = json.loads(text)
        return cls(
            shapes=tuple(data["shapes"]),
            lengths=np.asarray(data["lengths"], dtype=np.float64),
            widths=np.asarray(data["widths"], dtype=np.float64),
            textures=tuple(Texture.from_dict(item) for item in data["textures"]),
            background=Texture.from_dict(data["background"]),
        )


@dataclass(frozen=True)
class Pose:
    """The puppet's configuration in one frame.

    Attributes:
        angles: (A,) joint angles in radians, see :data:`ANGLE_NAMES`.
        center: (2,) torso centre ``(x, y)`` as fractions of the image size.
        rotation: global rotation of the torso in radians (positive turns +x towards +y, i.e. clockwise on
            screen).
        scale: pixels per canonical unit divided by the image size.
    """

    angles: np.ndarray
    center: np.ndarray
    rotation: float
    scale: float


@dataclass(frozen=True)
class Motion:
    """A sequence of poses, one per frame.

    Attributes:
        angles: (T, A) radians. center: (T, 2). rotation: (T,). scale: (T,). Same meaning as :class:`Pose`.
        fps: frames per second (the motion's frequencies are in Hz).
    """

    angles: np.ndarray
    center: np.ndarray
    rotation: np.ndarray
    scale: np.ndarray
    fps: float

    def __len__(self) -> int:
        return len(self.angles)

    def pose(self, t: int) -> Pose:
        """The pose at frame ``t``."""
        return Pose(self.angles[t], self.center[t], float(self.rotation[t]), float(self.scale[t]))


# ----------------------------------------------------------------------------------------------- sampling


def _colour_pair(rng: np.random.Generator, low: float, high: float, shade: tuple[float, float]) -> np.ndarray:
    """A random colour and a darker shade of it: (2, 3) in [0, 1]. The shade keeps textures visible."""
    base = rng.uniform(low, high, 3)
    return np.stack([base, base * rng.uniform(*shade)])


def _sample_texture(rng: np.random.Generator, kind: str, period: tuple[float, float], colours: np.ndarray) -> Texture:
    """A texture of ``kind`` whose wavelengths lie in ``period`` (noise: up to 1.6x longer)."""
    theta = rng.uniform(0.0, np.pi)
    k = 2.0 * np.pi / rng.uniform(*period)
    if kind == "stripes":
        waves = [(k * np.cos(theta), k * np.sin(theta), rng.uniform(0, 2 * np.pi), 1.0)]
    elif kind in ("checks", "tiles"):
        # tiles are axis-aligned (a floor or wall); checks turn with a random angle
        theta = 0.0 if kind == "tiles" else theta
        waves = [
            (k * np.cos(theta), k * np.sin(theta), rng.uniform(0, 2 * np.pi), 1.0),
            (-k * np.sin(theta), k * np.cos(theta), rng.uniform(0, 2 * np.pi), 1.0),
        ]
    elif kind == "noise":
        angles = rng.uniform(0.0, 2.0 * np.pi, 4)
        ks = 2.0 * np.pi / rng.uniform(period[0], period[1] * 1.6, 4)
        waves = list(
            zip(ks * np.cos(angles), ks * np.sin(angles), rng.uniform(0, 2 * np.pi, 4), rng.uniform(0.3, 1.0, 4))
        )
    else:
        raise ValueError(f"unknown texture kind {kind!r}")
    return Texture(kind, colours, np.asarray(waves, dtype=np.float64))


def sample_identity(rng: np.random.Generator) -> Identity:
    """Draw a random puppet: proportions, shapes, colours, textures and background.

    Left and right limbs share proportions and shapes (a puppet is symmetric); colours and textures are
    drawn per part.
    """
    lengths = np.empty(NUM_PARTS)
    widths = np.empty(NUM_PARTS)
    shapes = [""] * NUM_PARTS
    lengths[TORSO], widths[TORSO] = rng.uniform(0.85, 1.1), rng.uniform(0.5, 0.7)
    widths[HEAD] = rng.uniform(0.36, 0.5)
    lengths[HEAD] = widths[HEAD] * rng.uniform(1.0, 1.3)
    shapes[TORSO] = str(rng.choice(SHAPES))
    shapes[HEAD] = str(rng.choice(("ellipse", "rounded_rect")))
    # (upper parts, lower parts, upper length range, upper width range, lower length range)
    limbs = (
        ((2, 4), (3, 5), (0.38, 0.5), (0.15, 0.22), (0.35, 0.48)),
        ((6, 8), (7, 9), (0.45, 0.6), (0.19, 0.28), (0.42, 0.55)),
    )
    for uppers, lowers, upper_length, upper_width, lower_length in limbs:
        lengths[list(uppers)] = rng.uniform(*upper_length)
        widths[list(uppers)] = rng.uniform(*upper_width)
        lengths[list(lowers)] = rng.uniform(*lower_length)
        widths[list(lowers)] = widths[uppers[0]] * rng.uniform(0.75, 0.95)
        for segment in (uppers, lowers):
            shape = str(rng.choice(SHAPES))
            for part in segment:
                shapes[part] = shape
    textures = tuple(
        _sample_texture(rng, str(rng.choice(TEXTURES[:3])), (0.25, 0.5), _colour_pair(rng, 0.15, 1.0, (0.3, 0.65)))
        for _ in range(NUM_PARTS)
    )
    background_kind = str(rng.choice(("noise", "tiles")))
    background_period = (0.1, 0.25) if background_kind == "tiles" else (0.15, 0.5)
    background = _sample_texture(rng, background_kind, background_period, _colour_pair(rng, 0.2, 0.85, (0.55, 0.85)))
    return Identity(tuple(shapes), lengths, widths, textures, background)


def _smooth_signal(rng: np.random.Generator, seconds: np.ndarray, amplitude: np.ndarray) -> np.ndarray:
    """(T, N) sums of three sinusoids per channel with |signal| <= amplitude (N,) at all times.

    Frequencies 0.1-0.8 Hz give motion that is smooth between frames yet covers the range within a few
    seconds; the weights are normalised so the bound holds exactly, which keeps angles within limits.
    """
    channels = len(amplitude)
    freqs = rng.uniform(0.1, 0.8, (3, channels))
    phases = rng.uniform(0.0, 2.0 * np.pi, (3, channels))
    weights = rng.uniform(0.2, 1.0, (3, channels))
    weights *= amplitude / weights.sum(axis=0)
    waves = np.sin(2.0 * np.pi * freqs[None] * seconds[:, None, None] + phases[None])
    return (weights[None] * waves).sum(axis=1)


def sample_motion(rng: np.random.Generator, frames: int, fps: float) -> Motion:
    """Draw ``frames`` poses of smooth random motion at ``fps``.

    Joint angles swing around the middle of their limits and never leave them; the global transform
    drifts (translation up to 6% of the frame per axis, rotation up to 0.3 rad, scale +-8%) around a
    placement that centres the body, so the puppet stays mostly inside the frame.
    """
    seconds = np.arange(frames) / fps
    low, high = ANGLE_LIMITS[:, 0], ANGLE_LIMITS[:, 1]
    swing = (high - low) / 2.0 * rng.uniform(0.5, 1.0, NUM_ANGLES)
    angles = (low + high) / 2.0 + _smooth_signal(rng, seconds, swing)
    scale0 = rng.uniform(0.27, 0.34)
    scale = scale0 * (1.0 + _smooth_signal(rng, seconds, np.array([0.08]))[:, 0])
    rotation = _smooth_signal(rng, seconds, np.array([rng.uniform(0.05, 0.3)]))[:, 0]
    base = np.array([0.5 + rng.uniform(-0.04, 0.04), 0.5 - _BODY_CENTRE_OFFSET * scale0])
    center = base + _smooth_signal(rng, seconds, np.array([0.06, 0.06]))
    return Motion(angles, center, rotation, scale, float(fps))


def relative_motion(source: Pose, driving: Motion) -> Motion:
    """The source puppet performing ``driving`` in relative form (the target of ``animate run --relative``).

    Frame ``t``: angles = source angles + (driving angles[t] - driving angles[0]); centre = source centre +
    (driving centre[t] - driving centre[0]); rotation likewise; scale = source scale * driving scale[t] /
    driving scale[0]. Frame 0 is therefore exactly ``source``. Angles are not clipped to the joint limits:
    the target must follow the formula exactly.
    """
    return Motion(
        angles=source.angles[None] + (driving.angles - driving.angles[0]),
        center=source.center[None] + (driving.center - driving.center[0]),
        rotation=source.rotation + (driving.rotation - driving.rotation[0]),
        scale=source.scale * (driving.scale / driving.scale[0]),
        fps=driving.fps,
    )


# ---------------------------------------------------------------------------------------------- kinematics


def _rotation(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _translation(x: float, y: float) -> np.ndarray:
    return np.array([[1.0, 0.0, x], [0.0, 1.0, y], [0.0, 0.0, 1.0]])


def _attachments(identity: Identity) -> np.ndarray:
    """(P, 2) where each part's origin sits in its parent's local frame (torso row unused)."""
    half_w, half_h = identity.widths[TORSO] / 2.0, identity.lengths[TORSO] / 2.0
    arm, leg = identity.widths[2], identity.widths[6]
    shoulder = (half_w - 0.5 * arm, -half_h + 0.5 * arm)
    hip = (half_w - 0.6 * leg, half_h - 0.3 * leg)
    return np.array(
        [
            (0.0, 0.0),
            (0.0, -half_h),
            (-shoulder[0], shoulder[1]),
            (0.0, identity.lengths[2]),
            (shoulder[0], shoulder[1]),
            (0.0, identity.lengths[4]),
            (-hip[0], hip[1]),
            (0.0, identity.lengths[6]),
            (hip[0], hip[1]),
            (0.0, identity.lengths[8]),
        ]
    )


def _shape_box(identity: Identity, part: int) -> tuple[float, float, float, float]:
    """``(cx, cy, hx, hy)``: the part's shape centre and half extents in its local frame.

    Limbs reach half their width past both joints, so consecutive segments overlap around the joint.
    """
    length, width = identity.lengths[part], identity.widths[part]
    if part == TORSO:
        return 0.0, 0.0, width / 2.0, length / 2.0
    if part == HEAD:
        return 0.0, _HEAD_CENTRE * length, width / 2.0, length / 2.0
    return 0.0, length / 2.0, width / 2.0, (length + width) / 2.0


def part_affines(identity: Identity, pose: Pose, size: int) -> np.ndarray:
    """(P, 2, 3) float64: each part's transform from part-local canonical units to image pixels."""
    global_transform = (
        _translation(*(pose.center * size)) @ _rotation(pose.rotation) @ np.diag([pose.scale * size] * 2 + [1.0])
    )
    attachments = _attachments(identity)
    world = np.empty((NUM_PARTS, 3, 3))
    world[TORSO] = global_transform
    for part in range(1, NUM_PARTS):
        world[part] = world[PARENTS[part]] @ _translation(*attachments[part]) @ _rotation(pose.angles[part - 1])
    return world[:, :2, :]


def joint_anchors(identity: Identity) -> tuple[np.ndarray, np.ndarray]:
    """Each joint's owning part and its canonical point: ``(parts (J,) int, points (J, 2))``.

    A joint shared by two parts (an elbow) is owned by the distal part, where it is the origin; the
    proximal part maps its own end point ``(0, length)`` to the same pixel.
    """
    lengths = identity.lengths
    table = (
        (HEAD, (0.0, _HEAD_TOP * lengths[HEAD])),
        (HEAD, (0.0, 0.0)),
        (2, (0.0, 0.0)),
        (3, (0.0, 0.0)),
        (3, (0.0, lengths[3])),
        (4, (0.0, 0.0)),
        (5, (0.0, 0.0)),
        (5, (0.0, lengths[5])),
        (TORSO, (0.0, lengths[TORSO] / 2.0)),
        (6, (0.0, 0.0)),
        (7, (0.0, 0.0)),
        (7, (0.0, lengths[7])),
        (8, (0.0, 0.0)),
        (9, (0.0, 0.0)),
        (9, (0.0, lengths[9])),
    )
    parts = np.array([part for part, _ in table], dtype=np.int64)
    points = np.array([point for _, point in table], dtype=np.float64)
    return parts, points


def joint_positions(identity: Identity, affines: np.ndarray) -> np.ndarray:
    """(J, 2) joint pixel coordinates ``(x, y)`` from the parts' affines (P, 2, 3)."""
    parts, points = joint_anchors(identity)
    matrices = affines[parts]
    return np.einsum("jab,jb->ja", matrices[:, :, :2], points) + matrices[:, :, 2]


# ----------------------------------------------------------------------------------------------- rendering


def _signed_distance(shape: str, u: np.ndarray, v: np.ndarray, hx: float, hy: float) -> np.ndarray:
    """Signed distance (negative inside) from centred local coordinates to the shape's outline."""
    if shape == "ellipse":
        # Quilez's first-order approximation: exact on the outline, which is all the 1-px ramp needs.
        k0 = np.sqrt((u / hx) ** 2 + (v / hy) ** 2)
        k1 = np.sqrt((u / hx**2) ** 2 + (v / hy**2) ** 2)
        ratio = np.divide(k0, k1, out=np.full_like(k0, min(hx, hy)), where=k1 > 0)
        return (k0 - 1.0) * ratio
    if shape == "rounded_rect":
        radius = _CORNER * min(hx, hy)
        qx = np.abs(u) - (hx - radius)
        qy = np.abs(v) - (hy - radius)
        outside = np.sqrt(np.maximum(qx, 0.0) ** 2 + np.maximum(qy, 0.0) ** 2)
        return outside + np.minimum(np.maximum(qx, qy), 0.0) - radius
    if shape == "capsule":
        # a vertical segment of half length hy - hx, thickened by radius hx
        qy = np.maximum(np.abs(v) - max(hy - hx, 0.0), 0.0)
        return np.sqrt(u**2 + qy**2) - hx
    raise ValueError(f"unknown shape {shape!r}")


def _texture_colour(texture: Texture, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(..., 3) float32 colour of ``texture`` at coordinates ``u``, ``v`` (same shape)."""
    waves = texture.waves.astype(np.float32)
    sines = [np.sin(kx * u + ky * v + phase) for kx, ky, phase, _ in waves]
    if texture.kind == "stripes":
        pattern = 0.5 + 0.5 * sines[0]
    elif texture.kind in _SHARPNESS:
        sharpness = _SHARPNESS[texture.kind]
        pattern = 0.5 + 0.5 / np.tanh(sharpness) * np.tanh(sharpness * sines[0] * sines[1])
    elif texture.kind == "noise":
        amplitudes = waves[:, 3]
        pattern = 0.5 + 0.5 / amplitudes.sum() * sum(a * s for a, s in zip(amplitudes, sines))
    else:
        raise ValueError(f"unknown texture kind {texture.kind!r}")
    colours = texture.colours.astype(np.float32)
    return colours[0] + pattern[..., None] * (colours[1] - colours[0])


def background_image(identity: Identity, size: int) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1]: the static background (computed once per clip)."""
    coords = np.arange(size, dtype=np.float32) / size
    return _texture_colour(identity.background, coords[None, :], coords[:, None])


def composite(
    identity: Identity, affines: np.ndarray, size: int, background: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Render the parts posed by ``affines`` (P, 2, 3) over the background.

    Inverse mapping: every pixel centre inside a part's bounding box is mapped to part-local coordinates,
    where the shape's signed distance (scaled to pixels) gives an anti-aliased coverage with a 1-px ramp and
    the texture is sampled, so textures move rigidly with their parts.

    Args:
        background: (H, W, 3) float32 from :func:`background_image`; computed when omitted.

    Returns:
        image (H, W, 3) uint8 and labels (H, W) uint8: part index + 1 of the topmost part with coverage
        >= 0.5 (inside the outline), 0 for background.
    """
    image = (background_image(identity, size) if background is None else background).copy()
    labels = np.zeros((size, size), dtype=np.uint8)
    for part in DEPTH_ORDER:
        matrix = np.vstack([affines[part], (0.0, 0.0, 1.0)])
        cx, cy, hx, hy = _shape_box(identity, part)
        corners = np.array([[cx - hx, cx + hx, cx - hx, cx + hx], [cy - hy, cy - hy, cy + hy, cy + hy], [1.0] * 4])
        pixels = (matrix @ corners)[:2]
        # one pixel of margin for the anti-aliasing ramp outside the outline
        x0, y0 = np.maximum(np.floor(pixels.min(axis=1)).astype(int) - 1, 0)
        x1, y1 = np.minimum(np.ceil(pixels.max(axis=1)).astype(int) + 2, size)
        if x0 >= x1 or y0 >= y1:
            continue
        inverse = np.linalg.inv(matrix).astype(np.float32)
        xs = np.arange(x0, x1, dtype=np.float32)[None, :]
        ys = np.arange(y0, y1, dtype=np.float32)[:, None]
        u = inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2]
        v = inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]
        pixels_per_unit = np.sqrt(abs(np.linalg.det(matrix[:2, :2])))
        distance = _signed_distance(identity.shapes[part], u - cx, v - cy, hx, hy) * pixels_per_unit
        coverage = np.clip(0.5 - distance, 0.0, 1.0)
        region = image[y0:y1, x0:x1]
        region += coverage[..., None] * (_texture_colour(identity.textures[part], u, v) - region)
        labels[y0:y1, x0:x1][coverage >= 0.5] = part + 1
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8), labels


def render(identity: Identity, pose: Pose, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Render one frame: image (H, W, 3) uint8 and labels (H, W) uint8 (see :func:`composite`)."""
    return composite(identity, part_affines(identity, pose, size), size)


def render_clip(identity: Identity, motion: Motion, size: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Render every frame of ``motion`` and collect the ground truth.

    Returns:
        frames (T, H, W, 3) uint8 and a dict of arrays (the ``.npz`` content): ``affines`` (T, P, 2, 3)
        float64 part-local -> pixel; ``joints`` (T, J, 2) float64 pixel ``(x, y)``; ``labels`` (T, H, W)
        uint8; the motion ``angles`` (T, A), ``center`` (T, 2), ``rotation`` (T,), ``scale`` (T,);
        ``size`` and ``fps`` scalars; ``identity`` (a JSON string, see :meth:`Identity.to_json`);
        ``part_names``, ``joint_names``, ``angle_names``.
    """
    frames = len(motion)
    background = background_image(identity, size)
    images = np.empty((frames, size, size, 3), dtype=np.uint8)
    labels = np.empty((frames, size, size), dtype=np.uint8)
    affines = np.empty((frames, NUM_PARTS, 2, 3))
    joints = np.empty((frames, NUM_JOINTS, 2))
    for t in range(frames):
        affines[t] = part_affines(identity, motion.pose(t), size)
        joints[t] = joint_positions(identity, affines[t])
        images[t], labels[t] = composite(identity, affines[t], size, background)
    truth = {
        "affines": affines,
        "joints": joints,
        "labels": labels,
        "angles": motion.angles,
        "center": motion.center,
        "rotation": motion.rotation,
        "scale": motion.scale,
        "size": np.int64(size),
        "fps": np.float64(motion.fps),
        "identity": np.str_(identity.to_json()),
        "part_names": np.array(PART_NAMES),
        "joint_names": np.array(JOINT_NAMES),
        "angle_names": np.array(ANGLE_NAMES),
    }
    return images, truth


def motion_from_truth(gt: Mapping[str, np.ndarray]) -> Motion:
    """The :class:`Motion` stored in a clip's ground truth (``render_clip``'s dict or its loaded ``.npz``)."""
    return Motion(
        np.asarray(gt["angles"]),
        np.asarray(gt["center"]),
        np.asarray(gt["rotation"]),
        np.asarray(gt["scale"]),
        float(gt["fps"]),
    )


# -------------------------------------------------------------------------------------------- ground truth


def part_motion_maps(affines_from: np.ndarray, affines_to: np.ndarray) -> np.ndarray:
    """Per label, the exact 2x3 map from a pixel of one frame to the same surface point in another.

    affines_from, affines_to: (P, 2, 3) part-local -> pixel in frame ``t_from`` and frame ``t_to``. Returns
    (P + 1, 2, 3) indexed by label: row 0 is the background, which stays put; row ``k + 1`` is
    ``A_from[k] @ inverse(A_to[k])``, taking a pixel of ``t_to`` showing part ``k`` to its pixel in ``t_from``.
    """
    bottom = np.array([0.0, 0.0, 1.0])
    maps = np.zeros((len(affines_to) + 1, 2, 3))
    maps[0, :, :2] = np.eye(2)
    for part, (a_from, a_to) in enumerate(zip(affines_from, affines_to), start=1):
        maps[part] = (np.vstack([a_from, bottom]) @ np.linalg.inv(np.vstack([a_to, bottom])))[:2]
    return maps


def ground_truth_flow(gt: Mapping[str, np.ndarray], t_from: int, t_to: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact backward optical flow from frame ``t_to`` to frame ``t_from``.

    For each pixel ``p = (x, y)`` of frame ``t_to`` (pixel centres at integer coordinates) that shows part
    ``k`` (``labels[t_to] = k + 1``), the same surface point was at ``p_from = A_from[k] @ inverse(A_to[k])
    @ p`` in frame ``t_from``, and ``flow[y, x] = p_from - p`` as ``(dx, dy)`` in pixels. So
    ``frame_to[y, x] ~= frame_from sampled bilinearly at (x + dx, y + dy)``, e.g. ``grid_sample`` with
    ``align_corners=True`` on the grid ``2 * (p + flow) / (size - 1) - 1``. Occlusion is not considered: the
    point may be hidden by another part in ``t_from``.

    Args:
        gt: a clip's ground truth with ``affines`` (T, P, 2, 3) and ``labels`` (T, H, W): the dict from
            :func:`render_clip` or a loaded ``.npz`` (``dict(np.load(path))`` decompresses the labels once
            instead of on every call).

    Returns:
        flow (H, W, 2) float32, zero off the subject, and valid (H, W) bool: pixels on the subject in
        ``t_to`` (label > 0).
    """
    labels = np.asarray(gt["labels"][t_to])
    affines = np.asarray(gt["affines"])
    height, width = labels.shape
    x = np.arange(width, dtype=np.float64)[None, :]
    y = np.arange(height, dtype=np.float64)[:, None]
    m = part_motion_maps(affines[t_from], affines[t_to])[labels]
    flow = np.stack(
        [
            m[..., 0, 0] * x + m[..., 0, 1] * y + m[..., 0, 2] - x,
            m[..., 1, 0] * x + m[..., 1, 1] * y + m[..., 1, 2] - y,
        ],
        axis=-1,
    )
    return flow.astype(np.float32), labels > 0


def flow_visibility(gt: Mapping[str, np.ndarray], flow: np.ndarray, t_from: int, t_to: int) -> np.ndarray:
    """(H, W) bool: pixels of frame ``t_to`` on the subject whose surface point is also visible in ``t_from``.

    Visible means the nearest pixel to ``p + flow(p)`` lies in the frame and shows the same part in
    ``t_from``; this removes points that were occluded or outside the frame, where warping cannot match.
    """
    labels_to = np.asarray(gt["labels"][t_to])
    labels_from = np.asarray(gt["labels"][t_from])
    height, width = labels_to.shape
    x = np.rint(np.arange(width)[None, :] + flow[..., 0]).astype(np.int64)
    y = np.rint(np.arange(height)[:, None] + flow[..., 1]).astype(np.int64)
    inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    seen = labels_from[np.clip(y, 0, height - 1), np.clip(x, 0, width - 1)]
    return (labels_to > 0) & inside & (seen == labels_to)
