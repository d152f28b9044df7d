"""Configuration: typed dataclasses that round-trip to YAML and are stored inside every checkpoint.

A config is plain data. Presets (`presets.py`) are named overrides of it; the CLI applies options on top.
Every field is checked (type, range, allowed values) the moment it is set by `apply_overrides`, so a bad
YAML key or value gives one line naming the key and what is allowed. Rules that tie fields together
(`validate`) run once, when a config is complete: in `Config.from_dict`, `presets.build_config` and the
CLI after its last option, so the order of overrides never matters.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vaemsgan.config_values import check_value
from vaemsgan.errors import ConfigError


def _opt(
    default: Any,
    *,
    choices: tuple | None = None,
    lo: float | None = None,
    hi: float | None = None,
    help: str = "",
) -> Any:
    meta = {"choices": choices, "lo": lo, "hi": hi, "help": help}
    if isinstance(default, (list, tuple, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


D_KERNELS = (1, 3, 5, 7, 9)  # critic branch kernel sizes


@dataclass
class DataConfig:
    source: str = _opt("fashion-mnist-mini", help="ImageFolder path, 'fashion-mnist' or 'fashion-mnist-mini'")
    data_dir: str | None = _opt(None, help="folder of the Fashion-MNIST idx .gz files")
    resolution: int = _opt(32, lo=16, hi=256, help="power of two from 16 to 256")
    channels: int = _opt(1, choices=(1, 3))
    per_class: int | None = _opt(None, lo=1, hi=10**9, help="seeded subset of N images per class")
    subset_seed: int | None = _opt(
        None, lo=0, hi=2**32 - 1, help="seed of the per_class subset (None = train.seed)"
    )
    classes: list[str] | None = _opt(None, help="class names to keep")
    strict: bool = _opt(False, help="fail on non-image files instead of skipping them")
    crop: int | None = _opt(
        None,
        lo=4,
        hi=1 << 15,
        help="centre crop of N x N source pixels before resizing (SAR chips: the target is in the centre; "
        "None = the whole image)",
    )


@dataclass
class ModelConfig:
    latent_dim: int = _opt(128, lo=2, hi=4096)
    conditional: bool = _opt(True, help="class-conditional generator and projection critic")
    g_width: int = _opt(
        16, lo=4, hi=1024, help="generator channels at full resolution (doubling per level down)"
    )
    g_kernel: int = _opt(5, choices=(3, 4, 5, 7), help="transposed-convolution kernel of the generator")
    g_upsample: str = _opt(
        "transpose",
        choices=("transpose", "nearest"),
        help="how the generator doubles its size: a g_kernel transposed convolution of stride 2, or "
        "nearest-neighbour upsampling and a 3x3 convolution (no transposed-convolution pattern: CIFAR-10 "
        "samples of `default` put 2x the real images' spectral power on period-4 lines, docs/RESULTS.md)",
    )
    g_max_width: int = _opt(512, lo=8, hi=4096)
    e_width: int = _opt(16, lo=4, hi=1024, help="encoder channels at full resolution")
    use_encoder: bool = _opt(True, help="VAE encoder on (off: a plain GAN with the same generator)")
    d_width: int = _opt(16, lo=4, hi=1024, help="critic channels at full resolution")
    d_max_width: int = _opt(512, lo=8, hi=4096)
    d_kernels: list[int] = _opt([3, 5, 7], help="kernel sizes of the parallel branches in each critic block")
    d_norm: str = _opt(
        "layer",
        choices=("batch", "layer", "instance", "none", "spectral"),
        help="critic normalisation per branch; spectral = spectral normalisation of every critic weight",
    )
    pooling: str = _opt(
        "none",
        choices=("none", "avg", "max"),
        help="critic downsampling: none = strided convolution, or avg/max pooling",
    )
    scales: int = _opt(2, lo=1, hi=6, help="number of image scales the critic judges (full, 1/2, 1/4 ...)")
    d_coarse_width: float = _opt(
        1.0, lo=0.1, hi=1.0, help="width of each coarser scale's critic relative to the next finer one"
    )
    d_min_resolution: int = _opt(4, choices=(4, 8), help="critic blocks stop at this resolution")
    fusion: str = _opt(
        "concat",
        choices=("concat", "sum"),
        help="how branch features are fused: concatenate + 1x1 conv, or summed",
    )
    feature_layer: int = _opt(
        -2, lo=-8, hi=8, help="critic block whose features the reconstruction loss compares"
    )
    width_resolution: int = _opt(
        0,
        lo=0,
        hi=256,
        help="the resolution g_width/d_width/e_width are the full-resolution widths of; at larger images the "
        "full-resolution widths halve per doubling (thin high-resolution layers, as FastGAN: the cost grows "
        "with the number of levels, not with the pixels); 0 = at any resolution",
    )
    d_hires_kernels: list[int] = _opt(
        [],
        help="kernel sizes of the critic blocks whose input is larger than width_resolution (the thin "
        "high-resolution blocks; [] = d_kernels)",
    )
    d_strided_stem: bool = _opt(
        False,
        help="a critic whose input is larger than width_resolution starts with a 4x4 stride-2 convolution "
        "instead of a 3x3 convolution and a block at full resolution: every pixel is seen, once and cheaply "
        "(FastGAN's critic also halves its input at once); the coarser scales keep their stems",
    )


@dataclass
class LossConfig:
    adversarial: str = _opt(
        "wgan-gp", choices=("wgan-gp", "hinge", "ns", "none"), help="none = no critic: the VAE alone"
    )
    gp_weight: float = _opt(10.0, lo=0.0, hi=1e6, help="gradient-penalty weight (wgan-gp)")
    gp_every: int = _opt(
        1, lo=1, hi=64, help="lazy regularisation: penalty every k critic steps, scaled by k"
    )
    gp_every_hires: int = _opt(
        0,
        lo=0,
        hi=64,
        help="gp_every for images larger than model.width_resolution (0 = gp_every): the penalty's double "
        "backward is a larger share of a thin high-resolution step (StyleGAN2 regularises every 16 batches)",
    )
    r1_gamma: float = _opt(0.0, lo=0.0, hi=1e6, help="R1 penalty weight (ns / hinge)")
    drift: float = _opt(1e-3, lo=0.0, hi=1e6, help="epsilon * E[D(x)^2], keeps WGAN critic scores near zero")
    kl_weight: float = _opt(
        0.1, lo=0.0, hi=1e6, help="weight of KL(q(z|x) || N(0, I)), per latent dimension mean"
    )
    feature_recon_weight: float = _opt(
        1.0, lo=0.0, hi=1e6, help="weight of the feature-wise reconstruction loss"
    )
    pixel_recon_weight: float = _opt(
        1.0, lo=0.0, hi=1e6, help="weight of an optional pixel reconstruction loss"
    )
    pixel_loss: str = _opt("l1", choices=("l1", "l2"))
    gamma: float = _opt(
        1.0, lo=0.0, hi=1e6, help="decoder weight of the reconstruction loss relative to the GAN term"
    )
    rec_as_fake: bool = _opt(False, help="the critic also sees reconstructions as fakes (Larsen)")
    recon_fraction: float = _opt(
        1.0, lo=0.01, hi=1.0, help="share of each batch reconstructed through the encoder (VAE terms)"
    )
    class_weight: float = _opt(
        0.0,
        lo=0.0,
        hi=1e6,
        help="auxiliary classifier on the critic (AC-GAN): cross-entropy on real images for the critic, "
        "on fakes for the generator (0 = projection conditioning only)",
    )


# A step count that never binds: the runs of `reproduce` set it so that their time budget ends them.
UNCAPPED_STEPS = 10**9


@dataclass
class TrainConfig:
    batch_size: int = _opt(64, lo=2, hi=65536)
    steps: int = _opt(2000, lo=1, hi=10**9, help="generator steps")
    n_critic: int = _opt(1, lo=1, hi=20, help="critic steps per generator step")
    lr_g: float = _opt(2e-4, lo=0.0, hi=1.0)
    lr_d: float = _opt(2e-4, lo=0.0, hi=1.0)
    lr_e: float = _opt(2e-4, lo=0.0, hi=1.0)
    lr_milestones: list[int] = _opt(
        [],
        help="generator steps at which every learning rate (G, D, E) is multiplied by lr_gamma, as torch's "
        "MultiStepLR does (empty = constant rates)",
    )
    lr_gamma: float = _opt(0.5, lo=0.0, hi=1.0, help="factor applied at each of lr_milestones")
    beta1: float = _opt(0.0, lo=0.0, hi=0.999)
    beta2: float = _opt(0.9, lo=0.0, hi=0.9999)
    ema_decay: float = _opt(0.999, lo=0.0, hi=1.0, help="EMA of the generator used for sampling (0 = off)")
    ema_start: int = _opt(100, lo=0, hi=10**9, help="steps before the EMA starts averaging")
    augment: str = _opt("", help="DiffAugment policy, e.g. 'color,translation,cutout' (empty = off)")
    ada_target: float = _opt(0.0, lo=0.0, hi=1.0, help="ADA target of sign(D(real)); 0 = fixed probability 1")
    seed: int = _opt(0, lo=0, hi=2**32 - 1)
    log_every: int = _opt(50, lo=1, hi=10**9)
    sample_every: int = _opt(500, lo=1, hi=10**9)
    checkpoint_every: int = _opt(1000, lo=1, hi=10**9)
    keep: int = _opt(3, lo=1, hi=1000, help="checkpoints kept")
    threads: int = _opt(0, lo=0, hi=1024, help="intra-op threads (0 = physical cores)")
    channels_last: bool = _opt(
        True,
        help="networks and batches in channels-last memory layout (NHWC): ~1.2x the steps per CPU-second of "
        "the default preset on an AVX2 CPU (oneDNN convolutions); the same model either way",
    )
    amp: str = _opt(
        "off",
        choices=("off", "bf16", "fp16"),
        help="mixed precision on CUDA (bf16 autocast, or fp16 with a gradient scaler); ignored on CPU",
    )
    nan_patience: int = _opt(
        5,
        lo=1,
        hi=1000,
        help="consecutive steps with NaN/Inf losses or gradients (skipped) before a rollback",
    )
    nan_rollbacks: int = _opt(
        3,
        lo=0,
        hi=100,
        help="rollbacks to the last good state (learning rates halved each time) before stopping",
    )
    monitor_every: int = _opt(
        500,
        lo=0,
        hi=10**9,
        help="every N steps: KID, coverage, diversity, near-copies on a fixed subset; keeps RUN/best.pt "
        "and watches for collapse (0 = off; ~3% of training time at 500)",
    )
    collapse_action: str = _opt(
        "rollback",
        choices=("rollback", "stop", "warn"),
        help="when the monitor sees a collapse (KID above 3x its best twice in a row, once the run has reached "
        "quality: a KID at most 1/4 of the first check's with coverage 0.25, or coverage 0.5): roll back to best.pt with halved "
        "learning rates (at most nan_rollbacks times, then stop; not twice to the same best.pt: training then "
        "goes on without a rollback), stop, or only warn",
    )
    best_metric: str = _opt(
        "kid", choices=("kid", "coverage", "diversity"), help="monitor value that picks RUN/best.pt"
    )
    monitor_classifier: str = _opt(
        "quick",
        choices=("quick", "small", "sar", "cifar"),  # append only: monitor/space codes are their indices
        help="the classifier whose features the monitor (and the `classifier` curation filter) measures in: "
        "'quick' (150 steps, ~10 s) or a judge preset of evaluation.classifier (`sar` for SAR chips: the "
        "quick one is 72% right on MSTAR and missed a collapse there; ~3 CPU-minutes once, cached)",
    )
    snapshot_minutes: list[float] = _opt(
        [],
        help="training CPU-minutes at which RUN/snapshots/cpu-<M>min.pt is kept (learning curves from one run)",
    )


@dataclass
class Config:
    # A bare Config() holds the dataclass defaults: the 'base' preset (the 'default' preset overrides them).
    preset: str = "base"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    # ----- conversion -----
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        """The dataclass defaults <- the values in `d`; validated as a whole."""
        cfg = cls()
        apply_overrides(cfg, d)
        validate(cfg)
        return cfg

    @classmethod
    def from_yaml(cls, text: str) -> Config:
        return cls.from_dict(parse_yaml(text))

    @classmethod
    def load(cls, path: str | Path) -> Config:
        raw = read_yaml(path)
        try:
            return cls.from_dict(raw)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from exc


def parse_yaml(text: str) -> dict[str, Any]:
    """YAML text -> the raw mapping of sections (only the keys it sets)."""
    try:
        d = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config is not valid YAML: {str(exc).splitlines()[0]}") from exc
    except (ValueError, TypeError, AttributeError, RecursionError) as exc:
        # PyYAML's constructors fail this way on well-formed but impossible values ('2001-13-01', '!!int x').
        raise ConfigError(f"config is not valid YAML: {exc}") from exc
    if not isinstance(d, dict):
        raise ConfigError("config must be a mapping of sections (data, model, loss, train)")
    return d


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A config file's raw mapping. FIFOs, sockets and devices are refused without blocking, and the
    size is checked before reading (limits.LIMITS.max_config_bytes, `--max-config-kb`)."""
    from vaemsgan.limits import LIMITS
    from vaemsgan.utils.io import FileTooLargeError, read_bounded

    path = Path(path)
    try:
        text = read_bounded(
            path, LIMITS.max_config_bytes, "config file", "; raise the limit with --max-config-kb"
        ).decode("utf-8")
    except FileTooLargeError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror or exc})") from exc
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: config is not a text file") from None
    try:
        return parse_yaml(text)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


