"""ImageFolder sources: `root/<class name>/<images>` (nested subfolders inside a class are fine).

Every image is decoded once with PIL and held as uint8: EXIF orientation applied, converted to grey (L)
or RGB, the shorter side resized to the resolution (antialiased bicubic) and centre-cropped to a square.
Transparent images (RGBA, LA, palette with transparency) are composited on black, the background of
Fashion-MNIST. 16-bit images are scaled to 8 bit (x / 257). Files that are not images, cannot be
decoded, are truncated or are too large are skipped with a reason (or, with `strict`, are an error), and
so are FIFOs, sockets and devices (or links to them), which are never opened.

"Too large" is judged from the header, before any pixel is decoded: width x height x the bytes per pixel
of the image's mode (1 for grey and palette, 2 for 16-bit, 4 for RGB, RGBA, 32-bit and float) against
`limits.LIMITS.max_image_bytes` (256 MiB by default; `--max-image-mb`). Conversion to 8 bit runs in row
blocks, so the peak memory stays within about twice that.
"""

from __future__ import annotations

import contextlib
import os
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from vaemsgan.errors import DataError
from vaemsgan.limits import LIMITS, check_memory
from vaemsgan.utils.io import NotRegularFileError, check_regular, open_regular

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".bmp", ".dib", ".tif", ".tiff", ".webp", ".gif"}
)
# Junk that file managers leave in folders: never an image, never worth a warning.
IGNORED_FILES = frozenset({"thumbs.db", "desktop.ini"})
# Pixels converted per block (_to_8bit, RGBA compositing): bounds the temporary float copies.
BLOCK_PIXELS = 1 << 20
SPLIT_NAMES = ("train", "test", "val")
PROGRESS_MIN_FILES = 500


def layout_hint(root: Path | str) -> str:
    return f"expected an ImageFolder layout {root}/<class name>/<images>"


class SkipImage(Exception):
    """An image file that cannot be used; `str(exc)` is the reason."""


@dataclass
class ImageInfo:
    """What the original file was: for reports."""

    width: int
    height: int
    mode: str
    format: str


@dataclass
class ClassFiles:
    """The files found in one class folder."""

    name: str
    folder: Path
    images: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # non-image files, by extension


# ---------------------------------------------------------------- folder scanning


def _subdirs(folder: Path) -> list[Path]:
    """Non-hidden sub-folders, sorted by name; DataError if the folder cannot be listed."""
    try:
        with os.scandir(folder) as it:
            entries = [e for e in it if not e.name.startswith(".")]
    except OSError as exc:
        raise DataError(f"{folder}: cannot read folder ({exc.strerror or exc})") from exc
    out = []
    for e in entries:
        try:
            if e.is_dir():  # follows symlinks: a linked class folder counts
                out.append(Path(e.path))
        except OSError:
            continue
    return sorted(out, key=lambda p: p.name)


def check_root(root: Path) -> None:
    """DataError with one line if `root` is not a readable folder."""
    if not root.exists():
        hint = " (broken symlink)" if root.is_symlink() else ""
        raise DataError(
            f"{root}: no such folder{hint}; {layout_hint(root)}, or 'fashion-mnist' / 'fashion-mnist-mini'"
        )
    if not root.is_dir():
        raise DataError(f"{root}: is a file, not a folder; {layout_hint(root)}")
    if not os.access(root, os.R_OK | os.X_OK):
        raise DataError(f"{root}: folder is not readable (permission denied)")


def split_layout(root: Path) -> dict[str, Path] | None:
    """{'train': root/train, 'test': root/test, ...} if root holds only split folders of class folders."""
    dirs = {p.name: p for p in _subdirs(root)}
    if "train" not in dirs or not ({"test", "val"} & dirs.keys()) or not set(dirs) <= set(SPLIT_NAMES):
        return None
    if not all(_subdirs(p) for p in dirs.values()):
        return None
    return dirs


def resolve_split(root: Path, split: str) -> Path:
    """The folder holding the class folders of `split`."""
    if split not in SPLIT_NAMES:
        raise DataError(f"{root}: unknown split '{split}' (use train, test or val)")
    splits = split_layout(root)
    if splits is None:
        if split == "train":
            return root
        raise DataError(
            f"{root}: no {split} split (for one, use {root}/train/<class>/ and "
            f"{root}/{split}/<class>/ folders)"
        )
    if split in splits:
        return splits[split]
    if split in ("test", "val"):  # test and val stand in for each other
        return splits["val" if split == "test" else "test"]
    raise DataError(f"{root}: no {split} split")  # pragma: no cover - train is always there


