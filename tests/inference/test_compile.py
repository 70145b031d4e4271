"""`--compile`: the network must trace under torch.compile (a full compile takes minutes on the CPU,
so the tests trace with the eager backend, which runs dynamo's tracing and fake tensors, not codegen)."""

import torch

from dymn_cli.models.build import build_model
from dymn_cli.models.checkpoints import load_checkpoint


def test_the_network_traces_under_torch_compile(golden_dir):
    """The oneDNN convolution that `models.common.conv2d` calls on the CPU has no fake-tensor kernel, so
    the helper must step aside while dynamo traces."""
    model = build_model(load_checkpoint(golden_dir / "dymn04_seed0.pt")).eval()
    x = torch.randn(2, 1, 128, 100, generator=torch.Generator().manual_seed(0))
    try:
        with torch.inference_mode():
            eager = model(x)
            traced = torch.compile(model, backend="eager")(x)
    finally:
        torch._dynamo.reset()
    for a, b in zip(eager, traced):
        assert (a - b).abs().max() <= 1e-5 * a.abs().max()
