"""Dataset loading, collate, rect batches, label cache, data YAMLs, deterministic loaders, multi-scale."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import dataio.scan as scan_module
from dataio.data_config import DataConfigError, load_data_config
from dataio.dataset import YoloDataset
from dataio.label_cache import cache_path_for
from dataio.loader import build_dataloader
from dataio.multiscale import random_rescale_batch
from dataio.sources import label_path_for, list_images
from tests.synthetic_data import make_synthetic_dataset
from utils.boxes import xywh_to_xyxy
from utils.letterbox import scale_boxes_to_original

IMGSZ = 96


@pytest.fixture(scope="module")
def data_yaml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    return make_synthetic_dataset(root, n_train=12, n_val=7, imgsz=IMGSZ, nc=3, aspect_ratios=(1.0, 1.6, 0.7))


def _batches(loader, epoch: int) -> list[tuple]:
    loader.set_epoch(epoch)
    return list(loader)


def _same(a: list[tuple], b: list[tuple]) -> bool:
    return len(a) == len(b) and all(
        torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) and x[2] == y[2] for x, y in zip(a, b)
    )


# -- data YAML ----------------------------------------------------------------------------------------------
def test_data_config_resolves_paths(data_yaml: Path) -> None:
    config = load_data_config(data_yaml)
    assert config.nc == 3 and config.names == {0: "class0", 1: "class1", 2: "class2"}
    assert config.train == [str(data_yaml.parent / "images" / "train")] and config.test is None
    # Relative `path` is relative to the YAML's folder; a list of sources and a glob work.
    sub = data_yaml.parent / "cfgs"
    sub.mkdir(exist_ok=True)
    (sub / "rel.yaml").write_text(
        yaml.safe_dump(
            {
                "path": "..",
                "train": ["images/train", "images/val/val_00*.png"],
                "val": "images/val",
                "names": ["a", "b", "c"],
            }
        )
    )
    rel = load_data_config(sub / "rel.yaml")
    assert rel.root == data_yaml.parent.resolve()
    assert len(list_images(rel.train)) == 12 + 7


def test_data_config_finds_bundled_by_name() -> None:
    config = load_data_config("trees.yaml", check_images=False)
    assert config.file.name == "trees.yaml" and config.names == {0: "tree"}
    assert load_data_config("trees", check_images=False).root == config.root


@pytest.mark.parametrize(
    "content, message",
    [
        ({"train": "images/train", "val": "images/val"}, "missing key 'names'"),
        ({"names": ["a"]}, "missing key 'train' or 'val'"),
        ({"train": "images/train", "val": "images/nothing", "names": ["a"]}, "images/nothing does not exist"),
        ({"train": "images/train", "val": "empty", "names": ["a"]}, "'val' split: no images found"),
        ({"train": "images/train", "names": ["a"], "nc": 2}, "nc=2 but 'names' lists 1"),
        ({"train": "images/train", "names": {0: "a", 2: "b"}}, "keys must be 0..1"),
        ({"path": "nowhere", "train": "images/train", "names": ["a"]}, "dataset root 'path: nowhere' not found"),
    ],
)
def test_data_config_errors(data_yaml: Path, tmp_path: Path, content: dict, message: str) -> None:
    (data_yaml.parent / "empty").mkdir(exist_ok=True)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"path": str(data_yaml.parent), **content}))
    with pytest.raises(DataConfigError, match=message) as info:
        load_data_config(path)
    assert str(path) in str(info.value)


def test_data_config_missing_file() -> None:
    with pytest.raises(FileNotFoundError, match="trees.yaml"):
        load_data_config("tres.yaml")


def test_sources_list_file_and_label_paths(data_yaml: Path, tmp_path: Path) -> None:
    root = data_yaml.parent
    list_file = root / "subset.txt"
    list_file.write_text("./images/train/train_000.png\n\n" + str(root / "images/val/val_001.png") + "\n")
    images = list_images(list_file)
    assert [p.name for p in images] == ["train_000.png", "val_001.png"]
    assert label_path_for(images[0]) == root / "labels" / "train" / "train_000.txt"
    assert label_path_for("/a/images/b/images/c/x.jpg") == Path("/a/images/b/labels/c/x.txt")  # the last one
    assert label_path_for("/a/pics/x.jpg") == Path("/a/pics/x.txt")


# -- items and batches --------------------------------------------------------------------------------------
def test_item_format_and_shape_info_maps_back(data_yaml: Path) -> None:
    config = load_data_config(data_yaml)
    dataset = YoloDataset(config.val, imgsz=IMGSZ, nc=3)
    assert len(dataset.labels) == len(dataset) == 7 and dataset.shapes.shape == (7, 2)
    for index in range(len(dataset)):
        image, targets, path, ((h0, w0), ((ratio_h, ratio_w), pad)) = dataset[index]
        assert image.dtype == torch.uint8 and image.shape == (3, IMGSZ, IMGSZ)
        assert targets.shape[1] == 6 and (targets[:, 0] == 0).all()
        assert (w0, h0) == tuple(dataset.shapes[index])
        # Boxes mapped back to the original image equal the label file's boxes.
        boxes = xywh_to_xyxy(targets[:, 2:].double()) * IMGSZ
        original = scale_boxes_to_original(boxes, ratio_w, pad, (h0, w0))
        expected = xywh_to_xyxy(torch.from_numpy(dataset.labels[index][:, 1:]).double()) * torch.tensor(
            [w0, h0, w0, h0]
        )
        assert torch.allclose(original, expected, atol=0.02), path
        assert ratio_h == pytest.approx(ratio_w, rel=0.02)


def test_collate_writes_image_index(data_yaml: Path) -> None:
    dataset = YoloDataset(load_data_config(data_yaml).val, imgsz=IMGSZ, nc=3)
    items = [dataset[i] for i in range(4)]
    images, targets, paths, shapes = YoloDataset.collate_fn(items)
    assert images.shape == (4, 3, IMGSZ, IMGSZ) and images.dtype == torch.uint8
    assert targets.shape == (sum(len(x[1]) for x in items), 6)
    expected = torch.cat([torch.full((len(x[1]),), float(i)) for i, x in enumerate(items)])
    assert torch.equal(targets[:, 0], expected) and paths == [x[2] for x in items] and len(shapes) == 4
    assert all((x[1][:, 0] == 0).all() for x in items)  # items left untouched


def test_collate_pads_mixed_sizes() -> None:
    small = torch.full((3, 32, 64), 7, dtype=torch.uint8)
    big = torch.full((3, 64, 64), 9, dtype=torch.uint8)
    targets = torch.tensor([[0, 1, 0.5, 0.5, 0.5, 0.5]])
    images, out, _, _ = YoloDataset.collate_fn([(small, targets, "a", None), (big, targets, "b", None)])
    assert images.shape == (2, 3, 64, 64) and (images[0, :, 32:] == 114).all() and (images[0, :, :32] == 7).all()
    assert torch.allclose(out[0, 2:], torch.tensor([0.5, 0.25, 0.5, 0.25])) and torch.equal(out[1, 2:], targets[0, 2:])


@pytest.mark.parametrize(
    "pad, expected",
    [(0.0, [(64, 96), (96, 96), (96, 96), (96, 96)]), (0.5, [(96, 128), (128, 128), (128, 128), (128, 96)])],
)
def test_rect_batches(data_yaml: Path, pad: float, expected: list[tuple[int, int]]) -> None:
    # val: 7 images cycling w/h 1.0, 1.6 (96x60), 0.7 (67x96): sorted wide, wide | sq, sq | sq, tall | tall
    dataset = YoloDataset(load_data_config(data_yaml).val, imgsz=IMGSZ, rect=True, batch_size=2, pad=pad, nc=3)
    aspect = dataset.shapes[:, 1] / dataset.shapes[:, 0]
    assert (np.diff(aspect) >= 0).all()  # sorted by h/w
    assert [tuple(s) for s in dataset.batch_shapes] == expected
    loader = build_dataloader(dataset, batch_size=2, workers=0, shuffle=True)  # shuffle is turned off for rect
    for b, (images, targets, paths, shapes) in enumerate(loader):
        assert tuple(images.shape[2:]) == expected[b]
        assert paths == dataset.image_files[2 * b : 2 * b + 2]
        assert (targets[:, 2:] > 0).all() and (targets[:, 2:] <= 1).all()
        for (h0, w0), (ratio, (pad_w, _pad_h)) in shapes:  # the long side fills imgsz, centred
            assert max(h0 * ratio[0], w0 * ratio[1]) == pytest.approx(IMGSZ, abs=1)
            assert pad_w == pytest.approx((images.shape[3] - w0 * ratio[1]) / 2, abs=1)


# -- reproducibility ----------------------------------------------------------------------------------------
def test_loader_is_a_function_of_seed_and_epoch(data_yaml: Path) -> None:
    dataset = YoloDataset(
        load_data_config(data_yaml).train, imgsz=IMGSZ, augment=True, nc=3, seed=3, hyp={"mixup": 0.5, "degrees": 5}
    )
    loader = build_dataloader(dataset, batch_size=4, workers=0, shuffle=True, seed=3)
    first = _batches(loader, 1)
    assert _same(first, _batches(loader, 1))  # same epoch twice: identical
    assert not _same(first, _batches(loader, 2))  # next epoch: new order and augmentations
    assert [b[2] for b in first] != [b[2] for b in _batches(loader, 2)]
    # Worker processes give exactly the same batches as the main process.
    parallel = build_dataloader(dataset, batch_size=4, workers=2, shuffle=True, seed=3)
    assert parallel.num_workers >= 1  # capped by the CPU count
    assert _same(first, _batches(parallel, 1))
    # A fresh dataset and loader (as after a resume) reproduce epoch 1 without replaying epoch 0.
    fresh = YoloDataset(
        load_data_config(data_yaml).train, imgsz=IMGSZ, augment=True, nc=3, seed=3, hyp={"mixup": 0.5, "degrees": 5}
    )
    assert _same(first, _batches(build_dataloader(fresh, batch_size=4, workers=0, seed=3), 1))
    # Another seed differs.
    other = build_dataloader(dataset, batch_size=4, workers=0, shuffle=True, seed=4)
    assert not _same(first, _batches(other, 1))


def _with_worker_pid(batch: list) -> tuple:
    """The usual batch and the id of the process that collated it (a loader worker's, with workers)."""
    return (*YoloDataset.collate_fn(batch), os.getpid())


def test_persistent_workers_follow_epoch_and_close_mosaic(data_yaml: Path) -> None:
    """Workers started once keep giving what the main process would, as set_epoch and close_mosaic change the
    main process's dataset between epochs (the sampler hands them that state with every index)."""
    hyp = {"mosaic": 1.0, "mixup": 0.5, "degrees": 5}
    dataset = YoloDataset(load_data_config(data_yaml).train, imgsz=IMGSZ, augment=True, nc=3, seed=3, hyp=hyp)
    serial = build_dataloader(dataset, batch_size=4, workers=0, seed=3)
    parallel = build_dataloader(dataset, batch_size=4, workers=2, seed=3)
    assert parallel.persistent_workers and parallel.num_workers >= 1  # capped by the CPU count
    parallel.collate_fn = _with_worker_pid
    pids = []
    for epoch in range(3):
        if epoch == 2:
            dataset.close_mosaic()
        expected = _batches(serial, epoch)
        order = [key.index for key in serial.sampler]  # keys: (index, epoch, mosaic_closed)
        direct = [YoloDataset.collate_fn([dataset[i] for i in order[j : j + 4]]) for j in range(0, len(order), 4)]
        assert _same(expected, direct)  # as indexing the dataset itself gives
        batches = _batches(parallel, epoch)
        assert _same(batches, expected), epoch
        assert all((shape is None) == (epoch < 2) for batch in batches for shape in batch[3])  # mosaic, then not
        pids.append({batch[4] for batch in batches})
    assert not _same(_batches(serial, 0), _batches(serial, 1))
    assert len(pids[0]) == parallel.num_workers and os.getpid() not in pids[0]
    assert pids[0] == pids[1] == pids[2]  # the same worker processes every epoch


def test_distributed_sampler_shards_deterministically(data_yaml: Path) -> None:
    dataset = YoloDataset(load_data_config(data_yaml).train, imgsz=IMGSZ, nc=3)
    paths = []
    for rank in range(2):
        loader = build_dataloader(dataset, batch_size=2, rank=rank, world_size=2, seed=1)
        epoch = [p for batch in _batches(loader, 5) for p in batch[2]]
        assert epoch == [p for batch in _batches(loader, 5) for p in batch[2]]
        paths.append(epoch)
    assert sorted(paths[0] + paths[1]) == sorted(dataset.image_files)


def test_close_mosaic(data_yaml: Path) -> None:
    dataset = YoloDataset(
        load_data_config(data_yaml).train,
        imgsz=IMGSZ,
        augment=True,
        nc=3,
        hyp={"mosaic": 1.0, "translate": 0.0, "scale": 0.0, "fliplr": 0.0, "hsv_h": 0, "hsv_s": 0, "hsv_v": 0},
    )
    assert dataset.mosaic_enabled
    mosaic_items = [dataset[i] for i in range(3)]
    dataset.close_mosaic()
    assert not dataset.mosaic_enabled
    for i, (_image, targets, _, shape_info) in enumerate(dataset[i] for i in range(3)):
        assert mosaic_items[i][3] is None and shape_info is not None  # letterboxed single image now
        assert len(targets) == len(dataset.labels[i])  # nothing cropped away with no warp


def test_multiscale_rescale() -> None:
    images = torch.randint(0, 255, (2, 3, 96, 64), dtype=torch.uint8)
    sizes = set()
    for seed in range(20):
        out = random_rescale_batch(images, imgsz=96, stride=32, seed=(0, seed))
        assert out.dtype == torch.uint8 and out.shape[:2] == images.shape[:2]
        assert out.shape[2] % 32 == 0 and out.shape[3] % 32 == 0 and 32 <= max(out.shape[2:]) <= 160
        sizes.add(tuple(out.shape[2:]))
        assert torch.equal(out, random_rescale_batch(images, imgsz=96, stride=32, seed=(0, seed)))
    assert len(sizes) > 1
    floats = random_rescale_batch(images.float() / 255, imgsz=96, stride=32, seed=1)
    assert floats.dtype == torch.float32


# -- label cache --------------------------------------------------------------------------------------------
def test_label_cache_is_reused_and_revalidated(
    data_yaml: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    root = tmp_path / "ds"
    make_synthetic_dataset(root, n_train=4, n_val=1, imgsz=64, nc=2)
    images = root / "images" / "train"
    YoloDataset(images, imgsz=64, nc=2)
    cache = cache_path_for(root / "labels" / "train")
    assert cache.is_file() and cache.name == "train.cache.npz"
    with np.load(cache, allow_pickle=False) as archive:  # a plain archive: no pickled objects
        assert set(archive.files) == {"meta", "image_files", "shapes", "counts", "labels"}

    calls = []
    real_scan = scan_module.scan_images
    monkeypatch.setattr(scan_module, "scan_images", lambda *a, **k: calls.append(1) or real_scan(*a, **k))
    again = YoloDataset(images, imgsz=64, nc=2)
    assert calls == [] and "matches the files" in capsys.readouterr().out

    label = root / "labels" / "train" / "train_001.txt"
    label.write_text("1 0.5 0.5 0.5 0.5\n1 0.5 0.5 0.5 0.5\n")
    os.utime(label, ns=(label.stat().st_atime_ns, label.stat().st_mtime_ns + 10**9))
    changed = YoloDataset(images, imgsz=64, nc=2)
    assert calls == [1]
    index = changed.image_files.index(str(images / "train_001.png"))
    assert changed.labels[index].tolist() == [[1, 0.5, 0.5, 0.5, 0.5]]  # duplicate removed
    assert again.labels[index].tolist() != changed.labels[index].tolist()
    YoloDataset(images, imgsz=64, nc=1)  # another nc is another key: class 1 is now out of range
    assert calls == [1, 1]


def test_label_cache_in_cache_dir_when_read_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "ds"
    make_synthetic_dataset(root, n_train=2, n_val=1, imgsz=64, nc=2)
    labels_parent = root / "labels"
    real = scan_module.is_writable_dir
    monkeypatch.setattr(scan_module, "is_writable_dir", lambda d: d != labels_parent and real(d))
    YoloDataset(root / "images" / "train", imgsz=64, nc=2)  # no cache_dir: not saved, no error
    assert not list(labels_parent.glob("*.npz"))
    cache_dir = tmp_path / "cache"
    YoloDataset(root / "images" / "train", imgsz=64, nc=2, cache_dir=cache_dir)
    assert len(list(cache_dir.glob("train-*.cache.npz"))) == 1
    assert not list(labels_parent.glob("*.npz"))


def test_cache_images_in_ram_gives_same_items(data_yaml: Path) -> None:
    source = load_data_config(data_yaml).val
    disk = YoloDataset(source, imgsz=IMGSZ, augment=True, nc=3)
    ram = YoloDataset(source, imgsz=IMGSZ, augment=True, nc=3, cache_images=True)
    for i in range(3):
        assert torch.equal(disk[i][0], ram[i][0]) and torch.equal(disk[i][1], ram[i][1])


def test_single_cls_checks_the_data_classes_then_merges(data_yaml: Path, tmp_path: Path) -> None:
    data = load_data_config(data_yaml)
    merged = YoloDataset(data.train, imgsz=IMGSZ, single_cls=True, nc=data.nc, cache_dir=tmp_path)
    assert merged.counts["usable"] == merged.counts["found"] == 12
    assert all((x[:, 0] == 0).all() for x in merged.labels)
    assert merged.counts["boxes"] == sum(len(x) for x in merged.labels) > 0

    # a class the data set does not have is still reported and skipped, with single_cls as without
    bad = tmp_path / "bad"
    (bad / "images").mkdir(parents=True)
    (bad / "labels").mkdir()
    for name, cls in (("a", 0), ("b", 3)):
        (bad / "images" / f"{name}.png").write_bytes((Path(data.train[0]) / "train_000.png").read_bytes())
        (bad / "labels" / f"{name}.txt").write_text(f"{cls} 0.5 0.5 0.2 0.2\n")
    checked = YoloDataset(str(bad / "images"), imgsz=IMGSZ, single_cls=True, nc=data.nc)
    assert [Path(f).name for f in checked.image_files] == ["a.png"]
    assert [p.message for p in checked.problems] == ["line 1: class 3 >= nc=3"]