def find_classes(folder: Path) -> list[tuple[str, Path]]:
    """Class names (sorted folder names) and their folders; DataError if there are none."""
    dirs = _subdirs(folder)
    if not dirs:
        n_images = sum(1 for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        found = (
            f" (found {n_images} images directly in it: put them in one subfolder per class)"
            if n_images
            else ""
        )
        raise DataError(f"{folder}: no class subfolders{found}; {layout_hint(folder)}")
    refuse_same_classes(folder, dirs)
    return [(p.name, p) for p in dirs]


def refuse_same_classes(folder: Path, dirs: list[Path]) -> None:
    """DataError (one line) for two class folders that are one class: names equal up to Unicode
    normalisation (NFC 'café' and its NFD spelling look the same and would train as two classes), or a
    folder that is a link to another class folder of the same set (its images would count twice)."""
    by_form: dict[str, Path] = {}
    by_real: dict[str, Path] = {}
    for d in dirs:
        form = unicodedata.normalize("NFC", d.name)
        if form in by_form:
            raise DataError(
                f"{folder}: class folders {by_form[form].name!r} and {d.name!r} are the same name in two Unicode "
                "spellings (NFC and NFD): they would train as two classes; rename or merge them"
            )
        by_form[form] = d
        real = os.path.realpath(d)
        if real in by_real:
            first, second = sorted([by_real[real], d], key=lambda p: (p.is_symlink(), p.name))
            raise DataError(
                f"{folder}: class folder {second.name!r} is a link to class folder {first.name!r}: the same images "
                "would train as two classes; remove the link (or copy the images you mean to use)"
            )
        by_real[real] = d


def _walk(top: Path) -> Iterator[Path]:
    """Non-hidden files under `top`, sorted, following symlinked folders but never one folder twice."""
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(top, followlinks=True, onerror=None):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symlink loop or a second link to the same folder
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and name.lower() not in IGNORED_FILES:
                yield Path(dirpath) / name


def list_class_files(name: str, folder: Path) -> ClassFiles:
    """Image files of one class folder; other files go to `skipped` with a reason."""
    cf = ClassFiles(name, folder)
    for path in _walk(folder):
        ext = path.suffix.lower()
        if ext not in IMAGE_EXTENSIONS:
            cf.skipped.append((str(path), f"not an image file (extension '{ext or 'none'}')"))
            continue
        try:
            check_regular(path)  # stat only: a FIFO or device is never opened (it could block forever)
        except NotRegularFileError as exc:
            cf.skipped.append((str(path), str(exc.strerror)))
            continue
        except OSError:
            pass  # a broken link or a loop: open_image gives the reason
        cf.images.append(path)
    return cf


def scan(root: Path, split: str = "train", classes: list[str] | None = None) -> tuple[Path, list[ClassFiles]]:
    """Validate the layout and list the files of each class (all, or `classes` in that order)."""
    check_root(root)
    folder = resolve_split(root, split)
    found = find_classes(folder)
    if folder != root and split != "train":
        # Labels index class names: a test split with other classes would silently shift them.
        train_names = [n for n, _ in find_classes(resolve_split(root, "train"))]
        names = [n for n, _ in found]
        if names != train_names:
            missing = sorted(set(train_names) - set(names))
            extra = sorted(set(names) - set(train_names))
            raise DataError(
                f"{folder}: class folders differ from {root / 'train'} "
                f"(missing: {', '.join(missing) or '-'}; extra: {', '.join(extra) or '-'})"
            )
    if classes is not None:
        if not classes:
            raise DataError(f"{folder}: the list of classes to keep is empty")
        by_name = dict(found)
        unknown = [c for c in classes if c not in by_name]
        if unknown:
            raise DataError(
                f"{folder}: unknown class name(s) {', '.join(map(repr, unknown))} "
                f"(available: {', '.join(by_name)})"
            )
        if len(set(classes)) != len(classes):
            raise DataError(f"{folder}: class names repeated in {classes}")
        found = [(c, by_name[c]) for c in classes]
    return folder, [list_class_files(n, p) for n, p in found]


# ---------------------------------------------------------------- decoding


@contextlib.contextmanager
def _pil_guard() -> Iterator[None]:
    """Our own size limit instead of PIL's, and never decode truncated files as if whole.

    PIL's bomb check fires inside Image.open, counts pixels whatever their format and names only a
    count; ours (`decoded_bytes` against LIMITS.max_image_bytes) runs right after open, on the header
    size and mode and before any pixel is decoded, and says W x H, mode and size.
    """
    old_max, old_trunc = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
    Image.MAX_IMAGE_PIXELS = None
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = old_max, old_trunc


def pixel_bytes(mode: str) -> int:
    """Bytes per pixel PIL holds for an image of `mode` once decoded."""
    if mode in ("1", "L", "P"):
        return 1
    if mode.startswith(("I;16", "BGR;15", "BGR;16")):
        return 2
    return 4  # RGB and every other multi-band mode are stored in 32 bits, as are I and F


def decoded_bytes(width: int, height: int, mode: str) -> int:
    return width * height * pixel_bytes(mode)


def _too_large(w: int, h: int, mode: str, full: tuple[int, int]) -> str | None:
    need, limit = decoded_bytes(w, h, mode), LIMITS.max_image_bytes
    if need <= limit:
        return None
    mib = lambda n: f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n} bytes"  # noqa: E731
    return (
        f"image too large ({full[0]} x {full[1]}, {mode}: {mib(need)} decoded, over the {mib(limit)} limit; "
        "raise it with --max-image-mb)"
    )


