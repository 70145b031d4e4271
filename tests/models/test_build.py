"""Networks against the authors' golden vectors, key listings, and the errors for weights that do not fit."""

from __future__ import annotations

import copy
import math
import os
import pickle

import pytest
import torch
from torch import nn

from dymn_cli.errors import WeightsError
from dymn_cli.models import common, dymn
from dymn_cli.models.build import DyMN, ModelSpec, build_model, create_model, infer_spec
from tests.support import GOLDEN

GOLDEN_MODELS = ("dymn04", "dymn10", "mn04")
LISTINGS = {
    "dymn04": ("dymn", 0.4),
    "dymn10": ("dymn", 1.0),
    "dymn20": ("dymn", 2.0),
    "mn01": ("mn", 0.1),
    "mn02": ("mn", 0.2),
    "mn04": ("mn", 0.4),
    "mn05": ("mn", 0.5),
    "mn10": ("mn", 1.0),
    "mn20": ("mn", 2.0),
    "mn30": ("mn", 3.0),
    "mn40": ("mn", 4.0),
}
EMBEDDING_DIMS = {"dymn04": 384, "dymn10": 960, "mn04": 384}


def _f64_cases(name: str) -> list[str]:
    return ["f64_T1000", "f64_T313", "f64_T64"] + (["f64_T9"] if name.startswith("dymn") else [])


F64_PARAMS = [(name, case) for name in GOLDEN_MODELS for case in _f64_cases(name)]


