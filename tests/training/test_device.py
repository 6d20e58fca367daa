import pytest

from training import device


def test_auto_uses_the_cpu_without_a_gpu():
    assert device.resolve("auto", count=0) == "CPU"


def test_auto_uses_the_gpu_when_there_is_one():
    assert device.resolve("auto", count=1) == "GPU"


def test_gpu_without_one_fails_clearly():
    with pytest.raises(device.NoGpu, match="no CUDA GPU"):
        device.resolve("gpu", count=0)


def test_this_machine():
    if device.gpu_count() > 0:
        pytest.skip("this machine has a GPU")
    assert device.resolve("auto") == "CPU"
    with pytest.raises(device.NoGpu):
        device.resolve("gpu")