def open_image(path: str | Path, draft_size: int | None = None) -> tuple[Image.Image, ImageInfo]:
    """Open, fully decode and EXIF-orient one image; SkipImage(reason) if it cannot be used."""
    with _pil_guard():
        try:
            fp = open_regular(path)
        except OSError as exc:  # NotRegularFileError: a FIFO, socket or device, never opened
            raise SkipImage(f"cannot read file ({exc.strerror or exc})") from None
        with fp:  # closed on return: the pixels are in memory by then (PIL leaves a given file open)
            try:
                im = Image.open(fp)
            except UnidentifiedImageError:
                raise SkipImage("not an image or unsupported format (cannot identify image file)") from None
            except OSError as exc:
                raise SkipImage(f"cannot read file ({exc.strerror or exc})") from None
            except (ValueError, SyntaxError, EOFError) as exc:  # some plugins fail on bad headers this way
                raise SkipImage(f"corrupt image header ({exc})") from None
            try:
                w, h = im.size
                info = ImageInfo(w, h, im.mode, im.format or "?")
                if draft_size and im.format == "JPEG":
                    # DCT-domain downscaling: a 4000 px photo decodes 8x faster, still >= draft_size.
                    im.draft(None, (draft_size, draft_size))
                reason = _too_large(*im.size, im.mode, (w, h))  # what will be decoded (after any draft)
                if reason:
                    raise SkipImage(reason)
                im.load()  # first frame only for GIF / animated WebP
                try:
                    # Only rotated files pay for exif_transpose (it copies the image even when upright).
                    if im.getexif().get(0x0112, 1) in range(2, 9):
                        oriented = ImageOps.exif_transpose(im)
                        im.close()
                        im = oriented
                except Exception:  # a broken EXIF block: keep the pixels as stored
                    pass
                return im, info
            except SkipImage:
                im.close()
                raise
            except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
                im.close()
                msg = str(exc).strip() or type(exc).__name__
                raise SkipImage(f"corrupt or truncated image ({msg})") from None


