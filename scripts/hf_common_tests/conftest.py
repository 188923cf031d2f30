"""Markers used by transformers' test mixins, registered so pytest does not warn about them."""

MIXIN_MARKERS = (
    "generate",
    "torch_compile_test",
    "torch_export_test",
    "onnx_export_test",
    "executorch_export_test",
    "flash_attn_test",
    "flash_attn_3_test",
    "flash_attn_4_test",
    "accelerate_tests",
    "training_ci",
    "bitsandbytes",
    "is_training_test",
    "is_pipeline_test",
    "not_device_test",
)


def pytest_configure(config):
    for marker in MIXIN_MARKERS:
        config.addinivalue_line("markers", marker)
