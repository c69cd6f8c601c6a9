"""Image classification data for supernet training: small sources behind one tiny interface.

Nothing here downloads: every source reads what is already on disk (scikit-learn ships the digits
and two photographs inside its package, matplotlib one more). Transforms are deterministic
(resize, crop, normalise): torchvision's random augmentations draw from torch's global random
state, which would make a resumed run differ from an uninterrupted one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from nas.errors import MissingFileError

#: Per-channel statistics used to normalise natural images (ImageNet's, the torchvision default).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: CIFAR's training-set statistics, as commonly used (NAS-Bench-201's code uses these).
CIFAR_STATS = {
    10: ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    100: ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


class ImageDataset(ABC):
    """A source of (train, val) datasets of ``(image, label)`` with one fixed input shape.

    Constructing a source is cheap and touches no file; :meth:`splits` reads the data.
    """

    #: Number of classes; labels are 0..num_classes-1.
    num_classes: int
    #: (channels, height, width) of every image.
    input_shape: tuple[int, int, int]

    @abstractmethod
    def splits(self) -> tuple[Dataset, Dataset]:
        """The training and validation datasets."""


@dataclass(frozen=True)
class SklearnDigits(ImageDataset):
    """scikit-learn's 1,797 real 8x8 handwritten digits, upsampled to ``image_size``.

    Small enough to train a supernet in minutes on a laptop CPU, and real images, so inherited
    accuracies mean something. The split is a seeded permutation; the images are normalised with
    the training split's mean and standard deviation.
    """

    image_size: int = 32
    channels: int = 3
    val_fraction: float = 0.2
    seed: int = 0

    num_classes = 10

    def __post_init__(self) -> None:
        if self.image_size < 1 or self.channels < 1 or not 0 < self.val_fraction < 1:
            raise ValueError(
                f"SklearnDigits needs image_size >= 1, channels >= 1 and 0 < val_fraction < 1, got "
                f"{self.image_size}, {self.channels}, {self.val_fraction}"
            )

    @property
    def input_shape(self) -> tuple[int, int, int]:  # type: ignore[override]
        return (self.channels, self.image_size, self.image_size)

    def splits(self) -> tuple[Dataset, Dataset]:
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
        labels = torch.as_tensor(digits.target, dtype=torch.int64)
        images = torch.nn.functional.interpolate(
            images, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False
        ).expand(-1, self.channels, -1, -1)
        order = torch.as_tensor(np.random.default_rng(self.seed).permutation(len(labels)))
        n_val = round(len(labels) * self.val_fraction)
        val, train = order[:n_val], order[n_val:]
        mean, std = images[train].mean(), images[train].std()
        images = ((images - mean) / std).contiguous()
        return TensorDataset(images[train], labels[train]), TensorDataset(images[val], labels[val])


@dataclass(frozen=True)
class PackagedImages(ImageDataset):
    """Crops of the real photographs that ship inside installed packages, at ``image_size``.

    The sources are scikit-learn's two sample photographs (``china.jpg``, ``flower.jpg``, 427x640)
    and matplotlib's ``grace_hopper.jpg`` (600x512): nothing is downloaded, and every machine with
    hwnas installed has them. ``count`` square crops are cut at seeded positions, each with a
    side drawn between an eighth and a half of the photograph's shorter side, and resized
    (antialiased) to ``image_size``, so they look like small natural images (textures, edges,
    objects) rather than noise. They have no classes: labels are drawn uniformly from
    ``num_classes`` by the same seed, which is what label-dependent proxies see. Normalised per
    channel with the crops' own statistics.
    """

    image_size: int = 32
    count: int = 1024
    num_classes: int = 10
    val_fraction: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.image_size < 1 or self.count < 2 or self.num_classes < 1 or not 0 < self.val_fraction < 1:
            raise ValueError(
                f"PackagedImages needs image_size >= 1, count >= 2, num_classes >= 1 and 0 < val_fraction < 1, "
                f"got {self.image_size}, {self.count}, {self.num_classes}, {self.val_fraction}"
            )

    @property
    def input_shape(self) -> tuple[int, int, int]:  # type: ignore[override]
        return (3, self.image_size, self.image_size)

    def splits(self) -> tuple[Dataset, Dataset]:
        from torchvision.transforms.v2 import functional as F

        photos = _packaged_photographs()
        rng = np.random.default_rng(self.seed)
        crops = []
        for _ in range(self.count):
            photo = photos[rng.integers(len(photos))]
            height, width = photo.shape[1:]
            side = int(rng.integers(min(height, width) // 8, min(height, width) // 2 + 1))
            top, left = int(rng.integers(height - side + 1)), int(rng.integers(width - side + 1))
            crops.append(F.resized_crop(photo, top, left, side, side, [self.image_size] * 2, antialias=True))
        images = torch.stack(crops)
        mean = images.mean(dim=(0, 2, 3), keepdim=True)
        std = images.std(dim=(0, 2, 3), keepdim=True)
        images = ((images - mean) / std).contiguous()
        labels = torch.as_tensor(rng.integers(self.num_classes, size=self.count), dtype=torch.int64)
        return _first_rows_for_validation(images, labels, self.val_fraction)


@dataclass(frozen=True)
class GaussianImages(ImageDataset):
    """``count`` images of independent standard-normal pixels, labels uniform over ``num_classes``
    (one by default: noise has no classes, so every label is 0).

    No data at all, deliberately: AZ-NAS and VKDNW score NB201 networks on a batch of Gaussian
    noise (``torch.randn`` in their reference code), so a proxy defined that way is reproduced
    with this source. Seeded by ``seed`` through numpy, so equal settings give equal images on
    every machine. At another input size :class:`nas.proxies.ProxyData` resizes them, as any
    source, which smooths them: give ``image_size`` the network's where it differs from 32.
    """

    image_size: int = 32
    channels: int = 3
    count: int = 1024
    num_classes: int = 1
    val_fraction: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.image_size, self.channels, self.num_classes) < 1 or self.count < 2:
            raise ValueError(
                f"GaussianImages needs image_size, channels, num_classes >= 1 and count >= 2, got "
                f"{self.image_size}, {self.channels}, {self.num_classes}, {self.count}"
            )
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"GaussianImages(val_fraction={self.val_fraction}): give a share in (0, 1)")

    @property
    def input_shape(self) -> tuple[int, int, int]:  # type: ignore[override]
        return (self.channels, self.image_size, self.image_size)

    def splits(self) -> tuple[Dataset, Dataset]:
        rng = np.random.default_rng(self.seed)
        images = torch.as_tensor(rng.standard_normal((self.count, *self.input_shape), dtype=np.float32))
        labels = torch.as_tensor(rng.integers(self.num_classes, size=self.count), dtype=torch.int64)
        return _first_rows_for_validation(images, labels, self.val_fraction)


def _first_rows_for_validation(
    images: torch.Tensor, labels: torch.Tensor, val_fraction: float
) -> tuple[TensorDataset, TensorDataset]:
    """(train, val): the first ``val_fraction`` of rows validate (the rows are already in seeded
    random order), the rest train."""
    n_val = round(len(labels) * val_fraction)
    return TensorDataset(images[n_val:], labels[n_val:]), TensorDataset(images[:n_val], labels[:n_val])


def _packaged_photographs() -> list[torch.Tensor]:
    """The shipped photographs as float tensors (3, H, W) in [0, 1]."""
    from matplotlib import cbook
    from PIL import Image
    from sklearn.datasets import load_sample_images

    arrays = list(load_sample_images().images)
    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        arrays.append(np.asarray(Image.open(handle).convert("RGB")))
    return [torch.as_tensor(np.array(a), dtype=torch.float32).permute(2, 0, 1) / 255.0 for a in arrays]


@dataclass(frozen=True)
class ImageFolderData(ImageDataset):
    """Images in class folders (torchvision's ImageFolder): ``root/train`` and ``root/val`` when
    both exist, otherwise ``root`` itself split by a seeded permutation.

    Images are resized (shorter side) and centre-cropped to ``image_size``, then normalised with
    ImageNet's statistics.
    """

    root: str
    image_size: int = 224
    val_fraction: float = 0.2
    seed: int = 0

    @property
    def input_shape(self) -> tuple[int, int, int]:  # type: ignore[override]
        return (3, self.image_size, self.image_size)

    @property
    def num_classes(self) -> int:  # type: ignore[override]
        return len(_class_folders(self._train_root()))

    def _train_root(self) -> Path:
        root = Path(self.root).expanduser()
        if not root.is_dir():
            raise MissingFileError(f"image folder {root} does not exist (expected root/<class>/<image>)")
        split = root / "train"
        return split if split.is_dir() and (root / "val").is_dir() else root

    def splits(self) -> tuple[Dataset, Dataset]:
        from torchvision.datasets import ImageFolder

        train_root = self._train_root()
        if not _class_folders(train_root):
            raise MissingFileError(f"image folder {train_root} has no class folders")
        transform = _transform(self.image_size, IMAGENET_MEAN, IMAGENET_STD, resize=True)
        if train_root != Path(self.root).expanduser():
            return ImageFolder(str(train_root), transform), ImageFolder(str(train_root.parent / "val"), transform)
        everything = ImageFolder(str(train_root), transform)
        order = np.random.default_rng(self.seed).permutation(len(everything)).tolist()
        n_val = max(1, round(len(order) * self.val_fraction))
        return Subset(everything, order[n_val:]), Subset(everything, order[:n_val])


@dataclass(frozen=True)
class CIFARData(ImageDataset):
    """CIFAR-10 or CIFAR-100 in the original python format under ``root`` (never downloaded):
    ``root/cifar-10-batches-py`` or ``root/cifar-100-python``. The validation split is the test set.
    """

    root: str
    which: int = 10
    image_size: int = 32

    def __post_init__(self) -> None:
        if self.which not in CIFAR_STATS:
            raise ValueError(f"CIFARData(which={self.which}): which must be 10 or 100")

    @property
    def num_classes(self) -> int:  # type: ignore[override]
        return self.which

    @property
    def input_shape(self) -> tuple[int, int, int]:  # type: ignore[override]
        return (3, self.image_size, self.image_size)

    def splits(self) -> tuple[Dataset, Dataset]:
        from torchvision.datasets import CIFAR10, CIFAR100

        dataset = CIFAR10 if self.which == 10 else CIFAR100
        folder = Path(self.root).expanduser() / dataset.base_folder
        if not folder.is_dir():
            raise MissingFileError(
                f"CIFAR-{self.which} not found: expected the python-format folder {folder} "
                f"(extract cifar-{self.which}-python.tar.gz into {folder.parent}); nothing is downloaded"
            )
        mean, std = CIFAR_STATS[self.which]
        transform = _transform(self.image_size, mean, std, resize=self.image_size != 32)
        return (
            dataset(str(folder.parent), train=True, transform=transform, download=False),
            dataset(str(folder.parent), train=False, transform=transform, download=False),
        )


def _class_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def _transform(size: int, mean: tuple[float, ...], std: tuple[float, ...], resize: bool):  # noqa: ANN202
    from torchvision import transforms

    steps = [transforms.Resize(size), transforms.CenterCrop(size)] if resize else []
    return transforms.Compose([*steps, transforms.ToTensor(), transforms.Normalize(mean, std)])
