"""Datasets on real local data (../shared/data, scikit-learn's digits, generated image folders) and their errors."""
import os
import shutil

import cv2
import numpy as np
import pytest
from conftest import DATA

from edgevit_paddle.config import load_config
from edgevit_paddle.data import DataError, build_dataset, read_image


def data_cfg(*overrides):
    return load_config(None, ["Model.name=edgevit_xxs", *overrides])["Data"]


def test_digits_seeded_split():
    d = data_cfg("Data.dataset=digits", "Data.image_size=32")
    tr, te = build_dataset(d, "Train"), build_dataset(d, "Eval")
    assert (len(tr), len(te)) == (1438, 359) and tr.info.num_classes == 10
    assert not set(tr.indices) & set(te.indices)
    x, y = tr[0]
    assert x.shape == (3, 32, 32) and x.dtype == np.float32 and y.dtype == np.int64 and y.shape == (1,)
    assert build_dataset(d, "Train").indices == tr.indices


def test_mnist_from_the_shared_test_set():
    d = data_cfg("Data.dataset=mnist", f"Data.root={DATA}/mnist", "Data.image_size=28", "Data.channels=1",
                 "Data.Train.transforms=[{ToTensor: {}}]", "Data.Eval.transforms=[{ToTensor: {}}]")
    tr, te = build_dataset(d, "Train"), build_dataset(d, "Eval")
    assert (len(tr), len(te)) == (8000, 2000)
    assert "seeded 80%/20% split of the 10,000-image test set" in tr.info.describe()
    assert not set(tr.indices) & set(te.indices)
    x, y = te[5]
    assert x.shape == (1, 28, 28) and 0 <= int(y[0]) <= 9 and 0.0 <= x.min() and x.max() <= 1.0
    labels = {int(tr[i][1][0]) for i in range(0, 8000, 97)}
    assert labels == set(range(10))
    grey3 = build_dataset(data_cfg("Data.dataset=mnist", f"Data.root={DATA}/mnist", "Data.image_size=28",
                                   "Data.Eval.transforms=[{ToTensor: {}}]"), "Eval")
    x3, _ = grey3[5]
    assert x3.shape == (3, 28, 28) and np.array_equal(x3[0], x3[2]) and np.allclose(x3[0], x[0])


def test_flowers_shared_copy_zero_based_labels(tmp_path):
    d = data_cfg("Data.dataset=flowers102", f"Data.root={DATA}/flowers102", "Data.image_size=64",
                 f"Data.cache_dir={tmp_path}")
    tr = build_dataset(d, "Train")
    te = build_dataset(d, "Eval")
    assert (len(tr), len(te)) == (6149, 1020) and tr.info.num_classes == 102
    assert "6,149" in tr.info.describe()
    names = tr.info.class_names  # the real category names, label order (Flowers label 1 -> index 0)
    assert (names[0], names[20], names[101], len(set(names))) == ("pink primrose", "fire lily", "blackberry lily", 102)
    labels = [int(te[i][1][0]) for i in range(0, 1020, 10)]
    assert min(labels) == 0 and max(labels) <= 101
    assert int(te[len(te) - 1][1][0]) == 101  # trnid is sorted by class: the last image is class 102 -> 101
    x, _ = tr[0]
    assert x.shape == (3, 64, 64) and np.isfinite(x).all()


@pytest.mark.parametrize("overrides,match", [
    (["Data.dataset=flowers102", "Data.root=/nonexistent"], r"Flowers-102 files not found in '/nonexistent': put "
                                                            r"102flowers.tgz, imagelabels.mat, setid.mat there"),
    (["Data.dataset=flowers102"], r"Flowers-102 needs Data.root"),
    (["Data.dataset=mnist", "Data.root=/tmp"], r"MNIST files not found in '/tmp'"),
    (["Data.dataset=cifar10", "Data.root=/tmp"], r"CIFAR10 files not found in '/tmp': put cifar-10-python.tar.gz"),
    (["Data.dataset=flowers102", f"Data.root={DATA}/flowers102", "Data.Train.split=training"],
     r"unknown Flowers-102 split 'training'"),
])
def test_missing_data_says_what_to_put_where(overrides, match):
    with pytest.raises(DataError, match=match) as info:
        build_dataset(data_cfg(*overrides), "Train")
    assert "\n" not in str(info.value)