SECTIONS = ("data", "model", "loss", "train")


def apply_overrides(cfg: Config, overrides: dict[str, Any]) -> Config:
    """Set nested values from {'model': {'d_norm': 'batch'}, ...} or dotted keys {'model.d_norm': 'batch'}.

    Each value is checked on its own at once (type, range, allowed values); the rules between fields are
    not, since a later override may still fix them: call `validate(cfg)` once the config is complete.
    """
    for key, value in overrides.items():
        if not isinstance(key, str):
            raise ConfigError(f"config key {key!r} must be a name (data, model, loss, train, preset)")
        if "." in key:
            section, name = key.split(".", 1)
            apply_overrides(cfg, {section: {name: value}})
            continue
        if key == "preset":
            cfg.preset = str(value)
            continue
        if key == "version":  # written by checkpoints, informative only
            continue
        if key not in SECTIONS:
            raise ConfigError(f"unknown config section '{key}' (allowed: {', '.join(SECTIONS)}, preset)")
        if not isinstance(value, dict):
            raise ConfigError(f"config section '{key}' must be a mapping")
        section = getattr(cfg, key)
        fields = {f.name: f for f in dataclasses.fields(section)}
        for name, v in value.items():
            if name not in fields:
                raise ConfigError(f"unknown config key '{key}.{name}' (allowed: {', '.join(fields)})")
            setattr(section, name, check_value(f"{key}.{name}", type(section), fields[name], v))
    return cfg


