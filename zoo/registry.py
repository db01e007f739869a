"""The design registry: ``family``/``network`` -> network builder, float twin, dataset, task.

A new network arrives as a YAML in ``configs/designs/`` plus, at most, one builder
registered here with :func:`register`. Stages never branch on a design's name:

* ``build_network(design)``: the deployable Brevitas network (the contract of
  :mod:`zoo.network`);
* ``float_twin(design, net)``: the same topology in plain float (baselines, float path);
* ``entry(design).dataset`` / ``.task``: the default data set (:mod:`zoo.datasets`) and
  training task (``train.tasks``) when the design's YAML does not name them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from zoo.blocks import FloatMLP, QuantMLP
from zoo.network import QuantNet

Builder = Callable[[dict[str, Any]], nn.Module]


@dataclass(frozen=True)
class NetworkEntry:
    """One registered network kind."""

    family: str
    network: str
    build: Builder
    dataset: str
    task: str
    float_twin: Callable[[dict[str, Any], nn.Module], nn.Module] | None = None
    doc: str = ""


REGISTRY: dict[tuple[str, str], NetworkEntry] = {}


def register(family: str, network: str, *, dataset: str, task: str,
             float_twin: Callable[[dict[str, Any], nn.Module], nn.Module] | None = None
             ) -> Callable[[Builder], Builder]:
    """Decorator: register ``builder(design) -> network`` for ``family``/``network``."""

    def deco(builder: Builder) -> Builder:
        key = (family, network)
        if key in REGISTRY:
            raise ValueError(f"{family}/{network} is registered twice")
        REGISTRY[key] = NetworkEntry(family, network, builder, dataset, task, float_twin,
                                     (builder.__doc__ or "").strip())
        return builder

    return deco


def entry(design: dict[str, Any]) -> NetworkEntry:
    """The registry entry of a design (by its ``family`` and ``network`` keys)."""
    key = (design.get("family"), design.get("network"))
    if key not in REGISTRY:
        known = ", ".join(f"{f}/{n}" for f, n in sorted(REGISTRY))
        raise KeyError(f"design {design.get('name')!r}: no network registered as "
                       f"{key[0]}/{key[1]} (family/network); registered: {known}")
    return REGISTRY[key]


def build_network(design: dict[str, Any]) -> nn.Module:
    """The deployable quantized network of a design (untrained)."""
    return entry(design).build(design)


def float_twin(design: dict[str, Any], net: nn.Module) -> nn.Module:
    """A plain float network with the topology (and float weights) of ``net``."""
    e = entry(design)
    if e.float_twin is None:
        raise NotImplementedError(f"{e.family}/{e.network} has no float twin registered")
    return e.float_twin(design, net)


def dataset_of(design: dict[str, Any]) -> str:
    return design.get("data", {}).get("kind") or entry(design).dataset


def task_of(design: dict[str, Any]) -> str:
    return design.get("train", {}).get("task") or entry(design).task


# --- registered networks ---------------------------------------------------------------


def mlp_float_twin(design: dict[str, Any], net: nn.Module) -> nn.Module:
    """FloatMLP with the QuantMLP's float weights and biases (quantizers removed)."""
    m = design["model"]
    twin = FloatMLP(m["in_features"], m["hidden"], m["out_features"],
                    m.get("out_activation", "none"))
    src = [mod for mod in net.body if isinstance(mod, nn.Linear)]
    dst = [mod for mod in twin.net if isinstance(mod, nn.Linear)]
    for s, d in zip(src, dst, strict=True):
        d.weight.data.copy_(s.weight.data)
        d.bias.data.copy_(s.bias.data)
    return twin.eval()


@register("eqnet", "f_Q", dataset="mimo_llr", task="reconstruction", float_twin=mlp_float_twin)
def eqnet_fq(design: dict[str, Any]) -> nn.Module:
    """EQ-Net's quantization encoder f_Q: soft bits -> dense ReLU stack -> tanh -> latent codes."""
    # Tensor names of the contract: the data feature in, the latent out.
    return QuantMLP({"input_name": design["data"]["feature"], "output_name": "latent",
                     **design["model"]})


def paths_net(design: dict[str, Any]) -> nn.Module:
    """A QuantNet from the YAML's ``model`` section (inputs, paths, bit widths)."""
    m = design["model"]
    return QuantNet(m["inputs"], m["paths"], m["weight_bits"], m["act_bits"],
                    m.get("bias_bits", 16), m.get("batch_norm", False))


register("synthetic", "two_io", dataset="synthetic_teacher", task="regression")(paths_net)
register("synthetic", "codebook", dataset="synthetic_teacher", task="regression")(paths_net)
# EQ-Net's paths-layout networks (configs/designs: inputs, paths, heads): an encoder (f_Q
# with a per-latent k-means head, f_E) trained by eqnet_stage1, and the branched decoder g
# reading k-means indices, which takes its weights from f_Q's run (from_run).
register("eqnet", "encoder", dataset="mimo_llr", task="eqnet_stage1")(paths_net)
register("eqnet", "decoder", dataset="mimo_llr", task="from_run")(paths_net)
# The Tanh bit-wise MIMO autoencoder (García Martí et al.): the receiver trains end to end
# with its transmitter (bae_autoencoder, a channel y = H x + n between them); the
# transmitter design takes its weights from the receiver's run (from_run).
register("bae", "rx", dataset="bae_link", task="bae_autoencoder")(paths_net)
register("bae", "tx", dataset="bae_link", task="from_run")(paths_net)
