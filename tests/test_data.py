"""Fashion-MNIST offline, the 5-class preset, and image folders with their bad cases (issue 3)."""
import shutil
import warnings

import pytest
import torch
from PIL import Image

import d2l_ext.data as D
from d2l_ext import FashionMNIST, FashionMNIST5, ImageFolderData

@pytest.fixture(scope="module")
def five(offline_fashion_mnist):
    return FashionMNIST5(root="/nonexistent", download=False)


@pytest.mark.usefixtures("offline_fashion_mnist")
def test_fashion_mnist_from_the_debian_copy(tmp_path):
    data = FashionMNIST(batch_size=256, root=tmp_path, download=False)
    assert data.source == str(D.DEBIAN_FASHION_MNIST)
    # d2l's val is the test file; ours holds 500 images a class out of the training file.
    assert (len(data.train), len(data.val), len(data.test)) == (55_000, 5_000, 10_000)
    assert torch.bincount(data.val.labels).tolist() == [500] * 10
    assert torch.bincount(data.test.labels).tolist() == [1000] * 10
    assert data.text_labels(data.test.labels[:3]) == ['ankle boot', 'pullover', 'trouser']
    X, y = next(iter(data.train_dataloader()))
    assert X.shape == (256, 1, 28, 28) and X.dtype == torch.float32
    full = data.train.normalize(data.train.images[:10_000])
    assert abs(full.mean().item()) < 0.02 and abs(full.std().item() - 1) < 0.02


