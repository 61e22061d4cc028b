import pytest

from evoquality import _backend


def test_flash_attention_on_cpu_falls_back_to_sdpa_with_reason():
    choice = _backend.choose_attn_implementation("flash_attention_2", device="cpu")
    assert choice.implementation == "sdpa"
    assert "falling back to sdpa" in choice.reason
    assert "CUDA" in choice.reason


def test_auto_attention_on_cpu_is_sdpa():
    choice = _backend.choose_attn_implementation("auto", device="cpu")
    assert choice.implementation == "sdpa"
    assert choice.reason.startswith("auto:")


def test_explicit_attention_is_kept():
    assert _backend.choose_attn_implementation("eager", device="cpu").implementation == "eager"


def test_unknown_attention_names_the_argument():
    with pytest.raises(ValueError, match="attn_implementation must be one of"):
        _backend.choose_attn_implementation("flash3")


def test_conftest_routes_cpu_kernels_through_interpreter():
    # conftest sets TRITON_INTERPRET=1: CPU tensors go to the Triton kernel (interpreted) in tests.
    assert _backend.triton_interpret()
    assert _backend.kernel_provider("cpu") == "triton"


def test_force_provider_overrides_and_restores():
    with _backend.force_provider("torch"):
        assert _backend.kernel_provider("cpu") == "torch"
        assert _backend.kernel_provider("cuda") == "torch"
    assert _backend.kernel_provider("cpu") == "triton"
    with pytest.raises(ValueError, match="provider must be one of"):
        with _backend.force_provider("cuda"):
            pass


def test_native_extension_reports_codecs():
    assert _backend.native_extension() is not None
    codecs = _backend.native_codecs()
    assert isinstance(codecs, dict)
