"""Data sources: real digits with a seeded split, ImageFolder from files, clear errors otherwise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nas.training import CIFARData, GaussianImages, ImageFolderData, PackagedImages, SklearnDigits


def test_digits_are_the_real_images_upsampled_with_a_seeded_split() -> None:
    data = SklearnDigits(image_size=16)
    train, val = data.splits()
    assert data.num_classes == 10 and data.input_shape == (3, 16, 16)
    assert len(train) + len(val) == 1797 and len(val) == 359
    images, labels = train.tensors
    assert images.shape == (1438, 3, 16, 16) and images.dtype == torch.float32
    assert set(labels.tolist()) == set(range(10)) and set(val.tensors[1].tolist()) == set(range(10))
    assert torch.equal(images[:, 0], images[:, 2])  # grey replicated to three channels
    assert abs(images.mean().item()) < 1e-4 and images.std().item() == pytest.approx(1.0, abs=1e-3)
    again, other = SklearnDigits(image_size=16).splits(), SklearnDigits(image_size=16, seed=1).splits()
    assert torch.equal(again[1].tensors[0], val.tensors[0])
    assert not torch.equal(other[1].tensors[0], val.tensors[0])


def test_digits_at_native_size_are_scikit_learns_pixels() -> None:
    from sklearn.datasets import load_digits

    raw = load_digits().images.reshape(1797, -1).astype(int)
    train, val = SklearnDigits(image_size=8, channels=1).splits()
    images = torch.cat([train.tensors[0], val.tensors[0]]).reshape(1797, -1).double().numpy()
    # Undo the affine normalisation from the pixel range (0 and 16 both occur in the data).
    restored = (images - images.min()) * 16.0 / (images.max() - images.min())
    levels = np.rint(restored).astype(int)
    assert np.abs(restored - levels).max() < 1e-4
    assert np.array_equal(levels[np.lexsort(levels.T)], raw[np.lexsort(raw.T)])


def test_cifar_missing_folder_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "cifar-10-batches-py")):
        CIFARData(root=str(tmp_path), which=10).splits()
    with pytest.raises(FileNotFoundError, match="cifar-100-python"):
        CIFARData(root=str(tmp_path), which=100).splits()
    with pytest.raises(ValueError, match="10 or 100"):
        CIFARData(root=str(tmp_path), which=20)


def test_image_folder_missing_root_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        ImageFolderData(root=str(missing)).splits()


def write_pngs(folder: Path, classes: int, per_class: int, seed: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for label in range(classes):
        (folder / f"class_{label}").mkdir(parents=True)
        for index in range(per_class):
            pixels = rng.integers(0, 256, size=(20, 24, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"class_{label}" / f"{index}.png")


def test_image_folder_reads_pngs_and_splits_by_seed(tmp_path: Path) -> None:
    write_pngs(tmp_path, classes=3, per_class=5, seed=0)
    data = ImageFolderData(root=str(tmp_path), image_size=16, val_fraction=0.2)
    assert data.num_classes == 3 and data.input_shape == (3, 16, 16)
    train, val = data.splits()
    assert (len(train), len(val)) == (12, 3)
    image, label = train[0]
    assert image.shape == (3, 16, 16) and 0 <= label < 3
    assert ImageFolderData(root=str(tmp_path), image_size=16).splits()[1].indices == val.indices


def test_image_folder_uses_train_and_val_subfolders(tmp_path: Path) -> None:
    write_pngs(tmp_path / "train", classes=2, per_class=3, seed=1)
    write_pngs(tmp_path / "val", classes=2, per_class=2, seed=2)
    train, val = ImageFolderData(root=str(tmp_path), image_size=8).splits()
    assert (len(train), len(val)) == (6, 4)
    assert val[0][0].shape == (3, 8, 8)


def test_packaged_images_are_crops_of_the_shipped_photographs_drawn_by_seed() -> None:
    from matplotlib import cbook
    from PIL import Image
    from sklearn.datasets import load_sample_images

    data = PackagedImages(image_size=16, count=40, num_classes=5, seed=1)
    train, val = data.splits()
    assert (len(train), len(val)) == (32, 8) and data.input_shape == (3, 16, 16)
    images = torch.stack([train[i][0] for i in range(len(train))])
    labels = torch.stack([train[i][1] for i in range(len(train))])
    assert images.shape == (32, 3, 16, 16) and set(labels.tolist()) <= set(range(5))
    assert images.std(dim=(1, 2, 3)).min() > 0.05  # natural crops, not flat patches
    again = torch.stack([t[0] for t in PackagedImages(image_size=16, count=40, num_classes=5, seed=1).splits()[0]])
    other = torch.stack([t[0] for t in PackagedImages(image_size=16, count=40, num_classes=5, seed=2).splits()[0]])
    assert torch.equal(images, again) and not torch.equal(images, other)
    # The sources exist where the docstring says (every install of the dependencies has them).
    assert len(load_sample_images().images) == 2
    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        assert Image.open(handle).size == (512, 600)


def test_packaged_images_refuse_bad_settings() -> None:
    with pytest.raises(ValueError, match="count >= 2"):
        PackagedImages(count=1)


def test_gaussian_images_are_standard_normal_drawn_by_seed() -> None:
    data = GaussianImages(image_size=8, channels=1, count=500, num_classes=4, seed=3)
    train, val = data.splits()
    assert (len(train), len(val)) == (400, 100) and data.input_shape == (1, 8, 8)
    images = torch.stack([train[i][0] for i in range(len(train))])
    labels = torch.stack([train[i][1] for i in range(len(train))])
    assert images.shape == (400, 1, 8, 8) and set(labels.tolist()) == set(range(4))
    assert abs(float(images.mean())) < 0.02 and abs(float(images.std()) - 1) < 0.02
    again = GaussianImages(image_size=8, channels=1, count=500, num_classes=4, seed=3).splits()[0][0][0]
    other = GaussianImages(image_size=8, channels=1, count=500, num_classes=4, seed=4).splits()[0][0][0]
    assert torch.equal(images[0], again) and not torch.equal(images[0], other)


def test_gaussian_images_refuse_bad_settings() -> None:
    with pytest.raises(ValueError, match="count >= 2"):
        GaussianImages(count=1)
    with pytest.raises(ValueError, match="val_fraction=1"):
        GaussianImages(val_fraction=1)