@pytest.fixture(scope="module", autouse=True)
def share_cores_between_workers():
    """Under pytest-xdist, give each worker its share of the cores: oversubscribed OpenMP threads spin at
    every barrier, and the float64 convolutions have thousands of small parallel regions."""
    threads = torch.get_num_threads()
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    torch.set_num_threads(max(1, threads // workers))
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def state_dicts() -> dict[str, dict[str, torch.Tensor]]:
    return {name: torch.load(GOLDEN / f"{name}_seed0.pt") for name in GOLDEN_MODELS}


@pytest.fixture(scope="module")
def cases() -> dict[str, dict[str, dict[str, torch.Tensor]]]:
    return {name: torch.load(GOLDEN / f"{name}_cases.pt") for name in GOLDEN_MODELS}


@pytest.fixture(scope="module")
def models(state_dicts) -> dict[str, nn.Module]:
    return {name: build_model(sd) for name, sd in state_dicts.items()}


@pytest.fixture(scope="module")
def models64(models) -> dict[str, nn.Module]:
    return {name: copy.deepcopy(model).double() for name, model in models.items()}


@pytest.fixture(scope="module")
def mels() -> torch.Tensor:
    frontend = torch.load(GOLDEN / "frontend.pt")
    return torch.cat([frontend["mels"][k] for k in sorted(frontend["mels"])])[:, None]


def _read_listing(name: str) -> list[tuple[str, tuple[int, ...], str]]:
    entries = []
    for line in (GOLDEN / f"{name}_state_dict.txt").read_text().splitlines():
        key, shape, dtype = line.split("\t")
        dims = tuple(int(d) for d in shape.strip("()").split(",") if d.strip())
        entries.append((key, dims, dtype))
    return entries


def _listing_of(state_dict: dict[str, torch.Tensor]) -> list[tuple[str, tuple[int, ...], str]]:
    return [(k, tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in state_dict.items()]


def _meta_state_dict(entries: list[tuple[str, tuple[int, ...], str]]) -> dict[str, torch.Tensor]:
    """A state dict with the listed names, shapes and dtypes, without allocating memory."""
    return {k: torch.empty(shape, dtype=getattr(torch, dtype), device="meta") for k, shape, dtype in entries}


# --- golden outputs ---------------------------------------------------------------------------------------


# The default path, and the alternatives the default was chosen over (see benchmarks/model_speed.py):
# the contiguous (NCHW) layout; DyMN blocks with the batch folded into convolution groups; MN layers
# all batched, all one sample at a time, or split where the batch's maps exceed 1 MiB (here: some are).
NCHW = {"memory_format": torch.contiguous_format}
DYMN_VARIANTS = {
    "default": {},
    "nchw": NCHW,
    "batched": {"per_sample": False},
    "batched-nchw": {"per_sample": False, **NCHW},
}
MN_VARIANTS = {
    "default": {},
    "nchw": NCHW,
    "batched": {"max_batch_map_bytes": math.inf},
    "per-sample": {"max_batch_map_bytes": 0},
    "split-above-1MiB": {"max_batch_map_bytes": 2**20, **NCHW},
}


def _variants(name: str) -> dict[str, dict[str, object]]:
    return DYMN_VARIANTS if name.startswith("dymn") else MN_VARIANTS


def _configured(model: nn.Module, name: str, variant: str) -> nn.Module:
    model = copy.copy(model)  # shares the parameters; only the attributes below change
    for attribute, value in _variants(name)[variant].items():
        assert hasattr(model, attribute)
        setattr(model, attribute, value)
    return model


@pytest.mark.parametrize(("name", "variant"), [(n, v) for n in GOLDEN_MODELS for v in _variants(n)])
def test_float32_window_matches_authors(name, variant, models, cases, mels):
    with torch.inference_mode():
        logits, embedding = _configured(models[name], name, variant)(mels)
    expected = cases[name]["f32_T1000"]
    assert logits.shape == (3, 527) and embedding.shape == (3, EMBEDDING_DIMS[name])
    assert logits.dtype == embedding.dtype == torch.float32
    torch.testing.assert_close(logits, expected["logits"], rtol=0, atol=1e-3)
    torch.testing.assert_close(embedding, expected["embedding"], rtol=0, atol=1e-3)


@pytest.mark.parametrize(("name", "case", "variant"), [(n, c, v) for n, c in F64_PARAMS for v in _variants(n)])
def test_float64_matches_authors(name, case, variant, models64, cases):
    expected = cases[name][case]
    with torch.inference_mode():
        logits, embedding = _configured(models64[name], name, variant)(expected["input"])
    assert logits.dtype == embedding.dtype == torch.float64
    for got, want in ((logits, expected["logits"]), (embedding, expected["embedding"])):
        assert got.shape == want.shape
        scale = want.abs().max().item()
        torch.testing.assert_close(got, want, rtol=0, atol=1e-7 * scale)


@pytest.mark.parametrize("family", ["dymn", "mn"])
@pytest.mark.parametrize("frames", [1, 2, 9])
def test_short_inputs_and_batch_independence(family, frames):
    """Any T >= 1 runs; each sample's output depends on that sample only (the dynamic parts are per sample)."""
    torch.manual_seed(0)
    model = create_model(family=family, width=0.4).eval()
    x = torch.randn(3, 1, 128, frames)
    with torch.inference_mode():
        logits, embedding = model(x)
        single_logits, single_embedding = model(x[1:2])
    assert logits.shape == (3, 527) and embedding.shape == (3, model.embedding_dim)
    torch.testing.assert_close(single_logits, logits[1:2], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(single_embedding, embedding[1:2], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("family", ["dymn", "mn"])
def test_default_cpu_path_feeds_convolutions_channels_last(family, monkeypatch):
    """A speed property: oneDNN falls back to slow NCHW kernels for an input whose strides do not read as
    channels-last, and a stray view of a one-sample tensor is enough (it rewrites the batch stride)."""
    seen = []
    conv2d = common.conv2d

    def spy(x, weight, *args, **kwargs):
        seen.append((tuple(x.shape), x.stride()))
        return conv2d(x, weight, *args, **kwargs)

    for module in (common, dymn):  # every convolution of both families goes through common.conv2d
        monkeypatch.setattr(module, "conv2d", spy)
    model = create_model(family=family, width=0.4)
    with torch.inference_mode():
        model(torch.randn(2, 1, 128, 40))
    assert len(seen) > 40
    for (b, c, f, t), stride in seen:
        assert stride == (c * f * t, 1, t * c, c), f"input {[b, c, f, t]} with strides {stride}"


@pytest.mark.parametrize("name", ["dymn04", "mn04"])
def test_folded_constants_follow_the_parameters(name, state_dicts, cases, mels):
    """BatchNorm folding and the merged heads are computed once; every way of changing the parameters
    afterwards (a load, a load with assign=True, a dtype change, an in-place edit) is seen."""
    expected = cases[name]["f32_T1000"]["logits"]
    torch.manual_seed(1)
    model = create_model(family=name[:-2], width=0.4)
    with torch.inference_mode():
        random_logits, _ = model(mels)  # derives the constants of the random weights
        model.load_state_dict(state_dicts[name])
        torch.testing.assert_close(model(mels)[0], expected, rtol=0, atol=1e-3)
        other = create_model(family=name[:-2], width=0.4)
        other.load_state_dict(model.state_dict(), assign=True)
        other(mels)
        other.load_state_dict(
            {k: v.clone() for k, v in create_model(family=name[:-2], width=0.4).state_dict().items()}, assign=True
        )
        assert not torch.allclose(other(mels)[0], expected, atol=1e-3)
        model64 = copy.deepcopy(model).double()
        assert model64(mels.double())[0].dtype == torch.float64
        torch.testing.assert_close(model64(mels.double())[0].float(), expected, rtol=0, atol=1e-3)
    norm = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    with torch.no_grad():
        norm.running_var.mul_(4.0)  # an in-place edit of a buffer
    with torch.inference_mode():
        changed, _ = model(mels)
    assert not torch.allclose(changed, expected, atol=1e-3)
    assert not torch.allclose(random_logits, expected, atol=1e-3)
    # .double() puts new buffer objects in place: an in-place edit after it is still seen.
    with torch.no_grad():
        norm.running_var.div_(4.0)
    model64 = model.double()
    norm64 = next(m for m in model64.modules() if isinstance(m, nn.BatchNorm2d))
    with torch.inference_mode():
        torch.testing.assert_close(model64(mels.double())[0].float(), expected, rtol=0, atol=1e-3)
    with torch.no_grad():
        norm64.running_var.mul_(4.0)
    with torch.inference_mode():
        assert not torch.allclose(model64(mels.double())[0].float(), expected, atol=1e-3)


@pytest.mark.parametrize("name", ["dymn04", "mn04"])
def test_a_network_pickles_and_its_copy_derives_its_own_constants(name, models, cases, mels):
    with torch.inference_mode():
        models[name](mels)  # constants derived
    copy_ = pickle.loads(pickle.dumps(models[name]))
    with torch.inference_mode():
        torch.testing.assert_close(copy_(mels)[0], cases[name]["f32_T1000"]["logits"], rtol=0, atol=1e-3)


@pytest.mark.parametrize(
    ("in_channels", "out_channels", "kernel", "stride", "groups"),
    [(16, 64, 1, 1, 1), (24, 24, 3, 2, 24), (40, 40, 5, 1, 40), (1, 16, 3, 2, 1), (8, 12, 1, 1, 4)],
)
@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format])
def test_conv2d_equals_torchs(in_channels, out_channels, kernel, stride, groups, layout):
    """common.conv2d takes oneDNN's path for float32 on the CPU (faster for 1x1 on one thread): same
    result and layout as F.conv2d, whose path float64 and autocast keep."""
    torch.manual_seed(0)
    x = torch.randn(2, in_channels, 20, 30).contiguous(memory_format=layout)
    weight, bias = torch.randn(out_channels, in_channels // groups, kernel, kernel), torch.randn(out_channels)
    args = {"stride": stride, "padding": (kernel - 1) // 2, "groups": groups}
    with torch.inference_mode():
        ours, theirs = common.conv2d(x, weight, bias, **args), torch.nn.functional.conv2d(x, weight, bias, **args)
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-4)
        assert ours.stride() == theirs.stride()
        torch.testing.assert_close(
            common.conv2d(x.double(), weight.double(), None, **args),
            torch.nn.functional.conv2d(x.double(), weight.double(), None, **args),
        )
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert common.conv2d(x, weight, bias, **args).dtype == torch.bfloat16


# --- names, shapes, specs --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", LISTINGS)
def test_state_dict_listing_is_reproduced(name):
    family, width = LISTINGS[name]
    with torch.device("meta"):
        model = create_model(family=family, width=width, num_classes=527)
    assert _listing_of(model.state_dict()) == _read_listing(name)


@pytest.mark.parametrize("name", LISTINGS)
def test_infer_spec_from_listing(name):
    family, width = LISTINGS[name]
    spec = infer_spec(_meta_state_dict(_read_listing(name)))
    assert spec == ModelSpec(family=family, width=width, num_classes=527)
    assert spec.name == name


def test_embedding_dim_and_class_count():
    with torch.device("meta"):
        dims = {w: create_model(family="dymn", width=w).embedding_dim for w in (0.4, 1.0, 2.0)}
        model = create_model(family="mn", width=1.0, num_classes=10)
    assert dims == {0.4: 384, 1.0: 960, 2.0: 1920}
    assert model.num_classes == 10
    assert infer_spec(model.state_dict()) == ModelSpec(family="mn", width=1.0, num_classes=10)


@pytest.mark.parametrize("name", GOLDEN_MODELS)
def test_golden_checkpoint_loads_strictly(name, state_dicts, models):
    model = models[name]
    assert not model.training
    assert model.embedding_dim == EMBEDDING_DIMS[name] and model.num_classes == 527
    loaded = model.state_dict()
    assert list(loaded) == list(state_dicts[name])
    assert all(torch.equal(loaded[k], v) for k, v in state_dicts[name].items())


# --- weights that do not fit -----------------------------------------------------------------------------


def test_foreign_state_dict_is_rejected():
    foreign = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2)).state_dict()
    with pytest.raises(WeightsError, match="not a DyMN or MobileNetV3 state dict.*'0.weight'.*expected keys"):
        build_model(foreign)
    with pytest.raises(WeightsError, match="expected a state dict"):
        infer_spec([torch.zeros(1)])


def test_wrapped_state_dicts_get_a_hint(state_dicts):
    prefixed = {f"module.{k}": v for k, v in state_dicts["mn04"].items()}
    with pytest.raises(WeightsError, match="'module.'"):
        build_model(prefixed)
    with pytest.raises(WeightsError, match="training checkpoint"):
        infer_spec({"epoch": 3, "model": state_dicts["mn04"]})


def test_truncated_state_dict_is_rejected(state_dicts):
    truncated = dict(state_dicts["dymn04"])
    del truncated["layers.7.depth_act.init_v"]
    with pytest.raises(WeightsError, match=r"dymn04 .*missing 1 entry \('layers.7.depth_act.init_v'\)"):
        build_model(truncated)
    headless = {k: v for k, v in state_dicts["dymn04"].items() if not k.startswith("classifier.5")}
    with pytest.raises(WeightsError, match="without 'classifier.5.weight'"):
        build_model(headless)


def test_wrong_shapes_and_extra_keys_are_rejected(state_dicts):
    changed = dict(state_dicts["mn04"])
    changed["features.3.block.1.0.weight"] = torch.zeros(72, 1, 5, 5)
    changed["features.99.weight"] = torch.zeros(1)
    expected = (
        r"unexpected 1 entry \('features.99.weight'\)"
        r".*wrong shape in 1 entry \(features.3.block.1.0.weight \[72, 1, 5, 5\] \(expected \[32, 1, 3, 3\]\)"
    )
    with pytest.raises(WeightsError, match=expected):
        build_model(changed)


def test_unknown_width_is_rejected():
    with torch.device("meta"):
        state_dict = create_model(family="mn", width=0.75).state_dict()
    with pytest.raises(WeightsError, match="unsupported width or variant.*features.0.0.weight"):
        infer_spec(state_dict)


def test_fully_convolutional_head_is_rejected():
    with torch.device("meta"):
        state_dict = {
            k: v for k, v in create_model(family="mn", width=1.0).state_dict().items() if not k.startswith("classifier")
        }
    state_dict["classifier.0.weight"] = torch.empty(527, 960, 1, 1, device="meta")
    with pytest.raises(WeightsError, match="not the MLP head"):
        infer_spec(state_dict)


def test_create_model_is_keyword_only():
    with pytest.raises(TypeError):
        create_model("dymn", 1.0)  # type: ignore[misc]
    assert isinstance(create_model(family="dymn", width=0.4), DyMN)
