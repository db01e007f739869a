"""The Tanh bit-wise autoencoder's designs, data set and training task (train.tasks.bae)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from configs import load_design
from phy.coupled_mimo import coupling_matrix, noise_var
from train.run import fit_design
from train.tasks.bae import Link, _pair, positive_batch_norm, transmitter_design
from zoo.datasets import bae_channel
from zoo.registry import build_network, task_of

PAIRS = [(f"bae-rx-{n}x{n}-k2", f"bae-tx-{n}x{n}-k2", n) for n in (2, 4, 8)]


@pytest.mark.parametrize("rx_name,tx_name,n", PAIRS)
def test_designs_chain_and_have_the_papers_shapes(rx_name: str, tx_name: str, n: int) -> None:
    rx_d, tx_d = load_design(rx_name), load_design(tx_name)
    assert task_of(rx_d) == "bae_autoencoder" and task_of(tx_d) == "from_run"
    assert rx_d["train"]["transmitter_design"] == tx_name
    assert tx_d["train"]["source"] == {"design": rx_name, "key": "transmitter"}
    tx, rx = build_network(tx_d), build_network(rx_d)
    assert _pair(tx, rx, "test") == ("x", "y", "p")
    spec_tx, spec_rx = tx.iospec(), rx.iospec()
    assert spec_tx.input("bits").features == 2 * n and spec_tx.output("x").features == 2 * n
    assert spec_rx.input("y").features == 2 * n and spec_rx.output("p").features == 2 * n
    # Receiver: three Dense + BatchNorm + ReLU, sigmoid head; transmitter: tanh head.
    assert sum(isinstance(m, nn.BatchNorm1d) for m in rx.modules()) == 3
    assert isinstance(rx.heads["p"].act, nn.Sigmoid) and isinstance(tx.heads["x"].act, nn.Tanh)


def test_pair_refuses_a_receiver_without_sigmoid() -> None:
    rx_d = copy.deepcopy(load_design("bae-rx-2x2-k2"))
    rx_d["model"]["paths"]["p"]["head"]["activation"] = "tanh"
    tx = build_network(load_design("bae-tx-2x2-k2"))
    with pytest.raises(ValueError, match="activation must be 'sigmoid'"):
        _pair(tx, build_network(rx_d), "test")
    rx_d = copy.deepcopy(load_design("bae-rx-2x2-k2"))
    rx_d["model"]["paths"]["p"]["out_features"] = 3
    with pytest.raises(ValueError, match="emits 3 soft bits"):
        _pair(tx, build_network(rx_d), "test")


def test_channel_is_h_times_x_plus_noise_of_the_snr() -> None:
    d = load_design("bae-rx-4x4-k2")
    rng = np.random.default_rng(0)
    x = rng.choice([-1.0, 1.0], (200000, 8))
    h = coupling_matrix(4, 0.3)
    assert h[0, 0] == 1.0 and h[0, 1] == 0.3 and h.shape == (4, 4)
    y = bae_channel(x, d, np.full(len(x), 6.0), rng)
    clean = np.concatenate([x[:, :4] @ h.T, x[:, 4:] @ h.T], 1)
    noise = y - clean
    # sigma^2 / 2 per real dimension, sigma^2 = 2 / 10^(6/10).
    assert abs(noise.var() / (noise_var(6.0) / 2) - 1) < 0.01
    assert abs(np.corrcoef(noise[:, 0], noise[:, 4])[0, 1]) < 0.01
    # Negative control: the same y is far from the uncoupled channel's output.
    # (the 3 cross terms add 3 * 0.3^2 = 0.27 to the 0.25 of the noise per real dimension).
    assert (y - x).var() > 1.5 * noise.var()


def test_positive_batch_norm_clamps_gamma() -> None:
    bn = nn.BatchNorm1d(4)
    bn.weight.data = torch.tensor([-1.0, 0.0, 0.5, 2.0])
    positive_batch_norm(nn.Sequential(bn))
    assert bn.weight.min().item() >= 1e-3
    assert bn.weight[2].item() == 0.5 and bn.weight[3].item() == 2.0


def test_a_short_end_to_end_training_learns_and_stores_the_transmitter() -> None:
    rx_d = copy.deepcopy(load_design("bae-rx-2x2-k2"))
    rx_d["train"]["recipes"]["t"] = {"samples": 16384, "epochs": 3, "batch_size": 512,
                                     "lr": 1.0e-2, "seed": 1}
    trained = fit_design(rx_d, "t")
    res = trained.result
    assert res.metrics["initial"]["val_ber"] > 0.4  # untrained: coin flips
    assert res.history[-1]["val_ber"] < 0.1 * res.metrics["initial"]["val_ber"]
    assert res.extras["transmitter_design"] == "bae-tx-2x2-k2"
    tx = build_network(transmitter_design(rx_d))
    tx.load_state_dict(res.extras["transmitter"])  # the from_run hand-over fits
    # Every BatchNorm scale stayed positive (the hardware's thresholds count upwards).
    assert all((m.weight > 0).all() for m in trained.net.modules()
               if isinstance(m, nn.BatchNorm1d))
    # The symbols are bounded by the tanh (no normalization layer), within the INT8 grid.
    sym = np.asarray(res.metrics["constellation"])
    assert sym.shape == (16, 4) and np.abs(sym).max() <= 127 / 128


def test_link_snr_range_draws_per_vector() -> None:
    rx_d = copy.deepcopy(load_design("bae-rx-2x2-k2"))
    rx_d["data"]["snr_db"] = [0.0, 20.0]
    tx = build_network(transmitter_design(rx_d))
    link = Link(tx, build_network(rx_d), rx_d)
    x = torch.zeros(20000, 4)
    y = link.channel(x, torch.Generator().manual_seed(0))
    per_vec = y.pow(2).mean(1)
    # Noise powers spread over two decades (0..20 dB), not one value.
    assert per_vec.quantile(0.95) / per_vec.quantile(0.05) > 20
