import numpy as np
import pytest
from skimage import data


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """A small real photo (scikit-image's bundled astronaut), odd-sized on purpose."""
    return np.ascontiguousarray(data.astronaut()[100:171, 150:247])


@pytest.fixture(scope="session")
def model():
    from vqpress import codec

    return codec.load(device="cpu")