def make_folder(root, classes=("cat", "dog"), n=3, splits=("train", "val")):
    rng = np.random.RandomState(0)
    for split in splits:
        for c in classes:
            os.makedirs(os.path.join(root, split, c), exist_ok=True)
            for i in range(n):
                cv2.imwrite(os.path.join(root, split, c, f"{i}.png"), rng.randint(0, 255, (40, 50, 3), np.uint8))
    return root


def test_imagefolder_replaces_unreadable_images_when_it_meets_them(tmp_path):
    root = make_folder(str(tmp_path))
    (tmp_path / "train" / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (tmp_path / "train" / "dog" / "empty.png").write_bytes(b"")
    cv2.imwrite(str(tmp_path / "train" / "dog" / "grey.png"), np.full((30, 30), 128, np.uint8))
    rgba = np.zeros((30, 30, 4), np.uint8)
    rgba[..., 3] = 255
    cv2.imwrite(str(tmp_path / "train" / "cat" / "rgba.png"), rgba)
    cv2.imwrite(str(tmp_path / "train" / "cat" / "deep.png"), np.full((30, 30, 3), 40000, np.uint16))
    d = data_cfg("Data.dataset=imagefolder", f"Data.root={root}", "Data.image_size=32")
    ds = build_dataset(d, "Train")  # lists, decodes nothing
    assert len(ds) == 2 * 3 + 5 and ds.info.class_names == ["cat", "dog"]
    bad = {ds.base.images.index(str(tmp_path / "train" / c / f)) for c, f in (("cat", "broken.jpg"),
                                                                             ("dog", "empty.png"))}
    for i in range(len(ds)):
        x, y, skipped = ds[(0, i, 0)]
        assert x.shape == (3, 32, 32) and np.isfinite(x).all()
        assert (int(skipped[0]) == i) == (i in bad) and (int(skipped[0]) == -1) == (i not in bad)
    with pytest.warns(UserWarning, match="unreadable image .*broken.jpg replaced by the next readable one"):
        ds[min(bad)]
    assert read_image(str(tmp_path / "train" / "cat" / "deep.png")).dtype == np.uint8


def test_imagefolder_class_errors(tmp_path):
    root = make_folder(str(tmp_path / "a"))
    os.makedirs(os.path.join(root, "train", "empty"))
    os.makedirs(os.path.join(root, "val", "empty"))
    with pytest.raises(DataError, match=r"empty class folder\(s\) in .*: empty"):
        build_dataset(data_cfg("Data.dataset=imagefolder", f"Data.root={root}"), "Train")
    root = make_folder(str(tmp_path / "b"))
    make_folder(root, classes=("bird",), splits=("train",))
    with pytest.raises(DataError, match=r"classes differ between 'train' and 'val'.*bird"):
        build_dataset(data_cfg("Data.dataset=imagefolder", f"Data.root={root}"), "Train")
    with pytest.raises(DataError, match=r"split 'valid' not found"):
        build_dataset(data_cfg("Data.dataset=imagefolder", f"Data.root={root}", "Data.Eval.split=valid"), "Eval")


def test_flowers_read_only_root_is_linked_into_the_cache(tmp_path, monkeypatch):
    from edgevit_paddle.data import archive
    root = tmp_path / "ro"
    root.mkdir()
    for f in ("102flowers.tgz", "imagelabels.mat", "setid.mat"):
        os.symlink(os.path.join(DATA, "flowers102", f), root / f)
    monkeypatch.setattr(archive.os, "access", lambda path, mode: False)  # as for a user who cannot write there
    cache = tmp_path / "cache"
    assert archive.writable_flowers_root(str(root), str(cache)) == str(cache / "flowers102")
    assert sorted(os.listdir(cache / "flowers102")) == ["102flowers.tgz", "imagelabels.mat", "setid.mat"]
    assert not (root / "102flowers").exists()


def test_flowers_extraction_is_atomic_when_runs_start_together(tmp_path):
    """Two runs opening an unextracted Flowers root at once both see all 8,189 images (Paddle's in-place extraction
    let the second one read half-written files); a folder left short by a killed extraction is an error at open."""
    import threading

    from edgevit_paddle.data import archive
    root = tmp_path / "flowers"
    root.mkdir()
    for f in ("102flowers.tgz", "imagelabels.mat", "setid.mat"):
        os.symlink(os.path.join(DATA, "flowers102", f), root / f)
    errors = []

    def extract():
        try:
            archive.extract_flowers(str(root))
        except Exception as e:  # noqa: BLE001 - any failure in the thread is reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=extract) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert os.listdir(root / "102flowers") == ["jpg"]  # no temporary folder left behind
    assert len(os.listdir(root / "102flowers" / "jpg")) == 8189

    short = tmp_path / "short"
    short.mkdir()
    for f in ("102flowers.tgz", "imagelabels.mat", "setid.mat"):
        os.symlink(os.path.join(DATA, "flowers102", f), short / f)
    (short / "102flowers" / "jpg").mkdir(parents=True)
    shutil.copy(root / "102flowers" / "jpg" / "image_00001.jpg", short / "102flowers" / "jpg")
    with pytest.raises(DataError, match=r"holds 1 of the 8,189 Flowers-102 images .*delete '.*102flowers'"):
        build_dataset(data_cfg("Data.dataset=flowers102", f"Data.root={short}"), "Train")


# ------------------------------------------------------------------------------------------ antialiased resize

def test_timms_rounding_is_an_option_in_training_the_export_and_the_predictor(tmp_path):
    """``Data.rounding: timm`` resizes and crops as timm/torchvision round (the long side truncated, the crop offsets
    rounded, ``size / crop_pct`` rounded down) to reproduce the authors' numbers; the default stays PaddleClas's,
    which deployed clients compute. Training's eval transform, ``inference.yml`` and the predictor agree either way."""
    from edgevit_paddle.config import load_config
    from edgevit_paddle.data.datasets import eval_transforms
    from edgevit_paddle.data.transforms import build_transforms
    from edgevit_paddle.errors import ConfigError, PredictorError
    from edgevit_paddle.export.ecosystem import paddle_sections
    from edgevit_paddle.export.preprocess import fit_to_size, from_transforms
    from edgevit_paddle.image import center_crop_box, short_side_size
    from edgevit_paddle.inference.preprocess import Preprocessor
    from edgevit_paddle.model_cfg import resize_for_crop
    # torchvision's rules: int(224 * 451 / 300) = 336, round((336 - 224) / 2) ...; PaddleClas's: round(336.75) = 337
    assert short_side_size(300, 451, 224) == (224, 337) and short_side_size(300, 451, 224, "timm") == (224, 336)
    assert short_side_size(451, 300, 224, "timm") == (336, 224)
    assert center_crop_box(337, 451, 224, 224) == (56, 113) and center_crop_box(337, 451, 224, 224, "timm") == (56, 114)
    assert resize_for_crop(96, 0.9) == 107 and resize_for_crop(96, 0.9, "timm") == 106  # 106.67
    photo = np.random.RandomState(0).randint(0, 256, (300, 451, 3)).astype(np.uint8)
    for rounding in ("paddleclas", "timm"):
        cfg = load_config(None, ["Model.name=edgevit_xxs", "Data.dataset=imagefolder", "Data.image_size=96",
                                 "Data.crop_pct=0.9", f"Data.rounding={rounding}"])
        spec = eval_transforms(cfg["Data"])
        steps = fit_to_size(from_transforms(spec), 96, 0.9)
        assert steps[0]["resize"]["size"] == (107 if rounding == "paddleclas" else 106)
        assert all(("rounding" in a) == (rounding == "timm") for s in steps[:2] for a in s.values())
        np.testing.assert_allclose(Preprocessor(steps)(photo), build_transforms(spec, 3)(photo), atol=1e-6)
        sections, why = paddle_sections(steps, ["a", "b"], "edgevit_xxs", 3)
        assert bool(sections) == (rounding == "paddleclas") and (why is None) == (rounding == "paddleclas")
    assert "PaddleClas and PaddleX round as PaddleClas" in why
    with pytest.raises(ConfigError, match=r"'Data.rounding' is 'tim'.*did you mean 'timm'"):
        load_config(None, ["Model.name=edgevit_xxs", "Data.dataset=digits", "Data.rounding=tim"])
    with pytest.raises(PredictorError, match=r"unknown rounding 'floor' in inference.yml's resize step"):
        Preprocessor([{"resize": {"size": 96, "rounding": "floor"}}])


def test_antialiased_resize_is_pils_in_training_and_in_the_predictor(tmp_path):
    """``antialias: true`` resizes as PIL (timm's transforms) does, in training's transforms and in the predictor
    built from the same eval transforms; OpenCV's bicubic aliases a fine pattern."""
    from conftest import flowers_jpegs
    from PIL import Image

    import edgevit_paddle as ep
    from edgevit_paddle.data.transforms import build_transforms
    from edgevit_paddle.export.preprocess import from_cfg, from_transforms
    from edgevit_paddle.inference.preprocess import Preprocessor
    photo = read_image(flowers_jpegs(tmp_path, ids=(4000,))[0])  # real, not square
    spec = [{"Resize": {"size": 73, "interpolation": "bicubic", "antialias": True}}, {"CenterCrop": {"size": 64}},
            {"ToTensor": {}}, {"Normalize": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}}]
    steps = from_transforms(spec)
    assert steps[0] == {"resize": {"size": 73, "interpolation": "bicubic", "antialias": True}}  # inference.yml says so
    np.testing.assert_allclose(Preprocessor(steps)(photo), build_transforms(spec, 3)(photo), atol=1e-6)
    # exactly PIL's resize, both sides rounded (PaddleClas's and PaddleX's short-side rule; Paddle's truncates)
    h, w = photo.shape[:2]
    size = (73, round(w * 73 / h)) if h < w else (round(h * 73 / w), 73)
    assert size != ((73, int(73 * w / h)) if h < w else (int(73 * h / w), 73))  # this photo tells the rules apart
    resized = build_transforms(spec[:1], 3)(photo)
    pil = np.asarray(Image.fromarray(photo).resize(size[::-1], Image.BICUBIC))
    assert resized.shape[:2] == size and np.array_equal(resized, pil)
    # a fine pattern shrunk 3.7x: PIL's filter averages it to grey, OpenCV's bicubic samples it
    stripes = np.zeros([256, 256, 3], np.uint8)
    stripes[:, ::2] = 255
    aa = build_transforms([{"Resize": {"size": 70, "interpolation": "bicubic", "antialias": True}}], 3)(stripes)
    cv = build_transforms([{"Resize": {"size": 70, "interpolation": "bicubic"}}], 3)(stripes)
    inner = (slice(None), slice(2, -2))  # away from the borders, where the filters see the edge
    assert np.abs(aa[inner].astype(int) - 128).max() <= 2 and np.abs(cv[inner].astype(int) - 128).max() > 50
    # the training crop draws the same boxes either way, only the resize differs
    crop = [{"RandomResizedCrop": {"size": 32, "interpolation": "bicubic", "antialias": True}}]
    import random
    random.seed(0)
    a = build_transforms(crop, 1)(photo)
    random.seed(0)
    b = build_transforms([{"RandomResizedCrop": {"size": 32, "interpolation": "bicubic"}}], 1)(photo)
    assert a.shape == b.shape == (32, 32, 1) and np.abs(a.astype(int) - b.astype(int)).mean() < 20
    # a model's own preprocessing (no config: default_cfg) is the authors' eval, bicubic and antialiased
    cfg = ep.create_model("edgevit_xxs").default_cfg
    assert cfg.interpolation == "bicubic"
    assert from_cfg(cfg)[0] == {"resize": {"size": 256, "interpolation": "bicubic", "antialias": True}}
