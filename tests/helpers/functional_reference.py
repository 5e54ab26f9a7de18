"""An independent, functional FoR-Net forward written from the reference description.

It reads weights straight from a state_dict by key name and uses only ``torch.nn.functional``,
so it shares no code with ``fornet.model``: agreement with it checks the module layout, the
dilation scheme, the gate and the decoder wiring at once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _bn(x: Tensor, sd: dict[str, Tensor], p: str) -> Tensor:
    return F.batch_norm(x, sd[p + ".running_mean"], sd[p + ".running_var"], sd[p + ".weight"],
                        sd[p + ".bias"], training=False, eps=1e-5)


def _conv(x: Tensor, sd: dict[str, Tensor], p: str, stride: int = 1, dilation: int = 1) -> Tensor:
    w = sd[p + ".weight"]
    pad = dilation * (w.shape[-1] // 2)
    return F.conv2d(x, w, sd.get(p + ".bias"), stride=stride, padding=pad, dilation=dilation)


def _cbr(x: Tensor, sd: dict[str, Tensor], p: str, dilation: int = 1) -> Tensor:
    return F.relu(_bn(_conv(x, sd, p + ".0", dilation=dilation), sd, p + ".1"))


def _stage(x: Tensor, sd: dict[str, Tensor], name: str, stride: int, first_dilation: int,
           dilation: int) -> Tensor:
    m = 0
    while f"{name}.{m}.conv1.weight" in sd:
        p = f"{name}.{m}"
        s, d = (stride, first_dilation) if m == 0 else (1, dilation)
        if f"{p}.downsample.0.weight" in sd:
            identity = _bn(F.conv2d(x, sd[f"{p}.downsample.0.weight"], stride=s), sd, f"{p}.downsample.1")
        else:
            identity = x
        bottleneck = f"{p}.conv3.weight" in sd
        if bottleneck:
            out = F.relu(_bn(_conv(x, sd, f"{p}.conv1"), sd, f"{p}.bn1"))
            out = F.relu(_bn(_conv(out, sd, f"{p}.conv2", stride=s, dilation=d), sd, f"{p}.bn2"))
            out = _bn(_conv(out, sd, f"{p}.conv3"), sd, f"{p}.bn3")
        else:
            out = F.relu(_bn(_conv(x, sd, f"{p}.conv1", stride=s, dilation=d), sd, f"{p}.bn1"))
            out = _bn(_conv(out, sd, f"{p}.conv2", dilation=d), sd, f"{p}.bn2")
        x = F.relu(out + identity)
        m += 1
    return x


def reference_forward(sd: dict[str, Tensor], x: Tensor, ratios=(0.1, 0.2, 0.3, 0.4),
                      branch_dilations=(1, 1, 1, 16), stage_plan=((1, 1, 1), (2, 1, 1), (1, 1, 2), (1, 2, 4)),
                      low_stage: int = 1) -> tuple[Tensor, Tensor, list[Tensor]]:
    """Output-stride-8 FoR-Net (the reference) by default; ``stage_plan`` gives per-stage
    (stride, first-block dilation, dilation) for layer1..layer4."""
    out = F.relu(_bn(F.conv2d(x, sd["stem.0.weight"], stride=2, padding=3), sd, "stem.1"))
    out = F.max_pool2d(out, 3, 2, 1)
    feats = []
    for i, (s, d0, d) in enumerate(stage_plan):
        out = _stage(out, sd, f"layer{i + 1}", s, d0, d)
        feats.append(out)
    f = _cbr(out, sd, "trans")
    s_logit = _conv(_cbr(f, sd, "selector.body"), sd, "selector.head")
    n = s_logit.shape[-2] * s_logit.shape[-1]
    flat = s_logit.flatten(1)
    masks = []
    for r in ratios:
        k = min(n, max(1, round(r * n)))
        idx = flat.topk(k, dim=1).indices
        masks.append(torch.zeros_like(flat).scatter(1, idx, 1.0).view_as(s_logit))
    g = F.adaptive_avg_pool2d(f, 1)
    g = F.conv2d(F.relu(F.conv2d(g, sd["context.psi.0.weight"], sd["context.psi.0.bias"])),
                 sd["context.psi.2.weight"], sd["context.psi.2.bias"])
    f_ctx = f + g
    agg = f
    for i, m in enumerate(masks):
        agg = agg + _cbr(f_ctx * m, sd, f"branches.{i}", dilation=branch_dilations[i])
    low = feats[low_stage - 1]
    agg = F.interpolate(agg, size=low.shape[-2:], mode="bilinear", align_corners=False)
    dec = torch.cat([agg, _cbr(low, sd, "low_proj")], 1)
    dec = _cbr(_cbr(dec, sd, "decoder.0"), sd, "decoder.1")
    logits = _conv(dec, sd, "classifier")
    logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return logits, s_logit, masks
