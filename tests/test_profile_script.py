"""scripts/profile_step.py sorts the profiler's operator times into kinds of work; these tests check the
sorting and that the kinds add up to the measured time."""

import time

import torch
from conftest import load_script


def load_profile_script():
    return load_script("profile_step")  # it imports its sibling benchmark.py


def test_operators_are_sorted_into_kinds():
    profile_step = load_profile_script()
    expected = {
        "aten::addmm": "matmul",
        "aten::_scaled_dot_product_flash_attention_for_cpu_backward": "attention kernel",
        "aten::_log_softmax": "softmax & loss",
        "aten::random_": "dropout RNG",
        "aten::native_layer_norm_backward": "layer norm",
        "aten::threshold_backward": "activation",
        "aten::addcmul": "elementwise",
        "aten::copy_": "copies & fills",
        "aten::linear": "views & dispatch",  # the wrapper's own time; its addmm is a matmul
        "aten::layer_norm": "views & dispatch",
        "aten::argmax": "other ops",
    }
    assert {name: profile_step.kind_of(name) for name in expected} == expected


def test_kinds_add_up_to_the_time_of_a_call():
    profile_step = load_profile_script()
    a, b = torch.randn(256, 256), torch.randn(256, 256)

    def call():
        torch.mm(a, b).relu_()
        time.sleep(0.002)  # time outside any operator: overhead

    per_call = profile_step.profile_calls(call, calls=5)
    assert set(per_call) == set(profile_step.KINDS)
    assert per_call["matmul"] > 0 and per_call["activation"] > 0
    assert per_call["overhead"] >= 1.5  # ms: the sleep
    start = time.perf_counter()
    for _ in range(5):
        call()
    unprofiled_ms = (time.perf_counter() - start) / 5 * 1e3
    assert 0.5 * unprofiled_ms < sum(per_call.values()) < 3 * unprofiled_ms