@pytest.mark.usefixtures("offline_fashion_mnist")
def test_torchvision_layout_under_root_comes_first(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for f in D.DEBIAN_FASHION_MNIST.glob("*.gz"):
        shutil.copy(f, raw / f.name)
    data = FashionMNIST(root=tmp_path, resize=32, download=False)
    assert data.source == str(raw)
    assert data.train.images.shape == (55_000, 1, 32, 32)


def test_no_data_anywhere_names_the_three_ways(tmp_path, monkeypatch):
    monkeypatch.setattr(D, "DEBIAN_FASHION_MNIST", tmp_path / "missing")
    import torchvision

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")
    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", offline)
    with pytest.raises(FileNotFoundError) as err:
        FashionMNIST(root=tmp_path)
    message = str(err.value)
    assert "FashionMNIST/raw" in message and "apt-get install dataset-fashion-mnist" in message
    assert "Error downloading" in message


def test_five_class_preset_has_three_disjoint_splits(five):
    assert five.classes == ['t-shirt', 'pullover', 'dress', 'coat', 'shirt']
    assert torch.bincount(five.train.labels).tolist() == [100] * 5
    assert torch.bincount(five.val.labels).tolist() == [200] * 5
    assert torch.bincount(five.test.labels).tolist() == [1000] * 5
    assert five.train.images.shape == (500, 1, 32, 32)
    # train and val come from the training file and share no image; test is the test file.
    flat = lambda imgs: {bytes(x.numpy()) for x in imgs}  # noqa: E731
    assert not flat(five.train.images) & flat(five.val.images)
    assert len(flat(five.val.images)) == 1000
    assert [len(l) for l in (five.train_dataloader(), five.val_dataloader(),
                             five.test_dataloader())] == [8, 16, 79]      # batch 64
    again = FashionMNIST5(root="/nonexistent", download=False)
    other = FashionMNIST5(root="/nonexistent", download=False, seed=1)
    assert torch.equal(again.train.images, five.train.images)
    assert torch.equal(again.val.images, five.val.images)
    assert not torch.equal(other.train.images, five.train.images)
    assert not torch.equal(other.val.images, five.val.images)
    assert torch.equal(other.test.images, five.test.images)


@pytest.mark.usefixtures("offline_fashion_mnist")
def test_split_sizes_that_do_not_fit_are_named():
    with pytest.raises(ValueError, match="class 't-shirt' has 6000 training images: too few "
                                         "for train_per_class=5900 and val_per_class=200"):
        FashionMNIST5(root="/nonexistent", download=False, train_per_class=5900)
    with pytest.raises(ValueError, match="val_per_class must be a positive integer, got 0"):
        FashionMNIST5(root="/nonexistent", download=False, val_per_class=0)


def test_batches_are_seeded_and_augmentation_keeps_shapes(five):
    a = [y for _, y in five.train_dataloader(shuffle_seed=3)]
    b = [y for _, y in five.train_dataloader(shuffle_seed=3)]
    c = [y for _, y in five.train_dataloader(shuffle_seed=4)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
    aug = FashionMNIST5(root="/nonexistent", download=False, augment=True, batch_size=500)
    X, _ = next(iter(aug.train_dataloader()))
    plain = aug.train.normalize(aug.train.images)
    assert X.shape == plain.shape and not torch.equal(X, plain)
    assert aug.val.augment is False
    erase = FashionMNIST5(root="/nonexistent", download=False, augment="crop-flip-erase",
                          batch_size=500)
    X_erase, _ = next(iter(erase.train_dataloader()))
    assert ((X_erase == X) | (X_erase == 0)).all() and not torch.equal(X_erase, X)  # same crops


def test_random_erase_blanks_one_box_in_about_half_the_images():
    g = torch.Generator().manual_seed(0)
    X = torch.ones(4000, 1, 32, 32)
    out = D.random_erase(X, g)
    blanked = (out == 0).flatten(1).sum(1).float() / (32 * 32)
    hit = blanked > 0
    assert 0.47 < hit.float().mean() < 0.53                 # p = 0.5
    assert blanked[hit].min() >= 0.01 and blanked[hit].max() <= 0.45   # area 0.02-0.4, rounded
    assert 0.19 < blanked[hit].mean() < 0.23                # uniform area: mean 0.21
    for img in out[hit][:50, 0]:                            # one axis-aligned rectangle
        rows, cols = (img == 0).any(1), (img == 0).any(0)
        assert (img == 0).sum() == rows.sum() * cols.sum()
    again = D.random_erase(X, torch.Generator().manual_seed(0))
    assert torch.equal(out, again) and torch.equal(X, torch.ones_like(X))   # seeded, no in-place


def test_unknown_augmentation_is_named():
    with pytest.raises(ValueError, match="augment must be one of .*'crop-flip-erase'.*got 'cutout'"):
        D.TensorImages(torch.zeros(2, 1, 16, 16, dtype=torch.uint8), torch.zeros(2),
                       (0.5,), (0.5,), augment="cutout")


def test_bad_resize_and_classes():
    with pytest.raises(ValueError, match="resize must be"):
        FashionMNIST5(resize=8, root="/nonexistent", download=False)
    with pytest.raises(ValueError, match="classes must be"):
        FashionMNIST(classes=["t-shirt", "cat"], root="/nonexistent", download=False)


# --- image folders made from real Fashion-MNIST images -------------------------------------

def write_images(folder, five, per_class=6, size=28, classes=None):
    imgs = five.train.images
    for c, name in enumerate(classes or five.classes):
        (folder / name).mkdir(parents=True, exist_ok=True)
        idx = (five.train.labels == c).nonzero().flatten()[:per_class]
        for k, i in enumerate(idx):
            Image.fromarray(imgs[i, 0].numpy()).resize((size, size)).save(folder / name / f"{k}.png")


def test_image_folder_split_and_names(tmp_path, five):
    write_images(tmp_path, five, per_class=10)
    data = ImageFolderData(tmp_path, resize=32, batch_size=8, seed=0)
    assert data.classes == sorted(five.classes)
    assert (len(data.train), len(data.val)) == (40, 10)
    assert torch.bincount(data.val.labels).tolist() == [2] * 5
    assert data.test is None and data.test_dataloader() is None     # no test/ folder
    X, y = next(iter(data.train_dataloader()))
    assert X.shape == (8, 3, 32, 32)
    gray = ImageFolderData(tmp_path, resize=(16, 24), channels=1)
    assert gray.train.images.shape[1:] == (1, 16, 24)


def test_image_folder_with_train_and_val_folders(tmp_path, five):
    write_images(tmp_path / "train", five, per_class=4)
    write_images(tmp_path / "val", five, per_class=2)
    data = ImageFolderData(tmp_path, resize=16)
    assert (len(data.train), len(data.val)) == (20, 10)
    assert data.split == "train: train/, val: val/ folder, test: none"


def test_image_folder_test_folder_is_the_test_set(tmp_path, five):
    write_images(tmp_path / "train", five, per_class=10)
    write_images(tmp_path / "test", five, per_class=3)
    data = ImageFolderData(tmp_path, resize=16, val_fraction=0.2)
    assert (len(data.train), len(data.val), len(data.test)) == (40, 10, 15)
    assert data.split == "train: train/, val: 20% of train/ held out (seed 0), test: test/ folder"
    write_images(tmp_path / "val", five, per_class=2)
    data = ImageFolderData(tmp_path, resize=16)
    assert (len(data.train), len(data.val), len(data.test)) == (50, 10, 15)


def test_image_folder_bad_cases_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nope")):
        ImageFolderData(tmp_path / "nope")
    (tmp_path / "empty_root").mkdir()
    with pytest.raises(FileNotFoundError, match="no class folders"):
        ImageFolderData(tmp_path / "empty_root")
    root = tmp_path / "ds"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for k in range(3):
            Image.new("RGB", (40, 40), (k * 80, 0, 0)).save(root / name / f"{k}.png")
    (root / "c").mkdir()
    with pytest.raises(ValueError, match=f"without images in .*{root / 'c'}"):
        ImageFolderData(root)
    (root / "c").rmdir()
    (root / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    with pytest.raises(ValueError, match=f"cannot read image {root / 'b' / 'broken.png'}"):
        ImageFolderData(root)
    (root / "b" / "broken.png").unlink()
    Image.new("RGB", (8, 8)).save(root / "a" / "tiny.png")
    with pytest.raises(ValueError, match="tiny.png is 8x8 pixels, smaller than min_size=16"):
        ImageFolderData(root)


# --- issue 13: last batches, broken Fashion-MNIST copies, image folders ----------------------

def test_a_last_training_batch_of_one_joins_the_batch_before_it():
    data = D.TensorImages(torch.zeros(501, 1, 16, 16, dtype=torch.uint8), torch.arange(501) % 5,
                          (0.5,), (0.5,))
    train = D.BatchLoader(data, 100, shuffle=True, seed=0)
    sizes = [len(y) for _, y in train]
    assert sizes == [100, 100, 100, 100, 101] and len(train) == 5
    seen = torch.cat([y for _, y in D.BatchLoader(D.TensorImages(
        data.images, torch.arange(501), (0.5,), (0.5,)), 100, shuffle=True)])
    assert sorted(seen.tolist()) == list(range(501))            # every image, once
    assert [len(y) for _, y in D.BatchLoader(data, 100, shuffle=False)] == [100] * 5 + [1]
    assert [len(y) for _, y in D.BatchLoader(data, 250, shuffle=True)] == [250, 251]
    assert D.batch_bounds(1, 32, True) == [(0, 1)]              # nothing to merge with


def _truncated(source, target, keep=20_000):
    target.write_bytes(source.read_bytes()[:keep])


@pytest.mark.usefixtures("offline_fashion_mnist")
def test_a_broken_local_fashion_mnist_copy_falls_back_with_a_warning(tmp_path, monkeypatch):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    broken = raw / "t10k-images-idx3-ubyte.gz"
    _truncated(D.DEBIAN_FASHION_MNIST / broken.name, broken)
    shutil.copy(D.DEBIAN_FASHION_MNIST / "t10k-labels-idx1-ubyte.gz", raw)
    with pytest.warns(UserWarning, match=f"{broken} is truncated or corrupt.*trying the next"):
        images, labels, source = D.load_fashion_mnist(tmp_path, train=False, download=False)
    assert source == str(D.DEBIAN_FASHION_MNIST) and images.shape == (10_000, 1, 28, 28)
    # No source left: the error names every broken file.
    debian = tmp_path / "debian"
    debian.mkdir()
    corrupt = bytearray((D.DEBIAN_FASHION_MNIST / broken.name).read_bytes())
    corrupt[5000:9000] = bytes(4000)
    (debian / broken.name).write_bytes(bytes(corrupt))
    shutil.copy(D.DEBIAN_FASHION_MNIST / "t10k-labels-idx1-ubyte.gz", debian)
    monkeypatch.setattr(D, "DEBIAN_FASHION_MNIST", debian)
    with pytest.warns(UserWarning), pytest.raises(FileNotFoundError) as err:
        D.load_fashion_mnist(tmp_path, train=False, download=False)
    assert f"broken: {broken} is truncated" in str(err.value)
    assert f"broken: {debian / broken.name} is truncated or corrupt" in str(err.value)


def test_an_idx_file_shorter_than_its_header_is_named(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(b"\x00\x00\x08\x01" + (10).to_bytes(4, "big") + bytes(7))
    with pytest.raises(ValueError, match=f"{path} is truncated or corrupt: its header says "
                                         r"\[10\] \(18 bytes\), the file has 15 bytes"):
        D.read_idx(path)


def _noise(seed, size=20, mode="RGB"):
    g = torch.Generator().manual_seed(seed)
    shape = (size, size, 3) if mode == "RGB" else (size, size)
    return Image.fromarray(torch.randint(0, 256, shape, generator=g, dtype=torch.uint8).numpy())


def _folder(root, classes=("a", "b"), per_class=3, ext="png", start=0):
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            _noise(start + 10 * ord(c[0]) + k).save(root / c / f"{k}.{ext}")


def test_every_format_pillow_opens_is_read_and_other_files_are_named(tmp_path):
    _folder(tmp_path, per_class=3, ext="png")
    _noise(1).save(tmp_path / "a" / "moving.gif")
    _noise(2).save(tmp_path / "b" / "scan.tiff")
    (tmp_path / "b" / "notes.txt").write_text("where these came from")
    (tmp_path / "b" / ".DS_Store").write_bytes(b"\x00")
    with pytest.warns(UserWarning, match=r"1 file\(s\) in .* skipped, not images by their "
                                         r"name: .*notes.txt"):
        data = ImageFolderData(tmp_path, resize=16, val_fraction=0.25)
    assert len(data.train) + len(data.val) == 8                 # 6 PNGs, a GIF and a TIFF
    (tmp_path / "a" / "broken.gif").write_bytes(b"GIF89a not really")
    with pytest.warns(UserWarning, match="notes.txt"), \
            pytest.raises(ValueError, match=f"cannot read image {tmp_path / 'a' / 'broken.gif'}"):
        ImageFolderData(tmp_path, resize=16)


def test_16_bit_images_are_scaled_by_their_range(tmp_path):
    ramp = torch.arange(32 * 32).view(32, 32) * 64               # 0 .. 65472, 16 bits
    Image.fromarray(ramp.numpy().astype("uint16")).save(tmp_path / "16bit.png")
    twelve = torch.arange(32 * 32).view(32, 32) * 4              # 0 .. 4092, 12 bits in 16
    Image.fromarray(twelve.numpy().astype("uint16")).save(tmp_path / "12bit.png")
    assert Image.open(tmp_path / "16bit.png").mode.startswith("I")
    for name, values in (("16bit.png", ramp), ("12bit.png", twelve)):
        decoded = D.decode_image(tmp_path / name, 1, (32, 32))[0].long()
        expected = (values.double() * 255 / values.max()).round().long()
        assert (decoded - expected).abs().max() <= 1, name        # not clipped to white
        assert decoded.min() == 0 and decoded.max() == 255


def test_symlinks_are_followed_once_and_no_file_is_in_two_splits(tmp_path):
    root = tmp_path / "ds"
    _folder(root / "train", per_class=4)
    _folder(root / "test", per_class=2, start=1000)
    (root / "train" / "a" / "loop").symlink_to(root / "train" / "a")   # a loop
    (root / "train" / "b" / "more").symlink_to(tmp_path / "elsewhere")
    _folder(tmp_path / "elsewhere", classes=("x",), per_class=2, start=2000)
    data = ImageFolderData(root, resize=16, val_fraction=0.25)
    assert len(data.train) + len(data.val) == 10 and len(data.test) == 4   # 4+4, +2 via link
    (root / "test" / "a" / "leak").symlink_to(root / "train" / "a")
    with pytest.raises(ValueError, match=r"4 image file\(s\) are in two splits "
                                         rf"\({root / 'train'} and {root / 'test'}\): "
                                         rf"{root / 'train' / 'a' / '0.png'} and "
                                         rf"{root / 'test' / 'a' / 'leak' / '0.png'}"):
        ImageFolderData(root, resize=16)
    (root / "test" / "a" / "leak").unlink()
    (root / "train" / "b" / "a_again").symlink_to(root / "train" / "a")
    with pytest.raises(ValueError, match="the same image file is in two classes"):
        ImageFolderData(root, resize=16)


def test_an_empty_test_folder_or_a_class_without_test_images_is_named(tmp_path):
    root = tmp_path / "ds"
    _folder(root / "train", per_class=4)
    (root / "test").mkdir()
    with pytest.raises(FileNotFoundError, match=f"no class folders in {root / 'test'}"):
        ImageFolderData(root, resize=16)
    _folder(root / "test", classes=("a",), per_class=2)
    with pytest.raises(ValueError, match=rf"{root / 'test'} must have the class folders of "
                                         rf".*no images of class\(es\) b \(expected "
                                         rf"{root / 'test' / 'b'}\)"):
        ImageFolderData(root, resize=16)
    (root / "test" / "b").mkdir()
    with pytest.raises(ValueError, match=f"without images in .*{root / 'test' / 'b'}"):
        ImageFolderData(root, resize=16)
    single = tmp_path / "single"
    _folder(single, per_class=1)
    with pytest.warns(UserWarning, match="one image"), \
            pytest.raises(ValueError, match=f"no validation images: every class in {single} "):
        ImageFolderData(single, resize=16)
    flat = tmp_path / "flat"
    _folder(flat, per_class=2)
    _folder(flat / "test", per_class=1)
    with pytest.raises(ValueError, match=f"{flat} has a test/ folder but no train/ folder"):
        ImageFolderData(flat, resize=16)
