import numpy as np
import pytest

from emg_driver.emg_msg import chunk_to_msg, msg_to_chunk, stamp_to_ns


def test_round_trip_preserves_samples_and_stamp():
    samples = np.arange(24, dtype=np.float32).reshape(3, 8) * 1e-6
    stamp_ns = 1_700_000_000_123_456_789
    msg = chunk_to_msg(samples, 42, stamp_ns, 500.0, [f"ch_{i}" for i in range(8)], "emg_armband")
    assert msg.num_samples == 3 and msg.first_sample_index == 42
    assert stamp_to_ns(msg.header.stamp) == stamp_ns
    np.testing.assert_array_equal(msg_to_chunk(msg), samples)


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="8 channel names"):
        chunk_to_msg(np.zeros((3, 4)), 0, 0, 500.0, [f"ch_{i}" for i in range(8)], "f")
    msg = chunk_to_msg(np.zeros((3, 2)), 0, 0, 500.0, ["a", "b"], "f")
    msg.num_samples = 4
    with pytest.raises(ValueError, match="expected 4 samples x 2 channels"):
        msg_to_chunk(msg)