def validate(cfg: Config) -> Config:
    """Check a complete config: every key again (values may have been assigned directly), then the rules
    between keys. Returns `cfg`; ConfigError (one line) on the first problem."""
    for section_name in SECTIONS:
        section = getattr(cfg, section_name)
        for f in dataclasses.fields(section):
            setattr(
                section,
                f.name,
                check_value(f"{section_name}.{f.name}", type(section), f, getattr(section, f.name)),
            )
    res = cfg.data.resolution
    if cfg.loss.adversarial == "none" and cfg.loss.feature_recon_weight > 0:
        raise ConfigError(
            "config key 'loss.feature_recon_weight' must be 0 when 'loss.adversarial' is none "
            "(the feature-wise reconstruction needs a critic)"
        )
    if not cfg.model.use_encoder and cfg.loss.adversarial == "none":
        raise ConfigError(
            "config: with 'model.use_encoder' false and 'loss.adversarial' none nothing is trained"
        )
    if res // (2 ** (cfg.model.scales - 1)) < cfg.model.d_min_resolution:
        raise ConfigError(
            f"config key 'model.scales' = {cfg.model.scales}: at resolution {res} the smallest scale would be "
            f"below {cfg.model.d_min_resolution} px (at most {max_scales(res, cfg.model.d_min_resolution)})"
        )
    return cfg


def max_scales(resolution: int, min_res: int = 4) -> int:
    n = 1
    while resolution // (2**n) >= min_res:
        n += 1
    return n