def _by_rows(a: np.ndarray, fn: Callable[[np.ndarray], np.ndarray], bands: int | None = None) -> np.ndarray:
    """`fn` applied to blocks of rows of `a` (H x W [x C]) into a uint8 H x W [x bands] array: the float
    temporaries of a conversion never exceed BLOCK_PIXELS pixels, whatever the image size."""
    out = np.empty(a.shape[:2] + ((bands,) if bands else ()), dtype=np.uint8)
    step = max(1, BLOCK_PIXELS // max(1, a.shape[1]))
    for i in range(0, a.shape[0], step):
        out[i : i + step] = fn(a[i : i + step])
    return out


def _to_8bit(im: Image.Image) -> Image.Image:
    """Any PIL mode -> L, RGB or RGBA with 8 bits per channel."""
    mode = im.mode
    if mode in ("L", "RGB", "RGBA"):
        return im
    if mode.startswith("I;16") or mode in ("I", "F"):
        a = np.asarray(im)
        if mode == "F":
            # Float images: [0, 1] if they fit, else taken as 0-255.
            scale = (lambda b: b * 255.0) if a.size and np.nanmax(a) <= 1.0 else (lambda b: b)
        elif mode == "I":
            # 32-bit int: PIL opens some 16-bit files as "I"; values over 255 mean a 16-bit range.
            scale = (lambda b: b / 257.0) if a.size and a.max() > 255 else (lambda b: b)
        else:
            scale = lambda b: b / 257.0  # noqa: E731 - 65535 -> 255 exactly

        def to_uint8(b: np.ndarray) -> np.ndarray:
            return np.clip(np.nan_to_num(scale(b.astype(np.float64))) + 0.5, 0, 255).astype(np.uint8)

        return Image.fromarray(_by_rows(a, to_uint8), "L")
    if mode in ("LA", "La", "PA", "RGBa") or (mode == "P" and "transparency" in im.info):
        return im.convert("RGBA")
    if mode in ("1", "L;16"):
        return im.convert("L")
    return im.convert("RGB")  # P, CMYK, YCbCr, LAB, HSV, ...


def crop_box(width: int, height: int, crop: int | None = None) -> tuple[float, float, float, float]:
    """The centred square an image is resized from: its shorter side, or the centre `crop` x `crop` source
    pixels (SAR chips: the target is in the centre and the rest is clutter) when the image is that large."""
    side = min(width, height)
    if crop is not None:
        side = min(side, crop)
    left, top = (width - side) / 2, (height - side) / 2
    return left, top, left + side, top + side


def convert_image(im: Image.Image, resolution: int, channels: int, crop: int | None = None) -> np.ndarray:
    """PIL image -> channels x resolution x resolution uint8 (the `crop_box` square, resized)."""
    im = _to_8bit(im)
    if im.mode == "RGBA":
        # Composite on black: premultiply the colour by alpha.
        def premultiply(b: np.ndarray) -> np.ndarray:
            b = b.astype(np.uint16)
            return ((b[..., :3] * b[..., 3:4] + 127) // 255).astype(np.uint8)

        im = Image.fromarray(_by_rows(np.asarray(im), premultiply, 3), "RGB")
    im = im.convert("L" if channels == 1 else "RGB")
    w, h = im.size
    box = crop_box(w, h, crop)
    if (w, h) != (resolution, resolution):
        # Crop box and resize in one resampling step; PIL's resize antialiases when reducing.
        im = im.resize((resolution, resolution), Image.Resampling.BICUBIC, box=box, reducing_gap=3.0)
    arr = np.asarray(im, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def decode_file(path: str | Path, resolution: int, channels: int, crop: int | None = None) -> np.ndarray:
    """One image file -> channels x resolution x resolution uint8; SkipImage(reason) if unusable."""
    # A crop counts in source pixels: no DCT-domain downscaling, which would change what they are.
    im, _ = open_image(path, draft_size=resolution if crop is None else None)
    try:
        return convert_image(im, resolution, channels, crop)
    except (OSError, ValueError, MemoryError) as exc:
        raise SkipImage(f"cannot convert image ({exc})") from None
    finally:
        im.close()


# ---------------------------------------------------------------- loading


@dataclass
class FolderImages:
    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    files: list[str]
    skipped: list[tuple[str, str]]
    folder: Path


def load_imagefolder(
    root: str | Path,
    *,
    split: str = "train",
    resolution: int = 32,
    channels: int = 1,
    classes: list[str] | None = None,
    strict: bool = False,
    progress: bool = False,
    crop: int | None = None,
) -> FolderImages:
    """Decode every image of an ImageFolder into one uint8 tensor."""
    root = Path(root)
    folder, class_files = scan(root, split, classes)
    skipped: list[tuple[str, str]] = []
    jobs: list[tuple[Path, int]] = []
    for label, cf in enumerate(class_files):
        if strict and cf.skipped:
            f, reason = cf.skipped[0]
            raise DataError(f"{f}: {reason} (strict mode: remove it or turn strict off)")
        skipped += cf.skipped
        if not cf.images:
            raise DataError(f"{cf.folder}: class folder '{cf.name}' has no images")
        jobs += [(p, label) for p in cf.images]

    check_memory(
        len(jobs) * channels * resolution * resolution,
        f"{folder}: {len(jobs)} images at {resolution} px x {channels} channel(s)",
        "lower --resolution, or train on fewer classes (--classes)",
    )
    out = np.empty((len(jobs), channels, resolution, resolution), dtype=np.uint8)
    labels: list[int] = []
    files: list[str] = []
    it: Iterator[tuple[Path, int]] | list[tuple[Path, int]] = jobs
    if progress and len(jobs) > PROGRESS_MIN_FILES:
        from vaemsgan.utils.progress import progress_bar

        it = progress_bar(jobs, desc=f"loading {folder}", unit="img", leave=False)
    for path, label in it:
        try:
            out[len(files)] = decode_file(path, resolution, channels, crop)
        except SkipImage as exc:
            if strict:
                raise DataError(f"{path}: {exc} (strict mode: remove it or turn strict off)") from None
            skipped.append((str(path), str(exc)))
            continue
        files.append(str(path))
        labels.append(label)

    label_t = torch.tensor(labels, dtype=torch.int64)
    counts = torch.bincount(label_t, minlength=len(class_files)).tolist()
    for cf, n in zip(class_files, counts, strict=True):
        if n == 0:
            bad = [r for f, r in skipped if Path(f).is_relative_to(cf.folder)]
            raise DataError(
                f"{cf.folder}: class folder '{cf.name}' has no usable images "
                f"({len(bad)} skipped, e.g. {bad[0] if bad else '-'})"
            )
    images = torch.from_numpy(out[: len(files)].copy() if len(files) < len(jobs) else out)
    return FolderImages(images, label_t, [cf.name for cf in class_files], files, skipped, folder)
