"""ResNet backbones in the torchvision layout, with dilation instead of stride in late stages.

Written here (no torchvision dependency) so that checkpoint keys are exactly torchvision's
(``layerN.M.conv1.weight``, ``layerN.M.bn1.*``, ``layerN.0.downsample.{0,1}.*``). Unlike
torchvision, :class:`BasicBlock` accepts dilation, which the ResNet-18/34 variants need for
output stride 8/16.

Dilation follows torchvision's ``replace_stride_with_dilation``: a dilated stage's first block
uses the previous stage's dilation (with stride 1) and its other blocks the new dilation.
"""
# ruff: noqa: TID253

from __future__ import annotations

from torch import Tensor, nn

from fornet.model.config import BLOCK_EXPANSION, BackboneSpec


def _conv3x3(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34)."""

    expansion = BLOCK_EXPANSION["basic"]

    def __init__(self, cin: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, planes, stride, dilation)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes, dilation=dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided, ResNet v1.5) -> 1x1 bottleneck with a residual (ResNet-50/101)."""

    expansion = BLOCK_EXPANSION["bottleneck"]

    def __init__(self, cin: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv1x1(cin, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
}


def make_stem(spec: BackboneSpec) -> nn.Sequential:
    """torchvision's conv1 + bn1 + relu + maxpool, as ``stem.0`` ... ``stem.3``."""
    width = spec.widths[0]
    return nn.Sequential(
        nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, stride=2, padding=1),
    )


def make_stages(spec: BackboneSpec) -> list[nn.Sequential]:
    """Build layer1..layer4 following torchvision's ``_make_layer`` (with dilation)."""
    block = BLOCKS[spec.block]
    cin = spec.widths[0]
    dilation = 1
    stages: list[nn.Sequential] = []
    for index, (blocks, planes) in enumerate(zip(spec.layers, spec.widths, strict=True)):
        stride = 1 if index == 0 else 2
        previous_dilation = dilation
        if index > 0 and spec.dilate[index - 1]:
            dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or cin != planes * block.expansion:
            downsample = nn.Sequential(
                _conv1x1(cin, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers: list[nn.Module] = [block(cin, planes, stride, downsample, previous_dilation)]
        cin = planes * block.expansion
        layers += [block(cin, planes, dilation=dilation) for _ in range(1, blocks)]
        stages.append(nn.Sequential(*layers))
    return stages
