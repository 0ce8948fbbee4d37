"""Face landmarks and face boxes from the optional face-alignment package (the ``face`` extra).

face-alignment is not a dependency: everything here imports it on first use and turns its absence, and the
absence of its weights, into one line telling the user what to do. Its weights are two files it downloads on
first use into torch hub's cache. Where they come from (face-alignment >= 1.4, read from its source):
``face_alignment/detection/sfd/sfd_detector.py`` loads ``models_urls['s3fd']`` = ``.../s3fd-619a316812.pth`` with
``torch.hub.load_state_dict_from_url``, and ``face_alignment/api.py`` loads ``default_model_urls['2DFAN-4']`` =
``.../2DFAN4-cd938726ad.zip`` (a TorchScript archive; torch 1.5 and 1.6 get other builds) with its
``load_file_from_url``; both keep the file under its URL's name in ``torch.hub.get_dir()/checkpoints``
(``~/.cache/torch/hub/checkpoints`` unless ``$TORCH_HOME`` or ``$XDG_CACHE_HOME`` say otherwise).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from urllib.parse import urlparse

import numpy as np

from animate_cli.errors import BadInputError

#: The weight files of face-alignment 1.4+ on torch >= 1.7, used when the installed package does not say.
DEFAULT_WEIGHT_FILES = ("s3fd-619a316812.pth", "2DFAN4-cd938726ad.zip")
#: Frames are shrunk to this longer side for face detection (as the published crop-video.py does): s3fd
#: finds faces as well at that size and runs many times faster on HD video.
DETECTION_SIDE = 640


def face_alignment_available() -> bool:
    """Whether the ``face`` extra is installed (without importing it: it pulls in heavy dependencies)."""
    return importlib.util.find_spec("face_alignment") is not None


def require_face_alignment(feature: str) -> ModuleType:
    """The face_alignment module, or a BadInputError naming ``feature`` (the option that needs it)."""
    try:
        return importlib.import_module("face_alignment")
    except ImportError:
        raise BadInputError(f"{feature} needs the optional extra: pip install 'animate-cli[face]'") from None


def default_weights_folder() -> Path:
    """Where face-alignment looks for (and downloads) its weights: torch hub's checkpoint cache."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def weight_file_names() -> list[str]:
    """File names of the detector and landmark weights the installed face-alignment will load.

    Read from the package's own URL tables when it has them (so a newer release that renames its files is
    followed), else :data:`DEFAULT_WEIGHT_FILES`.
    """
    try:
        import torch

        sfd = importlib.import_module("face_alignment.detection.sfd.sfd_detector")
        api = importlib.import_module("face_alignment.api")
        # face-alignment picks the landmark network's build by "major.minor" of torch, default otherwise
        torch_version = ".".join(torch.__version__.split("+")[0].split(".")[:2])
        fan_url = api.models_urls.get(torch_version, api.default_model_urls)["2DFAN-4"]
        urls = [sfd.models_urls["s3fd"], fan_url]
    except (ImportError, AttributeError, KeyError, TypeError):
        return list(DEFAULT_WEIGHT_FILES)
    return [os.path.basename(urlparse(url).path) for url in urls]


def missing_weights_message(missing: list[str], folder: Path) -> str:
    """The one-line error for weights that are neither in ``folder`` nor downloadable."""
    return (
        f"face-alignment's weights are missing and could not be downloaded: put {' and '.join(missing)} "
        f"in {folder} (or in a folder passed with --landmarks-weights DIR)"
    )


@contextlib.contextmanager
def _hub_folder(weights_dir: Path | None) -> Iterator[None]:
    """Make torch hub read its checkpoints from ``weights_dir`` while face-alignment loads (None: no change).

    face-alignment has no option for its landmark network's file, only torch hub's cache, whose checkpoints
    live in ``<hub dir>/checkpoints``: a temporary hub dir whose ``checkpoints`` links to ``weights_dir`` does it.
    """
    if weights_dir is None:
        yield
        return
    import torch.hub

    previous = torch.hub.get_dir()
    with tempfile.TemporaryDirectory(prefix="animate-hub-") as hub:
        os.symlink(weights_dir.resolve(), Path(hub) / "checkpoints", target_is_directory=True)
        torch.hub.set_dir(hub)
        try:
            yield
        finally:
            torch.hub.set_dir(previous)


class FaceAnalyzer:
    """face-alignment's s3fd face detector and 2D-FAN landmark network, loaded once.

    Raises BadInputError (one line) when the extra is missing (naming ``feature``, the option that asked for
    it), or when its weights are missing and cannot be downloaded.
    """

    def __init__(self, device: str, weights_dir: Path | None, feature: str):
        module = require_face_alignment(feature)
        # face-alignment 1.5 renamed LandmarksType._2D to TWO_D (FACTS §7)
        kind = module.LandmarksType
        landmarks_type = kind.TWO_D if hasattr(kind, "TWO_D") else kind._2D
        folder = weights_dir if weights_dir is not None else default_weights_folder()
        missing = [name for name in weight_file_names() if not (folder / name).is_file()]
        if weights_dir is not None and missing:
            raise BadInputError(missing_weights_message(missing, folder))
        try:
            with _hub_folder(weights_dir):
                self._model = module.FaceAlignment(landmarks_type, device=device, flip_input=True)
        except Exception as error:  # noqa: BLE001 - a failed download shows up as any of URLError, OSError, ...
            if missing:
                raise BadInputError(missing_weights_message(missing, folder)) from error
            raise

    def landmarks(self, image: np.ndarray) -> np.ndarray | None:
        """The 68 (x, y) landmarks of the first face found in an (H, W, 3) uint8 RGB image, or None."""
        faces = self._model.get_landmarks(image)
        if not faces:
            return None
        return np.asarray(faces[0], dtype=np.float64)[:, :2]

    def face_boxes(self, image: np.ndarray) -> list[tuple[float, float, float, float]]:
        """(x0, y0, x1, y1) pixel boxes of the faces in an (H, W, 3) uint8 RGB image."""
        from animate_cli.media.resize import resize_frame

        height, width = image.shape[:2]
        scale = min(1.0, DETECTION_SIDE / max(height, width))
        small = image if scale == 1.0 else resize_frame(image, (round(width * scale), round(height * scale)))
        # the detector takes BGR, as the published crop-video.py passes it
        detections = self._model.face_detector.detect_from_image(np.ascontiguousarray(small[..., ::-1]))
        return [tuple(float(v) / scale for v in detection[:4]) for detection in detections]  # type: ignore[misc]
